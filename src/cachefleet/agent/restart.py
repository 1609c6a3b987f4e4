"""How the agent restarts a node that died while it should run: pure decisions, no I/O.

Two questions, each a function of what was observed:

- ``backoff``: how long to wait before the next restart. The first is immediate (a ``kill -9``'d node
  is back within a second); a node that keeps dying soon after each start is restarted less and less
  often, so a broken config does not spin the host.
- ``decide``: as what to restart a Redis node whose group Sentinels watch (docs/architecture.md,
  section 7: a failed primary restarted with its old config comes back as an empty second master).
  The agent asks every Sentinel of the group which node is primary and acts on a majority:

  =====================================================  =============================================
  a majority of the Sentinels says                       the agent
  =====================================================  =============================================
  (no policy, or no Sentinels listed)                    starts the node as it was configured
  another node is primary                                starts it as a replica of that node
  this node is primary, a failover is in progress        waits: the failover's outcome decides
  this node is primary, none in progress, still early    waits (Sentinel has not had time to decide)
  this node is primary, none started in the window       starts it as it was (its AOF or RDB data)
  it does not monitor the group                          starts it as configured (no failover can come)
  nothing (unreachable, or no two agree)                 waits and asks again: never a second master
  =====================================================  =============================================

  The window is ``down-after`` plus ``FAILOVER_START``: Sentinel marks the primary down after
  ``down-after``, agrees and elects a leader about 0.2 s later, and from then on its leader reports
  the failover in progress until it ends (promoted, or aborted after Sentinel's failover timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cachefleet.hosts.base import RestartPolicy

# A run shorter than this counts as a failed start (a broken config exits within milliseconds): a
# second one in a row backs off. A node that served for longer restarts at once, however it ended.
STABLE_RUN = 1.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# Sentinel needs about 0.2 s after down-after to agree the primary is down and elect a leader (measured
# 0.13-0.19 s here); two seconds of margin covers a loaded host.
FAILOVER_START = 2.0
# How often the Sentinels are asked again while the agent waits for their verdict, and while no
# majority of them answers (a Sentinel that is cut off costs a connect timeout per question).
POLL_INTERVAL = 0.1
NO_MAJORITY_RETRY = 1.0


def backoff(quick_exits: int) -> float:
    """Seconds to wait before a restart after ``quick_exits`` earlier exits in a row that each came
    soon after a start: none after a good run or the first quick exit, then 0.5 s doubling to 30 s."""
    if quick_exits <= 0:
        return 0.0
    return min(FIRST_BACKOFF * 2.0 ** (quick_exits - 1), MAX_BACKOFF)


# -- what one Sentinel answered -------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """The Sentinel names ``primary`` as the group's primary."""

    primary: tuple[str, int]
    failover_in_progress: bool = False


@dataclass(frozen=True)
class NotMonitoring:
    """The Sentinel answered, and does not watch this group (never did, or it was removed)."""


@dataclass(frozen=True)
class Unreachable:
    """No answer: the Sentinel is down, cut off, or answered nonsense."""


Answer = Names | NotMonitoring | Unreachable


# -- what to do -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartAsConfigured:
    reason: str


@dataclass(frozen=True)
class StartAsReplica:
    primary: tuple[str, int]
    reason: str


@dataclass(frozen=True)
class Wait:
    delay: float
    reason: str


Decision = StartAsConfigured | StartAsReplica | Wait


def verdict_window(policy: RestartPolicy) -> float:
    """Seconds after the exit within which a failover, if Sentinel is to make one, has started."""
    return policy.down_after_ms / 1000 + FAILOVER_START


def decide(policy: RestartPolicy | None, me: tuple[str, int], answers: Sequence[Answer], waited: float) -> Decision:
    """As what to restart the node at ``me`` (address, port), given each Sentinel's answer (one per
    entry of ``policy.sentinels``, in any order) and the seconds since it was found down."""
    if policy is None or not policy.sentinels:
        return StartAsConfigured("no Sentinel watches its group")
    majority = len(policy.sentinels) // 2 + 1
    named: dict[tuple[str, int], int] = {}
    not_monitoring = 0
    in_progress = False
    for answer in answers:
        if isinstance(answer, Names):
            named[answer.primary] = named.get(answer.primary, 0) + 1
            in_progress = in_progress or answer.failover_in_progress
        elif isinstance(answer, NotMonitoring):
            not_monitoring += 1
    primary = next((address for address, count in named.items() if count >= majority), None)
    if primary is not None and primary != me:
        host, port = primary
        return StartAsReplica(primary, f"the Sentinels name {host}:{port} primary")
    if primary == me:
        if in_progress:
            return Wait(POLL_INTERVAL, "a failover of its group is in progress")
        if waited < verdict_window(policy):
            return Wait(POLL_INTERVAL, "the Sentinels still name it primary; waiting for their verdict")
        return StartAsConfigured("the Sentinels made no failover: it is still their primary")
    if not_monitoring >= majority:
        return StartAsConfigured("its Sentinels do not monitor the group")
    return Wait(NO_MAJORITY_RETRY, "no majority of its Sentinels answers with one primary")
