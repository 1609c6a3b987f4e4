"""The reconcile loop in memory: failures during and after creation, blocked plans, stale passes.

A fake fleet (tests/support/fakes.py) stands for the processes; ``Effects`` stands for the executor
and records the actions it is given, failing the way a test asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from tests.support.fakes import Fleet

from cachefleet.control.actions import Action, AllocatePort, Plan, StartNode
from cachefleet.control.kinds.base import PlannedKind
from cachefleet.control.loop import (
    BLOCKED_BACKOFF,
    MAX_WAITING_DELAY,
    MIN_SLICE_PAUSE,
    RETRY_BACKOFF,
    WAITING_DELAY,
    Backoff,
    Reconciler,
    resync_slices,
    waiting_delay,
)
from cachefleet.control.queue import KeyedQueue
from cachefleet.model.errors import Fatal, RestoreFailed
from cachefleet.model.nodes import Placement, member_key
from cachefleet.model.status import ClusterState, GroupState
from cachefleet.store.kinds import CLUSTERS, GROUPS

G, C = GROUPS.name, CLUSTERS.name
MISSING = "redis 7.0.15 is no longer installed on this host"
PRIMARY = ("127.0.0.1", 30001)  # g-001's port: the fleet's first
G002 = Placement("local", "127.0.0.1", "us-east-1b")  # where the fleet runs g-002: the embedded host, 2nd AZ


class Effects:
    """Records each plan's actions; raises what ``fail`` returns for an action, if anything."""

    def __init__(self, fail: Callable[[Action], Exception | None] = lambda action: None) -> None:
        self.fail = fail
        self.runs: list[tuple[Action, ...]] = []
        self.failed = 0
        self.before: Callable[[], None] = lambda: None
        self.changed = asyncio.Event()  # set after every run, failed or not

    async def run(self, actions: Sequence[Action]) -> None:
        self.runs.append(tuple(actions))
        self.changed.set()
        self.before()
        for action in actions:
            error = self.fail(action)
            if error is not None:
                self.failed += 1
                raise error


def starts_fail(action: Action) -> Exception | None:
    return Fatal(MISSING) if isinstance(action, StartNode) else None


def reconciler(fleet: Fleet, effects: Effects, **backoff: Backoff) -> Reconciler:
    return Reconciler(
        store=fleet.store,
        executor=effects,
        kinds=fleet.kinds.values(),
        queue=KeyedQueue(),
        clock=lambda: fleet.clock,
        resync_interval=3600.0,
        **backoff,
    )


def events(fleet: Fleet) -> list[tuple[str, str]]:
    return [(e.source_id, e.message) for e in fleet.store.events()]


def passes(loop: Reconciler, key: tuple[str, str], count: int) -> list[float | None]:
    async def run() -> list[float | None]:
        return [await loop.reconcile(key) for _ in range(count)]

    return asyncio.run(run())


