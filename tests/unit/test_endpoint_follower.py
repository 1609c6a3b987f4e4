"""The failover follower's state machine, replayed on Sentinel event sequences recorded on this machine.

The replay answers each probe the machine asks for from what the node really reported at that moment
of the recording: the promoted replica reports ``role:master`` from the leader's
``+failover-state-send-slaveof-noone`` on; a killed primary never answers; in the manual failover
the old primary keeps reporting master throughout.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support.sentinel_timelines import KILL_DOWN_AFTER_500, KILL_DOWN_AFTER_1000, MANUAL_FAILOVER, Event

from cachefleet.endpoints.base import Address
from cachefleet.endpoints.follower import (
    Effect,
    Follower,
    Probe,
    Repoint,
    Resync,
    parse_instance,
    parse_switch_master,
)

SENTINELS = ("s0", "s1", "s2")
A, B, C = Address("127.0.0.1", 7001), Address("127.0.0.1", 7002), Address("127.0.0.1", 7003)
Truth = Callable[[float, Address], bool]


def promoted_from(events: list[Event], old_alive: bool = False) -> Truth:
    """Who reports master at time t: the replica the leader sent REPLICAOF NO ONE to, from then on."""
    (sent,) = [(t, parse_instance(data)) for t, _, ch, data in events if ch == "+failover-state-send-slaveof-noone"]
    at, instance = sent
    assert instance is not None

    def truth(t: float, address: Address) -> bool:
        if address == instance.address:
            return t >= at
        return old_alive and address == A

    return truth


def replay(follower: Follower, events: list[Event], truth: Truth, group: str = "g") -> list[tuple[float, Repoint]]:
    """Feed every event in order; answer probes at once from ``truth``; return the re-points made."""
    repoints: list[tuple[float, Repoint]] = []

    def carry_out(t: float, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Repoint):
                repoints.append((t, effect))
            elif isinstance(effect, Probe):
                carry_out(t, follower.on_probe(effect.group, effect.address, truth(t, effect.address)))

    for t, sentinel, channel, data in events:
        carry_out(t, follower.on_message(sentinel, channel, data))
    return repoints


@pytest.mark.parametrize(
    ("events", "promoted", "at"),
    [(KILL_DOWN_AFTER_1000, C, 1.414), (KILL_DOWN_AFTER_500, B, 0.931), (MANUAL_FAILOVER, B, 0.197)],
    ids=["kill-1000", "kill-500", "manual"],
)
def test_repoints_once_at_the_leaders_promotion(events: list[Event], promoted: Address, at: float) -> None:
    follower = Follower(SENTINELS)
    assert follower.track("g", A) == []
    repoints = replay(follower, events, promoted_from(events, old_alive=events is MANUAL_FAILOVER))
    assert repoints == [(at, Repoint("g", A, promoted, "promotion"))]
    assert follower.primary("g") == promoted


def test_without_the_leader_the_first_switch_master_repoints() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    others = [e for e in KILL_DOWN_AFTER_1000 if e[1] != "s2"]  # s2 led; its events never arrive
    repoints = replay(follower, others, promoted_from(KILL_DOWN_AFTER_1000))
    assert repoints == [(2.265, Repoint("g", A, C, "switch-master"))]


def test_a_promoted_node_that_never_reports_master_is_not_followed_until_switch_master() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    repoints = replay(follower, KILL_DOWN_AFTER_1000, lambda t, address: False)
    assert repoints == [(2.265, Repoint("g", A, C, "switch-master"))]


def test_an_aborted_failover_drops_the_pending_probe() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    effects = follower.on_message(
        "s2", "+failover-state-wait-promotion", "slave 127.0.0.1:7003 127.0.0.1 7003 @ g 127.0.0.1 7001"
    )
    assert effects == [Probe("g", C, 2.0)]
    assert follower.on_message("s2", "-failover-abort-slave-timeout", "master g 127.0.0.1 7001") == []
    assert follower.on_probe("g", C, True) == []  # the answer came too late to count
    assert follower.primary("g") == A


def test_a_stale_switch_master_is_probed_and_ignored() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", C)  # A -> B -> C happened; a slow sentinel now reports the first switch
    effects = follower.on_message("s1", "+switch-master", "g 127.0.0.1 7001 127.0.0.1 7002")
    assert effects == [Probe("g", B, 2.0)]
    assert follower.on_probe("g", B, False) == []
    assert follower.primary("g") == C


def test_a_switch_master_after_missed_events_is_followed_once_the_node_confirms() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)  # A -> B was missed; now B -> C arrives
    effects = follower.on_message("s0", "+switch-master", "g 127.0.0.1 7002 127.0.0.1 7003")
    assert effects == [Probe("g", C, 2.0)]
    assert follower.on_probe("g", C, True) == [Repoint("g", A, C, "switch-master")]


def test_a_contradicting_switch_master_named_by_a_majority_is_followed_without_a_probe() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    follower.on_message("s0", "+switch-master", "g 127.0.0.1 7002 127.0.0.1 7003")
    assert follower.on_message("s1", "+switch-master", "g 127.0.0.1 7002 127.0.0.1 7003") == [
        Repoint("g", A, C, "switch-master")
    ]


def test_events_of_untracked_groups_and_garbage_are_ignored() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    assert follower.on_message("s0", "+switch-master", "other 127.0.0.1 7001 127.0.0.1 7002") == []
    assert follower.on_message("s0", "+switch-master", "g 127.0.0.1 7001") == []
    assert follower.on_message("s0", "+switch-master", "g host 7001 127.0.0.1 7002") == []
    assert follower.on_message("s0", "+promoted-slave", "slave nonsense") == []
    assert follower.on_message("s0", "+promoted-slave", "slave x x 99999 @ g 127.0.0.1 7001") == []
    assert follower.primary("g") == A


def test_a_promotion_under_a_primary_we_do_not_lead_to_asks_for_a_resync() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", B)
    data = "slave 127.0.0.1:7003 127.0.0.1 7003 @ g 127.0.0.1 7001"
    assert follower.on_message("s0", "+promoted-slave", data) == [Resync("g")]


def test_the_demotion_of_our_primary_asks_for_a_resync() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    data = "slave 127.0.0.1:7001 127.0.0.1 7001 @ g 127.0.0.1 7002"
    assert follower.on_message("s0", "+convert-to-slave", data) == [Resync("g")]


# -- resync ------------------------------------------------------------------------------------------


def test_an_unknown_primary_is_learned_from_a_majority() -> None:
    follower = Follower(SENTINELS)
    assert follower.track("g") == [Resync("g")]
    assert follower.on_resync("g", {"s0": A, "s1": None, "s2": B}) == []  # no majority: wait
    assert follower.on_resync("g", {"s0": B, "s1": None, "s2": B}) == [Repoint("g", None, B, "resync")]


def test_a_resync_majority_is_followed_once_the_node_reports_master() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    assert follower.on_resync("g", {"s0": B, "s1": B, "s2": A}) == [Probe("g", B, 2.0)]
    assert follower.on_probe("g", B, True) == [Repoint("g", A, B, "resync")]


def test_a_resync_in_the_failover_window_does_not_return_to_the_old_primary() -> None:
    """Between the promotion (1.4 s) and the non-leaders' switch (2.3 s) a majority still names the
    old primary; in a manual failover it even still reports master."""
    for old_alive in (False, True):
        follower = Follower(SENTINELS)
        follower.track("g", A)
        follower.on_message(
            "s0", "+failover-state-wait-promotion", "slave 127.0.0.1:7002 127.0.0.1 7002 @ g 127.0.0.1 7001"
        )
        assert follower.on_probe("g", B, True) == [Repoint("g", A, B, "promotion")]
        effects = follower.on_resync("g", {"s0": B, "s1": A, "s2": A})
        assert effects == [Probe("g", A, 2.0), Probe("g", B, 0.0)]
        assert follower.on_probe("g", A, old_alive) == []
        assert follower.on_probe("g", B, True) == []
        assert follower.primary("g") == B


def test_a_majority_naming_an_address_we_left_wins_once_ours_is_no_master() -> None:
    """We moved A -> B, then missed a failover back to A: the majority names A, B is a replica."""
    follower = Follower(SENTINELS)
    follower.track("g", A)
    follower.on_message("s0", "+switch-master", "g 127.0.0.1 7001 127.0.0.1 7002")
    assert follower.primary("g") == B
    assert follower.on_resync("g", {"s0": A, "s1": A, "s2": A}) == [Probe("g", A, 2.0), Probe("g", B, 0.0)]
    assert follower.on_probe("g", B, False) == []
    assert follower.on_probe("g", A, True) == [Repoint("g", B, A, "resync")]


def test_a_settled_majority_forgets_the_addresses_left() -> None:
    follower = Follower(SENTINELS)
    follower.track("g", A)
    follower.on_message("s0", "+switch-master", "g 127.0.0.1 7001 127.0.0.1 7002")
    assert follower.on_resync("g", {"s0": B, "s1": B, "s2": B}) == []  # everyone agrees on B
    assert follower.on_resync("g", {"s0": A, "s1": A, "s2": B}) == [Probe("g", A, 2.0)]  # a plain resync


def test_answers_from_unknown_sentinels_do_not_count() -> None:
    follower = Follower(SENTINELS)
    follower.track("g")
    assert follower.on_resync("g", {"x": B, "y": B, "s0": B}) == []


def test_forget_and_many_groups() -> None:
    follower = Follower(SENTINELS)
    follower.track("g1", A)
    follower.track("g2", B)
    assert follower.on_message("s0", "+switch-master", "g2 127.0.0.1 7002 127.0.0.1 7003") == [
        Repoint("g2", B, C, "switch-master")
    ]
    assert follower.primary("g1") == A
    follower.forget("g2")
    assert follower.groups() == ["g1"]
    assert follower.on_probe("g2", C, True) == []


def test_parsers() -> None:
    assert parse_switch_master("g 10.0.0.1 6379 10.0.0.2 6380") == (
        "g",
        Address("10.0.0.1", 6379),
        Address("10.0.0.2", 6380),
    )
    assert parse_switch_master("g 10.0.0.1 6379 10.0.0.2") is None
    master = parse_instance("master g 10.0.0.1 6379 #quorum 2/2")
    assert master is not None
    assert (master.kind, master.master_name, master.master) == ("master", "g", None)
    replica = parse_instance("slave 10.0.0.2:6380 10.0.0.2 6380 @ g 10.0.0.1 6379")
    assert replica is not None
    assert (replica.address, replica.master) == (Address("10.0.0.2", 6380), Address("10.0.0.1", 6379))
    assert parse_instance("1") is None
    with pytest.raises(ValueError, match="at least one sentinel"):
        Follower(())
