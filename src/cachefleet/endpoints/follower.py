"""Follow Sentinel's failovers, per group: a pure state machine that says where an endpoint points.

Sentinel decides; this only listens, fast. It is fed with what the Sentinels publish (``psubscribe
*``, from every Sentinel that watches the groups), with the results of probes it asked for, and with
resyncs (each Sentinel's ``get-master-addr-by-name``), and it answers with effects for the caller
to carry out: ``Repoint`` (the endpoint must now lead to this node), ``Probe`` (ask a node whether it
reports ``role:master``) and ``Resync`` (ask every Sentinel for the group's primary). No I/O here;
``watch.SentinelWatch`` is the effect side.

When a primary dies (down-after 1000 ms, measured on this machine, `docs/decisions.md`): the
failover leader publishes ``+failover-state-wait-promotion`` at about 1.4 s, just after it sent
``REPLICAOF NO ONE`` to the replica it chose; the other Sentinels publish ``+switch-master`` at about
2.3 s, and the leader publishes its own ``+promoted-slave`` at 2.2 s and ``+switch-master`` last, at
about 3.3 s. So:

- the leader's ``+failover-state-wait-promotion`` or ``+promoted-slave`` for the primary we point to
  starts a probe of the promoted replica; once it reports ``role:master`` the endpoint re-points;
- the first ``+switch-master`` from any Sentinel whose old address is the one we point to re-points
  at once (every later one is then a no-op);
- a ``+switch-master`` whose old address is not ours contradicts what we know (we missed events, or
  it is stale): its new address is probed and followed only if it reports ``role:master``;
- a resync (after a reconnect, and now and then) follows the address a majority of all the
  configured Sentinels names, once it reports ``role:master``. An address we left because of a
  failover is not returned to while the node we moved to still reports ``role:master``: during a
  failover the majority still names the old primary for about a second after the promotion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from cachefleet.endpoints.base import Address

# The events acted on; Sentinel publishes many more (``+sdown``, ``+slave``, ...), all ignored.
SWITCH_MASTER = "+switch-master"
PROMOTION = ("+failover-state-wait-promotion", "+promoted-slave")
CONVERT_TO_SLAVE = "+convert-to-slave"
ABORT_PREFIX = "-failover-abort-"


@dataclass(frozen=True)
class Repoint:
    """The group's endpoint must now lead to ``new`` (it led to ``old``; None when unknown)."""

    group: str
    old: Address | None
    new: Address
    reason: str  # "promotion", "switch-master" or "resync"


@dataclass(frozen=True)
class Probe:
    """Ask ``address`` whether it reports ``role:master``; keep asking for ``patience`` seconds while
    it does not; report with ``on_probe`` (False: not master, or unreachable, when patience ran out)."""

    group: str
    address: Address
    patience: float


@dataclass(frozen=True)
class Resync:
    """Ask every Sentinel for the group's primary and report all answers at once with ``on_resync``."""

    group: str


Effect = Repoint | Probe | Resync


@dataclass
class _Group:
    primary: Address | None
    candidate: Address | None = None  # being probed before the endpoint may follow it
    reason: str = ""
    needs_primary_down: bool = False  # the candidate is an address we left: only if ours is no master
    roles: dict[Address, bool] = field(default_factory=dict)  # answers to the probes asked for
    views: dict[str, Address] = field(default_factory=dict)  # sentinel -> the primary it last named
    retired: set[Address] = field(default_factory=set)  # addresses left because of a failover


@dataclass(frozen=True)
class Instance:
    """Sentinel's instance details in an event: ``<kind> <name> <ip> <port> [@ <master> <ip> <port>]``."""

    kind: str
    address: Address
    master_name: str
    master: Address | None  # None for a ``master`` instance (it is its own master)


def parse_instance(data: str) -> Instance | None:
    """Pure: the instance an event is about, or None when ``data`` is not in that form."""
    parts = data.split()
    try:
        if len(parts) >= 4 and parts[0] == "master":
            return Instance("master", Address(parts[2], int(parts[3])), parts[1], None)
        if len(parts) >= 8 and parts[4] == "@":
            return Instance(parts[0], Address(parts[2], int(parts[3])), parts[5], Address(parts[6], int(parts[7])))
    except ValueError:
        return None
    return None


def parse_switch_master(data: str) -> tuple[str, Address, Address] | None:
    """Pure: ``<name> <old ip> <old port> <new ip> <new port>`` -> (name, old, new)."""
    parts = data.split()
    if len(parts) != 5:
        return None
    try:
        return parts[0], Address(parts[1], int(parts[2])), Address(parts[3], int(parts[4]))
    except ValueError:
        return None