def test_a_failure_after_creation_is_an_event_and_a_retry_with_backoff_and_the_status_stays() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(member_key("g-002"))
    effects = Effects(starts_fail)
    delays = passes(reconciler(fleet, effects), (G, "g"), 4)
    assert delays == [RETRY_BACKOFF.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert len(effects.runs) == 4  # each pass tried the restart again
    assert fleet.status(G, "g").status == GroupState.AVAILABLE
    assert fleet.status(C, "g-002").status == ClusterState.AVAILABLE
    # Told once, not on every attempt.
    assert events(fleet) == [("g", f"Failed to apply changes to replication group g: {MISSING}. Retrying")]


def test_the_backoff_is_capped_at_a_minute() -> None:
    assert [RETRY_BACKOFF.delay(n) for n in (6, 7, 20)] == [32.0, 60.0, 60.0]
    assert BLOCKED_BACKOFF.delay(20) == 10.0


def test_the_loop_retries_by_itself_until_the_failure_ends() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(member_key("g-002"))
    effects = Effects(starts_fail)
    loop = reconciler(fleet, effects, retry_backoff=Backoff(0.001, 0.002))

    async def until(done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                effects.changed.clear()
                await effects.changed.wait()

    async def scenario() -> None:
        running = asyncio.create_task(loop.run())
        try:
            await until(lambda: effects.failed >= 3)  # retried by the loop, nobody asking
            effects.fail = lambda action: None  # the engine is back
            await until(lambda: len(effects.runs) > effects.failed)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())
    assert effects.runs[-1] == (StartNode(member_key("g-002"), G002, replicaof=PRIMARY),)
    assert fleet.status(G, "g").status == GroupState.AVAILABLE
    assert len([m for _, m in events(fleet) if m.startswith("Failed")]) == 1


def test_a_new_reason_is_told_again_and_a_success_starts_the_count_afresh() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(member_key("g-002"))
    effects = Effects(starts_fail)
    loop = reconciler(fleet, effects)
    assert passes(loop, (G, "g"), 2) == [1.0, 2.0]
    effects.fail = lambda action: Fatal("node g-002/0001 has no port")
    assert passes(loop, (G, "g"), 1) == [4.0]
    effects.fail = lambda action: None
    assert passes(loop, (G, "g"), 1) == [0.0]  # it took steps: look again at once
    effects.fail = starts_fail
    assert passes(loop, (G, "g"), 1) == [1.0]
    assert [m for _, m in events(fleet) if m.startswith("Failed")] == [
        f"Failed to apply changes to replication group g: {MISSING}. Retrying",
        "Failed to apply changes to replication group g: node g-002/0001 has no port. Retrying",
        f"Failed to apply changes to replication group g: {MISSING}. Retrying",
    ]


def test_a_failure_during_creation_ends_create_failed_and_the_group_is_left_alone() -> None:
    fleet = Fleet()
    fleet.group(state=GroupState.CREATING, running=False)
    effects = Effects(lambda action: Fatal("no free port in 21000-21002 on 127.0.0.1 for node g-003/0001"))
    assert passes(reconciler(fleet, effects), (G, "g"), 2) == [None, None]
    assert len(effects.runs) == 1  # the second pass does nothing: DeleteReplicationGroup cleans up
    status = fleet.status(G, "g")
    assert status.status == GroupState.CREATE_FAILED
    assert "no free port" in status.message
    assert events(fleet) == [("g", f"Failed to create replication group g: {status.message}")]


def test_a_cluster_whose_creation_fails_stays_creating_and_retries() -> None:
    fleet = Fleet()
    fleet.cluster("c", state=ClusterState.CREATING, running=False)
    effects = Effects(lambda action: Fatal(MISSING))
    assert passes(reconciler(fleet, effects), (C, "c"), 2) == [1.0, 2.0]
    assert fleet.status(C, "c").status == ClusterState.CREATING
    assert events(fleet) == [("c", f"Failed to create cache cluster c: {MISSING}. Retrying")]


def test_a_refused_seed_fails_the_group_and_its_members() -> None:
    fleet = Fleet()
    spec = fleet.group(state=GroupState.CREATING, running=False)
    first = CLUSTERS.get(fleet.store, "g-001").spec
    CLUSTERS.put_spec(fleet.store, "g-001", replace(first, seed_snapshot="s1"))
    effects = Effects(lambda action: RestoreFailed("g-001", "sha256 mismatch"))
    assert passes(reconciler(fleet, effects), (G, "g"), 1) == [None]
    assert fleet.status(G, "g").status == GroupState.CREATE_FAILED
    assert {fleet.status(C, m).status for m in spec.members} == {ClusterState.RESTORE_FAILED}
    assert events(fleet) == [
        ("g-001", "Restore from snapshot failed for cache cluster g-001: sha256 mismatch"),
        ("g", "Failed to create replication group g: Restore from s1 failed: sha256 mismatch"),
    ]
    assert fleet.woken == [("snapshot", "s1")]


def test_a_blocked_plan_tells_its_event_once_and_backs_off_until_the_port_frees() -> None:
    fleet = Fleet()
    fleet.group()
    held = fleet.squat(member_key("g-002"))
    effects = Effects()
    loop = reconciler(fleet, effects)
    assert passes(loop, (G, "g"), 3) == [BLOCKED_BACKOFF.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert effects.runs == []  # nothing to do but wait: no new port
    told = [m for s, m in events(fleet) if s == "g-002"]
    assert told == [
        f"Cache node 0001 of g-002 cannot start: its port {held} is held by another process. "
        "Retrying until the port is free"
    ]
    assert fleet.status(G, "g").status == GroupState.AVAILABLE

    fleet.host.squatted.clear()
    assert passes(loop, (G, "g"), 1) == [0.0]
    assert effects.runs[-1] == (StartNode(member_key("g-002"), G002, replicaof=PRIMARY),)


def test_a_resource_in_backoff_is_left_out_of_the_resync_until_woken() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.cluster("c")
    fleet.kill(member_key("g-002"))
    queue: KeyedQueue[tuple[str, str]] = KeyedQueue()
    loop = Reconciler(
        store=fleet.store, executor=Effects(starts_fail), kinds=fleet.kinds.values(), queue=queue,
        clock=lambda: fleet.clock, resync_interval=3600.0,
    )

    async def scenario() -> list[tuple[str, str]]:
        await loop.reconcile((G, "g"))  # fails: held for a second
        loop.resync()
        queued = [await queue.get() for _ in range(len(queue))]
        loop.wake((G, "g"))  # the API changed it: at once
        queued.append(await queue.get())
        return queued

    assert asyncio.run(scenario()) == [(C, "c"), (G, "g")]


def test_the_resync_leaves_a_groups_members_to_their_group() -> None:
    """A member is planned with its group: passing it too would only wake the group once more."""
    fleet = Fleet()
    fleet.group()
    fleet.cluster("c")
    queue: KeyedQueue[tuple[str, str]] = KeyedQueue()
    loop = Reconciler(
        store=fleet.store, executor=Effects(), kinds=fleet.kinds.values(), queue=queue,
        clock=lambda: fleet.clock, resync_interval=3600.0,
    )

    async def scenario() -> list[tuple[str, str]]:
        loop.resync()
        return [await queue.get() for _ in range(len(queue))]

    assert sorted(asyncio.run(scenario())) == [(C, "c"), (G, "g")]
    assert sorted(fleet.store.ids(C)) == ["c", "g-001", "g-002", "g-003"]  # the members are there


def test_a_pass_whose_spec_moved_on_records_no_status_and_looks_again() -> None:
    fleet = Fleet()
    spec = fleet.group()
    fleet.kill(member_key("g-002"))
    effects = Effects()
    effects.before = lambda: GROUPS.put_spec(fleet.store, "g", replace(spec, description="changed by the API"))
    assert passes(reconciler(fleet, effects), (G, "g"), 1) == [0.0]
    node = fleet.status(C, "g-002").node("0001")
    assert node.status == "available"  # the pass's "rebooting" was computed from the older spec
    # A plan that took steps tells them even so.
    assert events(fleet) == [("g-002", "Recovering cache nodes 0001")]


def test_unexpected_errors_back_off_quickly_and_tell_no_one() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(member_key("g-002"))
    effects = Effects(lambda action: OSError("disk full") if isinstance(action, StartNode) else None)
    assert passes(reconciler(fleet, effects), (G, "g"), 3) == [0.2, 0.4, 0.8]
    assert events(fleet) == []


def test_a_kind_is_registered_once() -> None:
    fleet = Fleet()
    with pytest.raises(ValueError, match="twice"):
        Reconciler(
            store=fleet.store, executor=Effects(), kinds=[*fleet.kinds.values(), fleet.kinds[G]],
            queue=KeyedQueue(), clock=lambda: fleet.clock, resync_interval=1.0,
        )
    # A key of a kind nobody registered (snapshots without a snapshot worker) is passed over.
    assert passes(reconciler(fleet, Effects()), ("snapshot", "s1"), 1) == [None]


def test_ports_come_back_through_the_executor_for_a_lost_directory() -> None:
    fleet = Fleet()
    fleet.group()
    recorded = fleet.host.port_now(member_key("g-003"))
    fleet.lose(member_key("g-003"))
    effects = Effects()
    passes(reconciler(fleet, effects), (G, "g"), 1)
    g003 = Placement("local", "127.0.0.1", "us-east-1c")
    assert effects.runs == [(AllocatePort(member_key("g-003"), g003, port=recorded),)]


def test_a_refused_seed_fails_a_standalone_cluster_restore_failed() -> None:
    fleet = Fleet()
    fleet.cluster("c", state=ClusterState.CREATING, running=False, seed_object="incoming/bad.rdb")
    effects = Effects(lambda action: RestoreFailed("c", "not an RDB file"))
    assert passes(reconciler(fleet, effects), (C, "c"), 2) == [None, None]
    assert len(effects.runs) == 1  # left alone afterwards: DeleteCacheCluster cleans up
    status = fleet.status(C, "c")
    assert status.status == ClusterState.RESTORE_FAILED
    assert status.message == "Restore from incoming/bad.rdb failed: not an RDB file"
    assert events(fleet) == [("c", "Restore from snapshot failed for cache cluster c: not an RDB file")]


def test_a_changed_parameter_group_wakes_every_cluster_and_group_using_it() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.cluster("c")
    fleet.cluster("m", engine="memcached")
    assert passes(reconciler(fleet, Effects()), ("cache-parameter-group", "default.redis7"), 1) == [None]
    assert sorted(set(fleet.woken)) == [(C, "c"), (G, "g")]


class _LoadDecides(PlannedKind[Any, None]):
    """A kind whose ``load`` gives the pass's plan (or None) itself."""

    records = GROUPS

    async def observe(self, loaded: Any) -> None:
        return None

    def plan(self, loaded: Any, observed: None) -> Plan:
        raise AssertionError("load decided")


class _Revisited(_LoadDecides):
    """A kind whose every pass converges, with something coming due in 12.5 s (a certificate)."""

    def load(self, resource_id: str) -> Plan:
        return Plan(converged=True, revisit=12.5)


def test_a_converged_pass_comes_back_when_its_plan_says_something_comes_due() -> None:
    fleet = Fleet()
    loop = Reconciler(
        store=fleet.store, executor=Effects(), kinds=[_Revisited()], queue=KeyedQueue(),
        clock=lambda: fleet.clock, resync_interval=3600.0,
    )  # fmt: skip
    assert asyncio.run(loop.reconcile((G, "g"))) == 12.5


class _Waiting(_LoadDecides):
    """A kind whose resource, while it exists (``present``), waits on something outside."""

    def __init__(self) -> None:
        self.present = True

    def load(self, resource_id: str) -> Plan | None:
        return Plan() if self.present else None


def test_a_resource_gone_and_back_under_its_id_waits_afresh() -> None:
    fleet = Fleet()
    kind = _Waiting()
    loop = Reconciler(
        store=fleet.store, executor=Effects(), kinds=[kind], queue=KeyedQueue(),
        clock=lambda: fleet.clock, resync_interval=3600.0,
    )  # fmt: skip

    async def scenario() -> list[float | None]:
        delays = [await loop.reconcile((G, "g"))]
        await asyncio.sleep(0.2)
        delays.append(await loop.reconcile((G, "g")))  # waited 0.2 s or more: a longer delay
        kind.present = False
        delays.append(await loop.reconcile((G, "g")))
        kind.present = True
        delays.append(await loop.reconcile((G, "g")))
        return delays

    first, later, gone, back = asyncio.run(scenario())
    assert first == back == WAITING_DELAY
    assert later is not None
    assert later >= waiting_delay(0.2)
    assert gone is None


@pytest.mark.parametrize(
    ("count", "interval", "slices", "pause"),
    [
        (0, 30.0, 1, 30.0),  # nothing to queue: one look at the list per interval
        (1, 30.0, 1, 30.0),
        (200, 30.0, 200, 0.15),  # one resource at a time
        (1000, 30.0, 300, 0.1),  # groups of 3 or 4, never more often than MIN_SLICE_PAUSE
        (10, 0.5, 5, 0.1),
        (10, 0.05, 1, 0.05),  # an interval shorter than a pause: all at once
    ],
)
def test_the_resync_is_spread_over_its_interval(count: int, interval: float, slices: int, pause: float) -> None:
    got_slices, got_pause = resync_slices(count, interval)
    assert (got_slices, got_pause) == (slices, pytest.approx(pause))
    assert got_pause >= min(MIN_SLICE_PAUSE, interval) - 1e-9


def test_a_waiting_resource_is_looked_at_after_a_quarter_of_its_wait_so_far() -> None:
    assert waiting_delay(0.0) == WAITING_DELAY == 0.01  # a fresh replica syncs in ~30 ms
    assert waiting_delay(0.2) == pytest.approx(0.05)
    assert waiting_delay(3.0) == MAX_WAITING_DELAY == 0.2  # a Sentinel failover: 1-2 s
    assert waiting_delay(86_400.0) == MAX_WAITING_DELAY  # waiting for a day
    delays = [waiting_delay(n / 100) for n in range(1000)]
    assert delays == sorted(delays)
