"""The agent's restart decisions, pure: backoff, and as what a Redis node of a watched group restarts."""

from __future__ import annotations

import pytest

from cachefleet.agent.restart import (
    FAILOVER_START,
    NO_MAJORITY_RETRY,
    POLL_INTERVAL,
    Answer,
    Decision,
    Names,
    NotMonitoring,
    StartAsConfigured,
    StartAsReplica,
    Unreachable,
    Wait,
    backoff,
    decide,
)
from cachefleet.agent.sentinels import answer_from_replies
from cachefleet.engines.resp import ReplyError
from cachefleet.hosts.base import RestartPolicy

ME = ("10.0.0.11", 7001)
OTHER = ("10.0.0.12", 7002)
THIRD = ("10.0.0.13", 7003)
SENTINELS = (("10.0.0.11", 26379), ("10.0.0.12", 26379), ("10.0.0.13", 26379))
POLICY = RestartPolicy(master_name="orders", sentinels=SENTINELS, address=ME[0], down_after_ms=1000)
WINDOW = 1.0 + FAILOVER_START


def names(primary: tuple[str, int], in_progress: bool = False) -> Names:
    return Names(primary, failover_in_progress=in_progress)


def test_backoff_first_restarts_are_immediate_then_doubles_to_a_cap() -> None:
    assert [backoff(n) for n in (-1, 0, 1, 2, 3, 4)] == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0]
    assert backoff(100) == 30.0


CASES: list[tuple[str, RestartPolicy | None, list[Answer], float, Decision]] = [
    ("no policy", None, [], 0.0, StartAsConfigured("no Sentinel watches its group")),
    (
        "a policy without Sentinels",
        RestartPolicy("orders", (), ME[0]),
        [],
        0.0,
        StartAsConfigured("no Sentinel watches its group"),
    ),
    (
        "all name another node: a replica of it",
        POLICY,
        [names(OTHER)] * 3,
        0.0,
        StartAsReplica(OTHER, "the Sentinels name 10.0.0.12:7002 primary"),
    ),
    (
        "a majority names another node, one is behind",
        POLICY,
        [names(ME), names(OTHER), names(OTHER)],
        0.5,
        StartAsReplica(OTHER, "the Sentinels name 10.0.0.12:7002 primary"),
    ),
    (
        "a majority names another node, one cannot be reached",
        POLICY,
        [Unreachable(), names(OTHER), names(OTHER)],
        0.0,
        StartAsReplica(OTHER, "the Sentinels name 10.0.0.12:7002 primary"),
    ),
    (
        "they still name it, early: wait for the verdict",
        POLICY,
        [names(ME)] * 3,
        0.2,
        Wait(POLL_INTERVAL, "the Sentinels still name it primary; waiting for their verdict"),
    ),
    (
        "they name it, a failover in progress past the window: wait for its outcome",
        POLICY,
        [names(ME, in_progress=True), names(ME), names(ME)],
        WINDOW + 5,
        Wait(POLL_INTERVAL, "a failover of its group is in progress"),
    ),
    (
        "they name it and made no failover within the window: as it was",
        POLICY,
        [names(ME)] * 3,
        WINDOW,
        StartAsConfigured("the Sentinels made no failover: it is still their primary"),
    ),
    (
        "only one Sentinel answers, naming another node: no majority",
        POLICY,
        [names(OTHER), Unreachable(), Unreachable()],
        10.0,
        Wait(NO_MAJORITY_RETRY, "no majority of its Sentinels answers with one primary"),
    ),
    (
        "only one Sentinel answers, naming it: never a second master",
        POLICY,
        [names(ME), Unreachable(), Unreachable()],
        60.0,
        Wait(NO_MAJORITY_RETRY, "no majority of its Sentinels answers with one primary"),
    ),
    (
        "three different answers: no majority",
        POLICY,
        [names(ME), names(OTHER), names(THIRD)],
        60.0,
        Wait(NO_MAJORITY_RETRY, "no majority of its Sentinels answers with one primary"),
    ),
    (
        "none reachable",
        POLICY,
        [Unreachable()] * 3,
        60.0,
        Wait(NO_MAJORITY_RETRY, "no majority of its Sentinels answers with one primary"),
    ),
    (
        "a majority does not monitor the group: no failover can come",
        POLICY,
        [NotMonitoring(), NotMonitoring(), Unreachable()],
        0.0,
        StartAsConfigured("its Sentinels do not monitor the group"),
    ),
    (
        "one does not monitor it, the others name another node",
        POLICY,
        [NotMonitoring(), names(OTHER), names(OTHER)],
        0.0,
        StartAsReplica(OTHER, "the Sentinels name 10.0.0.12:7002 primary"),
    ),
]


@pytest.mark.parametrize(("policy", "answers", "waited", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(policy: RestartPolicy | None, answers: list[Answer], waited: float, expected: Decision) -> None:
    assert decide(policy, ME, answers, waited) == expected


def test_the_window_is_down_after_plus_the_time_a_failover_takes_to_start() -> None:
    slow = RestartPolicy("orders", SENTINELS, ME[0], down_after_ms=5000)
    assert isinstance(decide(slow, ME, [names(ME)] * 3, 5.0 + FAILOVER_START - 0.01), Wait)
    assert isinstance(decide(slow, ME, [names(ME)] * 3, 5.0 + FAILOVER_START), StartAsConfigured)


def test_a_node_at_the_same_address_on_another_port_is_another_node() -> None:
    neighbour = (ME[0], ME[1] + 1)
    decision = decide(POLICY, ME, [names(neighbour)] * 3, 0.0)
    assert decision == StartAsReplica(neighbour, f"the Sentinels name {ME[0]}:{ME[1] + 1} primary")


def test_sentinel_replies_read_as_answers() -> None:
    master = ["name", "orders", "ip", "10.0.0.11", "port", "7001", "flags", "master,s_down,o_down,failover_in_progress"]
    assert answer_from_replies(["10.0.0.12", "7002"], master) == Names(("10.0.0.12", 7002), failover_in_progress=True)
    assert answer_from_replies(["10.0.0.11", "7001"], ["flags", "master"]) == Names(("10.0.0.11", 7001))
    assert answer_from_replies(None, ReplyError("ERR No such master with that name")) == NotMonitoring()
    # A Sentinel that wants a password says nothing about the group: never "not monitoring".
    noauth = ReplyError("NOAUTH Authentication required.")
    assert answer_from_replies(noauth, noauth) == Unreachable()
    assert answer_from_replies(["10.0.0.11", "x"], ["flags", "master"]) == Unreachable()
    assert answer_from_replies("OK", ["flags", "master"]) == Unreachable()