class Follower:
    """Per group (Sentinel master name), the primary an endpoint should lead to.

    ``sentinels`` names every Sentinel watching the groups (any stable ids, e.g. ``host:port``); a
    majority is counted over all of them, reachable or not.
    """

    def __init__(self, sentinels: Collection[str], probe_patience: float = 2.0) -> None:
        if not sentinels:
            raise ValueError("a follower needs at least one sentinel")
        self.sentinels = frozenset(sentinels)
        self.majority = len(self.sentinels) // 2 + 1
        self.probe_patience = probe_patience
        self._groups: dict[str, _Group] = {}

    # -- what is followed ------------------------------------------------------------------------

    def track(self, group: str, primary: Address | None = None) -> list[Effect]:
        """Follow ``group``, whose endpoint leads to ``primary`` now (None: unknown, resync first)."""
        if group in self._groups:
            return []
        self._groups[group] = _Group(primary)
        return [Resync(group)] if primary is None else []

    def forget(self, group: str) -> None:
        self._groups.pop(group, None)

    def groups(self) -> list[str]:
        return sorted(self._groups)

    def primary(self, group: str) -> Address | None:
        state = self._groups.get(group)
        return state.primary if state else None

    # -- inputs ------------------------------------------------------------------------------------

    def on_message(self, sentinel: str, channel: str, data: str) -> list[Effect]:
        """One pub/sub message from ``sentinel`` (channel = event type)."""
        if channel == SWITCH_MASTER:
            switch = parse_switch_master(data)
            return self._on_switch(sentinel, *switch) if switch else []
        instance = parse_instance(data)
        if instance is None:
            return []
        state = self._groups.get(instance.master_name)
        if state is None:
            return []
        if channel in PROMOTION and instance.kind == "slave" and instance.master is not None:
            return self._on_promotion(instance.master_name, state, instance.address, instance.master)
        if channel.startswith(ABORT_PREFIX):
            if state.reason == "promotion":
                self._drop_candidate(state)
            return []
        if channel == CONVERT_TO_SLAVE and instance.address == state.primary:
            return [Resync(instance.master_name)]  # Sentinel is demoting the node we lead to
        return []

    def on_probe(self, group: str, address: Address, is_master: bool) -> list[Effect]:
        """The answer to a ``Probe``."""
        state = self._groups.get(group)
        if state is None:
            return []
        if address in (state.candidate, state.primary):
            state.roles[address] = is_master
        return self._decide(group, state)

    def on_resync(self, group: str, answers: Mapping[str, Address | None]) -> list[Effect]:
        """Every Sentinel's answer to ``get-master-addr-by-name`` (None: unreachable or unknown)."""
        state = self._groups.get(group)
        if state is None:
            return []
        for sentinel, address in answers.items():
            if sentinel not in self.sentinels:
                continue
            if address is None:
                state.views.pop(sentinel, None)
            else:
                state.views[sentinel] = address
        winner = self._majority(state)
        if winner is None:
            return []
        if winner == state.primary:
            state.retired.clear()  # the Sentinels agree with where we point: every failover is settled
            if state.reason == "resync":
                self._drop_candidate(state)
            return []
        if state.primary is None:
            return self._repoint(group, state, winner, "resync")
        if state.candidate == winner:
            return []
        return self._propose(group, state, winner, "resync")

    # -- rules ---------------------------------------------------------------------------------------

    def _on_switch(self, sentinel: str, group: str, old: Address, new: Address) -> list[Effect]:
        state = self._groups.get(group)
        if state is None:
            return []
        if sentinel in self.sentinels:
            state.views[sentinel] = new
        if new == state.primary:
            return []
        if state.primary is None or old == state.primary or self._majority(state) == new:
            return self._repoint(group, state, new, "switch-master")
        if state.candidate == new:
            return []
        # Contradicts what we know (a missed failover, or a stale event): believe the node itself.
        return self._propose(group, state, new, "switch-master")

    def _on_promotion(self, group: str, state: _Group, promoted: Address, master: Address) -> list[Effect]:
        if promoted in (state.primary, state.candidate):
            return []
        if state.primary is not None and master != state.primary:
            return [Resync(group)]  # a failover of a primary we do not lead to: our view may be stale
        return self._propose(group, state, promoted, "promotion")

    def _propose(self, group: str, state: _Group, address: Address, reason: str) -> list[Effect]:
        state.candidate, state.reason = address, reason
        state.needs_primary_down = address in state.retired
        state.roles.pop(address, None)
        effects: list[Effect] = [Probe(group, address, self.probe_patience)]
        if state.needs_primary_down and state.primary is not None:
            state.roles.pop(state.primary, None)
            effects.append(Probe(group, state.primary, 0.0))  # one answer: is ours master now?
        return effects

    def _decide(self, group: str, state: _Group) -> list[Effect]:
        candidate = state.candidate
        if candidate is None or candidate not in state.roles:
            return []
        if not state.roles[candidate]:
            self._drop_candidate(state)
            return []
        if state.needs_primary_down:
            if state.primary is None or state.primary not in state.roles:
                return []  # wait for the other answer
            if state.roles[state.primary]:
                self._drop_candidate(state)  # ours still leads: the majority has not caught up yet
                return []
        return self._repoint(group, state, candidate, state.reason)

    def _repoint(self, group: str, state: _Group, new: Address, reason: str) -> list[Effect]:
        old = state.primary
        if old is not None and reason != "resync":
            state.retired.add(old)
        state.retired.discard(new)
        state.primary = new
        self._drop_candidate(state)
        return [Repoint(group, old, new, reason)]

    def _drop_candidate(self, state: _Group) -> None:
        state.candidate, state.reason, state.needs_primary_down = None, "", False
        state.roles.clear()

    def _majority(self, state: _Group) -> Address | None:
        counts = Counter(state.views.values())
        for address, count in counts.most_common(1):
            if count >= self.majority:
                return address
        return None
