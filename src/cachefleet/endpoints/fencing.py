"""When a host may hold its endpoint addresses: the fence, a pure rule fed with Sentinel reachability.

A host cut off from the network keeps its VIPs and its (still master) node; the rest of the
installation fails over and moves the VIPs elsewhere. When the link comes back two hosts would
answer for one address. So, as keepalived's FAULT state does: a host that cannot reach a majority
of the installation's Sentinels for longer than the grace (Sentinel's down-after, by which time the
majority side has started a failover) drops its VIPs. A host that is fenced, or has just started,
adds a VIP again only when a majority of Sentinels names its node primary (``follower.Follower``
decides that; this only says whether holding anything is allowed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Fence:
    """``observe`` each time reachability is measured; it answers whether VIPs may be held."""

    sentinels: int  # every Sentinel of the installation
    grace: float  # seconds without a majority before the VIPs go
    last_majority: float | None = None  # when a majority was last reachable (None: never yet)

    def __post_init__(self) -> None:
        if self.sentinels < 1 or self.grace < 0:
            raise ValueError("a fence needs at least one sentinel and a grace of zero or more")

    @property
    def majority(self) -> int:
        return self.sentinels // 2 + 1

    def observe(self, reachable: int, now: float) -> bool:
        """``reachable`` Sentinels answer at ``now`` (a monotonic clock): may this host hold VIPs?"""
        if reachable >= self.majority:
            self.last_majority = now
        return self.may_hold(now)

    def may_hold(self, now: float) -> bool:
        return self.last_majority is not None and now - self.last_majority <= self.grace
