"""What the replication group kind plans, case by case: one row per planner branch.

Each case starts from a converged group in the fake fleet (a store, ``FakeHost`` and ``FakeProbes``
that agree: tests/support/fakes.py), breaks or changes one thing, and checks the plan the group's
registration makes of it (load, observe, plan), without a process or a socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from tests.support.fakes import ADDRESS, AZS, Fleet, master, replica_of

from cachefleet.control.actions import (
    AllocatePort,
    ConfigSet,
    DeleteRecord,
    DetachMember,
    Event,
    Plan,
    ReloadEndpoint,
    RemoveNode,
    ReplicaOf,
    RestartNode,
    SentinelFailover,
    SetEndpointPrimary,
    StartEndpoint,
    StartNode,
    StartSentinel,
    Switchover,
    TuneSentinel,
)
from cachefleet.control.observe import PARAMETERS_FILE
from cachefleet.control.planners import group as group_planner
from cachefleet.control.proxy import ENDPOINT_FILE
from cachefleet.engines.haproxy import ServerState, server_name
from cachefleet.engines.sentinel import ASK_PERIOD_MS, FAST_PING_PERIOD_MS, PING_PERIOD_MS, Timings
from cachefleet.model import parameters as pm
from cachefleet.model.nodes import PROXY_KEY, READER_SLOT, Placement, endpoint_key, member_key, sentinel_keys
from cachefleet.model.specs import SnapshotSpec
from cachefleet.model.status import (
    ClusterState,
    ClusterStatus,
    GroupState,
    NodeState,
    NodeStatus,
    SnapshotState,
    SnapshotStatus,
)
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS, SNAPSHOTS

G, C = GROUPS.name, CLUSTERS.name
MEMBERS = ("g-001", "g-002", "g-003")
ENDPOINT = Placement("local", ADDRESS, "")  # group endpoints run on the embedded host


def port(fleet: Fleet, member: str) -> int:
    found = fleet.host.port_now(member_key(member))
    assert found is not None
    return found


def at(index: int) -> Placement:
    """Where member ``index`` (from 1) of a group on the embedded host runs: its AZ in turn."""
    return Placement("local", ADDRESS, AZS[(index - 1) % len(AZS)])


def member_at(member: str) -> Placement:
    return at(MEMBERS.index(member) + 1)


def primary(fleet: Fleet) -> tuple[str, int]:
    return (ADDRESS, port(fleet, "g-001"))


def messages(plan: Plan) -> list[tuple[str, str]]:
    return [(e.source_id, e.message) for e in plan.events]


def state(plan: Plan, kind: str, resource_id: str) -> object:
    return plan.statuses[(kind, resource_id)].status


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[Fleet], object]  # builds and breaks the world
    check: Callable[[Fleet, Plan | None], None]  # what the plan must say of it


def _healthy(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()
    assert plan.converged
    assert plan.events == ()
    assert {k: s.status for k, s in plan.statuses.items()} == {
        (G, "g"): GroupState.AVAILABLE,
        **{(C, m): ClusterState.AVAILABLE for m in ("g-001", "g-002", "g-003")},
    }


# -- creation ----------------------------------------------------------------------------------


def _new_group(fleet: Fleet) -> None:
    fleet.group(state=GroupState.CREATING, running=False)


def _new_group_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    endpoint = endpoint_key("g")
    assert plan.actions == (
        *(AllocatePort(member_key(m), at(i)) for i, m in enumerate(MEMBERS, 1)),
        AllocatePort(endpoint, ENDPOINT, "port"),
        AllocatePort(endpoint, ENDPOINT, READER_SLOT),
    )
    assert state(plan, G, "g") == GroupState.CREATING
    assert not plan.converged
    # Where each member runs is recorded with the first step: the next pass looks there.
    assert [plan.statuses[(C, m)].node("0001").placement for m in MEMBERS] == [at(1), at(2), at(3)]  # type: ignore[union-attr]


def _ports_given(fleet: Fleet) -> None:
    spec = fleet.group(state=GroupState.CREATING, running=False)
    for member in spec.members:
        fleet.host.allocate_port(member_key(member))
    fleet.host.allocate_port(endpoint_key("g"))
    fleet.host.allocate_port(endpoint_key("g"), (), READER_SLOT)
    _placed(fleet, spec.members)


def _placed(fleet: Fleet, members: tuple[str, ...]) -> None:
    """The members were placed by an earlier pass (its statuses recorded), as the planner places them."""
    for index, member in enumerate(members, 1):
        node = NodeStatus("0001", NodeState.CREATING, placement=at(index))
        fleet.put_status(C, member, ClusterStatus(ClusterState.CREATING, nodes=(node,)))


def _ports_given_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    spec = GROUPS.get(fleet.store, "g").spec
    seed = group_planner.replication_id(spec)
    starts = [a for a in plan.actions if isinstance(a, StartNode)]
    # Every member seeded alike; the replicas pointed at the primary from their first start.
    assert starts == [
        StartNode(member_key("g-001"), at(1), replication_id=seed),
        StartNode(member_key("g-002"), at(2), replicaof=primary(fleet), replication_id=seed),
        StartNode(member_key("g-003"), at(3), replicaof=primary(fleet), replication_id=seed),
    ]
    (endpoint,) = [a for a in plan.actions if isinstance(a, StartEndpoint)]
    assert endpoint.inputs.primary == primary(fleet)


def _created(fleet: Fleet) -> None:
    fleet.group(state=GroupState.CREATING)


def _created_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert state(plan, G, "g") == GroupState.AVAILABLE
    assert messages(plan) == [("g", "Replication group g created")]  # members' own events only later
    assert all(state(plan, C, m) == ClusterState.AVAILABLE for m in ("g-001", "g-002", "g-003"))


# -- replacement ---------------------------------------------------------------------------------


def _replica_killed(fleet: Fleet) -> None:
    fleet.group()
    fleet.kill(member_key("g-002"))


def _replica_killed_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    # Back with its data, pointed at the primary, never seeded.
    assert plan.actions == (StartNode(member_key("g-002"), at(2), replicaof=primary(fleet)),)
    assert messages(plan) == [("g-002", "Recovering cache nodes 0001")]
    assert plan.statuses[(G, "g")].recovering == ("g-002",)  # type: ignore[union-attr]
    assert state(plan, G, "g") == GroupState.AVAILABLE
    node = plan.statuses[(C, "g-002")].node("0001")  # type: ignore[union-attr]
    assert node is not None
    assert (node.status, node.port) == (NodeState.REBOOTING, port(fleet, "g-002"))


def _recovered(fleet: Fleet) -> None:
    fleet.group()
    fleet.with_status(G, "g", recovering=("g-002",))


def _recovered_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert messages(plan) == [("g-002", "Finished recovery for cache nodes 0001")]
    assert plan.statuses[(G, "g")].recovering == ()  # type: ignore[union-attr]


def _dir_lost(fleet: Fleet) -> None:
    fleet.group()
    fleet.lose(member_key("g-002"))


def _dir_lost_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    recorded = fleet.status(C, "g-002").node("0001").port
    # The replacement asks for the port the store recorded: clients keep their address.
    assert plan.actions == (AllocatePort(member_key("g-002"), at(2), port=recorded),)
    assert plan.statuses[(C, "g-002")].node("0001").port == recorded  # type: ignore[union-attr]


def _port_squatted(fleet: Fleet) -> None:
    fleet.group()
    fleet.squat(member_key("g-002"))


def _port_squatted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    held = port(fleet, "g-002")
    assert plan.actions == ()  # no new port: it waits for its own
    assert [(e.source_id, e.message.split(".")[0]) for e in plan.blocked] == [
        ("g-002", f"Cache node 0001 of g-002 cannot start: its port {held} is held by another process")
    ]
    assert not plan.converged


# -- failover --------------------------------------------------------------------------------------


def _primary_killed_with_sentinels(fleet: Fleet) -> None:
    fleet.group(failover=True)
    fleet.kill(member_key("g-001"))


def _primary_killed_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()  # Sentinel promotes; a restarted primary would come back empty


def _failover_aftermath(fleet: Fleet) -> None:
    fleet.group(failover=True)
    fleet.kill(member_key("g-001"))
    fleet.promote("g", "g-002")


def _failover_aftermath_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    message = "Failover from primary node g-001 to replica node g-002 completed"
    assert messages(plan)[:3] == [("g-002", message), ("g", message), ("g-001", "Recovering cache nodes 0001")]
    # The old primary returns as a replica of the new one (the endpoint is already fenced).
    assert plan.actions == (StartNode(member_key("g-001"), at(1), replicaof=(ADDRESS, port(fleet, "g-002"))),)
    group = plan.statuses[(G, "g")]
    assert group.primary_cluster_id == "g-002"  # type: ignore[union-attr]
    assert group.recovering == ("g-001",)  # type: ignore[union-attr]


def _test_failover(fleet: Fleet) -> None:
    fleet.group(failover=True, failover_requests=1)


def _test_failover_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (SentinelFailover(sentinel_keys("g")[0], at(1), "g", primary(fleet)),)
    assert plan.statuses[(G, "g")].failovers_done == 1  # type: ignore[union-attr]


def _sentinels_wanted(fleet: Fleet) -> None:
    spec = fleet.group()
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=True))


def _sentinels_wanted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    # Placed first, one per AZ of the members (recorded in the group's status), then given ports.
    assert plan.actions == ()
    assert plan.statuses[(G, "g")].sentinels == {k.node_id: at(i) for i, k in enumerate(sentinel_keys("g"), 1)}  # type: ignore[union-attr]
    placed = replace(fleet.status(G, "g"), sentinels=plan.statuses[(G, "g")].sentinels)  # type: ignore[union-attr]
    fleet.put_status(G, "g", placed)
    again = asyncio.run(fleet.plan(G, "g"))
    assert again is not None
    assert again.actions == tuple(AllocatePort(k, at(i)) for i, k in enumerate(sentinel_keys("g"), 1))


def _sentinels_to_start(fleet: Fleet) -> None:
    _sentinels_wanted(fleet)
    for key in sentinel_keys("g"):
        fleet.host.allocate_port(key)
    fleet.with_status(G, "g", sentinels={k.node_id: at(i) for i, k in enumerate(sentinel_keys("g"), 1)})


def _sentinels_to_start_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    keys = enumerate(sentinel_keys("g"), 1)
    assert plan.actions == tuple(StartSentinel(k, at(i), "g", primary(fleet)) for i, k in keys)
    assert state(plan, G, "g") == GroupState.AVAILABLE


def _sentinels_unwanted(fleet: Fleet) -> None:
    spec = fleet.group(failover=True)
    GROUPS.put_spec(fleet.store, "g", replace(spec, automatic_failover=False, multi_az=False))


def _sentinels_unwanted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == tuple(RemoveNode(k, at(i)) for i, k in enumerate(sentinel_keys("g"), 1))
    assert plan.statuses[(G, "g")].failover_active is False  # type: ignore[union-attr]
    assert ("g", "Automatic failover has been turned off for replication group g") in messages(plan)


def _switchover(fleet: Fleet) -> None:
    spec = fleet.group()
    GROUPS.put_spec(fleet.store, "g", replace(spec, primary_cluster_id="g-002"))


def _switchover_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (Switchover(old=primary(fleet), new=(ADDRESS, port(fleet, "g-002"))),)


def _stray_master(fleet: Fleet) -> None:
    fleet.group()
    fleet.probes.redis_by_port[port(fleet, "g-003")] = master()


def _stray_master_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (ReplicaOf(member_key("g-003"), at(3), primary(fleet)),)


# -- endpoint ----------------------------------------------------------------------------------------


def _endpoint_down(fleet: Fleet) -> None:
    fleet.group()
    fleet.kill(PROXY_KEY)  # the host's endpoint proxy


def _endpoint_down_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    (start,) = plan.actions
    assert isinstance(start, StartEndpoint)
    assert (start.node, start.inputs.primary) == (endpoint_key("g"), primary(fleet))


def _endpoint_dir_lost(fleet: Fleet) -> None:
    fleet.group()
    fleet.lose(endpoint_key("g"))


def _endpoint_dir_lost_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    group = fleet.status(G, "g")
    assert plan.actions == (
        AllocatePort(endpoint_key("g"), ENDPOINT, "port", group.primary_endpoint_port),
        AllocatePort(endpoint_key("g"), ENDPOINT, READER_SLOT, group.reader_endpoint_port),
    )
    assert plan.statuses[(G, "g")].primary_endpoint_port == group.primary_endpoint_port  # type: ignore[union-attr]


def _endpoint_stale(fleet: Fleet) -> None:
    fleet.group()
    entry = json.loads(fleet.host.nodes_by_key[endpoint_key("g")].files[ENDPOINT_FILE])
    fleet.host.nodes_by_key[endpoint_key("g")].files[ENDPOINT_FILE] = json.dumps({**entry, "nodes": [entry["primary"]]})


def _endpoint_stale_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert [type(a) for a in plan.actions] == [ReloadEndpoint]


def _endpoint_misrouted(fleet: Fleet) -> None:
    fleet.group()
    servers = fleet.probes.endpoints["g"]
    fleet.probes.endpoints["g"] = {n: replace(s, maint=False) for n, s in servers.items()}


def _endpoint_misrouted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (SetEndpointPrimary(endpoint_key("g"), ENDPOINT, server_name(primary(fleet)[1])),)


# -- reboots and parameters ----------------------------------------------------------------------


def _reboot_member(fleet: Fleet) -> None:
    fleet.group()
    member = CLUSTERS.get(fleet.store, "g-002").spec
    CLUSTERS.put_spec(fleet.store, "g-002", replace(member, reboot_requests=1, reboot_nodes=("0001",)))
    fleet.with_status(C, "g-002", status=ClusterState.REBOOTING)


def _reboot_member_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (RestartNode(member_key("g-002"), at(2), primary(fleet)),)
    assert messages(plan) == [("g-002", "Cache node 0001 shutdown")]
    member = plan.statuses[(C, "g-002")]
    assert (member.status, member.restarting) == (ClusterState.REBOOTING, ("0001",))  # type: ignore[union-attr]


def _rebooted(fleet: Fleet) -> None:
    _reboot_member(fleet)
    fleet.with_status(C, "g-002", restarting=("0001",))


def _rebooted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()
    assert messages(plan) == [("g-002", "Cache node 0001 restarted")]
    member = plan.statuses[(C, "g-002")]
    assert (member.status, member.reboots_done) == (ClusterState.AVAILABLE, 1)  # type: ignore[union-attr]


def _live_parameter_differs(fleet: Fleet) -> None:
    fleet.group()
    observed = fleet.probes.redis_by_port[port(fleet, "g-003")]
    config = {**(observed.config or {}), "maxmemory-policy": "allkeys-lru"}
    fleet.probes.redis_by_port[port(fleet, "g-003")] = replace(observed, config=config)


def _live_parameter_differs_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (ConfigSet(member_key("g-003"), at(3), (("maxmemory-policy", "volatile-lru"),)),)
    assert plan.statuses[(C, "g-003")].parameter_apply_status == pm.APPLYING  # type: ignore[union-attr]
    assert not plan.converged


def _reboot_parameter_differs(fleet: Fleet) -> None:
    fleet.group()
    node = fleet.host.nodes_by_key[member_key("g-001")]
    node.files[PARAMETERS_FILE] = json.dumps({"databases": "32"})


def _reboot_parameter_differs_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()
    assert plan.statuses[(C, "g-001")].parameter_apply_status == pm.PENDING_REBOOT  # type: ignore[union-attr]
    assert messages(plan) == [("g-001", "Parameter changes pending reboot for cache nodes 0001")]


# -- snapshots and deletes -----------------------------------------------------------------------


def _snapshot(fleet: Fleet, *, final: bool = False) -> None:
    spec = SnapshotSpec(
        "s1", "manual", "redis", "7.0.15", "cache.t3.micro", fleet.clock, replication_group_id="g", final=final
    )
    status = SnapshotStatus(SnapshotState.CREATING, node_cluster_id="g-002")
    statuses.create(fleet.store, SNAPSHOTS, "s1", spec, status)


def _snapshotting(fleet: Fleet) -> None:
    fleet.group()
    _snapshot(fleet)
    fleet.with_status(G, "g", status=GroupState.SNAPSHOTTING)
    fleet.with_status(C, "g-002", status=ClusterState.SNAPSHOTTING)


def _snapshotting_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()
    assert state(plan, G, "g") == GroupState.SNAPSHOTTING
    assert state(plan, C, "g-002") == ClusterState.SNAPSHOTTING
    assert state(plan, C, "g-001") == ClusterState.AVAILABLE


def _snapshot_done(fleet: Fleet) -> None:
    fleet.group()
    fleet.with_status(G, "g", status=GroupState.SNAPSHOTTING)


def _snapshot_done_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert state(plan, G, "g") == GroupState.AVAILABLE


def _deleting(fleet: Fleet) -> None:
    spec = fleet.group(failover=True)
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True))


def _deleting_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (
        # First: tearing nodes down must not fail over.
        *(RemoveNode(k, at(i)) for i, k in enumerate(sentinel_keys("g"), 1)),
        RemoveNode(endpoint_key("g"), ENDPOINT),
        *(a for i, m in enumerate(MEMBERS, 1) for a in (RemoveNode(member_key(m), at(i)), DeleteRecord(C, m))),
        DeleteRecord(G, "g"),
    )
    assert plan.events == (Event("g", G, "Replication group g deleted"),)


def _deleting_retaining_primary(fleet: Fleet) -> None:
    spec = fleet.group()
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True, retain_primary_cluster=True))


def _deleting_retaining_primary_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert DetachMember("g-001") in plan.actions
    assert RemoveNode(member_key("g-001"), at(1)) not in plan.actions
    assert DeleteRecord(C, "g-002") in plan.actions


def _deleting_after_final_snapshot(fleet: Fleet) -> None:
    _deleting(fleet)
    _snapshot(fleet, final=True)


def _waits_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan == Plan()  # nothing yet: the final snapshot first


def _create_failed(fleet: Fleet) -> None:
    fleet.group()
    fleet.with_status(G, "g", status=GroupState.CREATE_FAILED)


def _nothing_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is None


def _gone(fleet: Fleet) -> None:
    pass


CASES = [
    Case("healthy", lambda f: f.group(), _healthy),
    Case("healthy with sentinels", lambda f: f.group(failover=True), _healthy),
    Case("new group: ports first", _new_group, _new_group_check),
    Case("new group: seeded members start together", _ports_given, _ports_given_check),
    Case("new group: available once all serve", _created, _created_check),
    Case("replica killed: restarted as a replica", _replica_killed, _replica_killed_check),
    Case("replica back: recovery finished", _recovered, _recovered_check),
    Case("replica directory lost: same port", _dir_lost, _dir_lost_check),
    Case("replica port squatted: waits", _port_squatted, _port_squatted_check),
    Case("primary killed: Sentinel's turn", _primary_killed_with_sentinels, _primary_killed_check),
    Case("failover aftermath", _failover_aftermath, _failover_aftermath_check),
    Case("TestFailover", _test_failover, _test_failover_check),
    Case("failover on: sentinel ports", _sentinels_wanted, _sentinels_wanted_check),
    Case("failover on: sentinels start", _sentinels_to_start, _sentinels_to_start_check),
    Case("failover off: sentinels go", _sentinels_unwanted, _sentinels_unwanted_check),
    Case("planned switchover", _switchover, _switchover_check),
    Case("stray master made a replica", _stray_master, _stray_master_check),
    Case("endpoint down", _endpoint_down, _endpoint_down_check),
    Case("endpoint directory lost: same ports", _endpoint_dir_lost, _endpoint_dir_lost_check),
    Case("endpoint config stale", _endpoint_stale, _endpoint_stale_check),
    Case("endpoint misrouted", _endpoint_misrouted, _endpoint_misrouted_check),
    Case("member reboot: one node restarted", _reboot_member, _reboot_member_check),
    Case("member reboot: done", _rebooted, _rebooted_check),
    Case("live parameter differs", _live_parameter_differs, _live_parameter_differs_check),
    Case("reboot parameter differs", _reboot_parameter_differs, _reboot_parameter_differs_check),
    Case("snapshot being taken: snapshotting overlay", _snapshotting, _snapshotting_check),
    Case("snapshot stored: available again", _snapshot_done, _snapshot_done_check),
    Case("delete", _deleting, _deleting_check),
    Case("delete retaining the primary", _deleting_retaining_primary, _deleting_retaining_primary_check),
    Case("delete waits for the final snapshot", _deleting_after_final_snapshot, _waits_check),
    Case("create-failed: left alone", _create_failed, _nothing_check),
    Case("gone", _gone, _nothing_check),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_group_plan(case: Case) -> None:
    fleet = Fleet()
    case.arrange(fleet)
    case.check(fleet, asyncio.run(fleet.plan(G, "g")))


def test_an_endpoint_change_the_proxy_has_queued_is_waited_for_not_asked_again() -> None:
    fleet = Fleet()
    fleet.group(state=GroupState.CREATING)
    fleet.kill(PROXY_KEY)
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    (start,) = plan.actions
    assert isinstance(start, StartEndpoint)
    fleet.endpoint_pending["g"] = start.inputs.to_json()
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == ()
    assert state(plan, G, "g") == GroupState.CREATING  # not available before the proxy serves it
    assert not plan.converged
    # A queued change for another node set is no answer: the wanted one is asked for.
    fleet.endpoint_pending["g"] = json.dumps({"nodes": [list(primary(fleet))]})
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == (start,)


def test_a_replica_waits_for_its_primary_and_a_fenced_endpoint() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(member_key("g-001"))
    fleet.kill(member_key("g-002"))
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    # Without failover the primary restarts; its replica only once the primary serves again.
    assert plan.actions == (StartNode(member_key("g-001"), at(1)),)


def test_a_replica_lagging_behind_keeps_the_group_converging() -> None:
    fleet = Fleet()
    fleet.group(state=GroupState.CREATING)
    fleet.probes.redis_by_port[port(fleet, "g-003")] = replica_of(port(fleet, "g-001"), link_up=False)
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert state(plan, G, "g") == GroupState.CREATING  # available means every replica has its data
    assert not plan.converged


def test_the_seed_is_stable_for_a_group_and_differs_between_groups() -> None:
    spec = Fleet().group(running=False)
    seed = group_planner.replication_id(spec)
    assert len(seed) == 40
    assert group_planner.replication_id(spec) == seed  # a restarted control plane seeds alike
    other = replace(spec, id="h")
    later = replace(spec, created_at=spec.created_at.replace(day=27))
    assert len({group_planner.replication_id(s) for s in (spec, other, later)}) == 3


# -- Sentinels that know their replicas and peers from the start (issue 11, fast Multi-AZ creation) --


def _sentinel_views(fleet: Fleet, **changes: object) -> None:
    """Every Sentinel of group "g" as the fake fleet has it, with ``changes``."""
    for key in sentinel_keys("g"):
        sentinel_port = fleet.host.port_now(key)
        assert sentinel_port is not None
        view = fleet.probes.sentinel_by_port[sentinel_port]
        fleet.probes.sentinel_by_port[sentinel_port] = replace(view, **changes)  # type: ignore[arg-type]


def test_listed_but_unconnected_replicas_and_peers_do_not_make_a_new_group_available() -> None:
    # Known replicas and peers are listed from a Sentinel's first second, flagged disconnected: a
    # failover could not use them yet, so the group stays creating until Sentinel has reached them.
    for unready in ({"ready_replicas": 1}, {"connected_peers": 1}):
        fleet = Fleet()
        fleet.group(failover=True, state=GroupState.CREATING)
        _sentinel_views(fleet, num_replicas=2, num_other_sentinels=2, **unready)
        plan = asyncio.run(fleet.plan(G, "g"))
        assert plan is not None
        assert state(plan, G, "g") == GroupState.CREATING, unready
        assert not plan.converged
    fleet = Fleet()
    fleet.group(failover=True, state=GroupState.CREATING)
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert state(plan, G, "g") == GroupState.AVAILABLE


FAST = Timings(FAST_PING_PERIOD_MS, ASK_PERIOD_MS)
STEADY = Timings(PING_PERIOD_MS, ASK_PERIOD_MS)


def test_a_sentinel_on_its_default_ask_period_is_given_the_short_one_without_holding_the_group() -> None:
    # A restarted Sentinel has Sentinel's defaults again (ask-period 1000): peers' answers about a
    # failed primary would count for five seconds after a switch (engines.sentinel.ASK_PERIOD_MS).
    fleet = Fleet()
    fleet.group(failover=True, state=GroupState.AVAILABLE)
    first, *_ = sentinel_keys("g")
    first_port = fleet.host.port_now(first)
    assert first_port is not None
    at = GROUPS.get(fleet.store, "g").status.sentinels[first.node_id]
    fleet.probes.sentinel_by_port[first_port] = replace(
        fleet.probes.sentinel_by_port[first_port], timings=Timings(PING_PERIOD_MS, 1000)
    )
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == (TuneSentinel(first, at, STEADY),)
    assert state(plan, G, "g") == GroupState.AVAILABLE


def test_a_sentinel_not_linked_to_its_running_peers_retries_fast_then_goes_back_to_its_default() -> None:
    fleet = Fleet()
    fleet.group(failover=True, state=GroupState.CREATING)
    first, *others = sentinel_keys("g")
    first_port = fleet.host.port_now(first)
    assert first_port is not None
    at = GROUPS.get(fleet.store, "g").status.sentinels[first.node_id]
    fleet.probes.sentinel_by_port[first_port] = replace(fleet.probes.sentinel_by_port[first_port], connected_peers=0)
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == (TuneSentinel(first, at, FAST),)
    assert state(plan, G, "g") == GroupState.CREATING

    # Linked now, still on the short period: back to Sentinel's default, which does not hold up
    # availability (the same pass says "created", not "automatic failover turned on" first).
    fleet.probes.sentinel_by_port[first_port] = replace(
        fleet.probes.sentinel_by_port[first_port], connected_peers=2, timings=FAST
    )
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == (TuneSentinel(first, at, STEADY),)
    assert state(plan, G, "g") == GroupState.AVAILABLE
    assert ("g", "Replication group g created") in messages(plan)
    assert not plan.converged  # looked at again, to see the period back
    fleet.probes.sentinel_by_port[first_port] = replace(fleet.probes.sentinel_by_port[first_port], timings=STEADY)
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert plan.actions == ()
    assert state(plan, G, "g") == GroupState.AVAILABLE

    # A peer that does not run is not worth retrying for: the default period, even unlinked.
    fleet.kill(others[0])
    fleet.probes.sentinel_by_port[first_port] = replace(
        fleet.probes.sentinel_by_port[first_port], connected_peers=1, timings=FAST
    )
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert TuneSentinel(first, at, STEADY) in plan.actions
    assert not any(isinstance(a, TuneSentinel) and a.node != first for a in plan.actions)


def test_a_group_is_available_once_its_reader_endpoint_has_a_server_up() -> None:
    # Right after the endpoint is reloaded (a move between TLS modes), HAProxy's reader backend has
    # no replica through its health check yet: the group is not available until one is.
    fleet = Fleet()
    fleet.group(state=GroupState.CREATING)
    replicas = [port(fleet, m) for m in ("g-002", "g-003")]
    down = {server_name(p): ServerState(server_name(p), ADDRESS, p, up=False, maint=False) for p in replicas}
    fleet.probes.readers["g"] = down
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert state(plan, G, "g") == GroupState.CREATING
    first = server_name(replicas[0])
    fleet.probes.readers["g"] = {**down, first: replace(down[first], up=True)}
    plan = asyncio.run(fleet.plan(G, "g"))
    assert plan is not None
    assert state(plan, G, "g") == GroupState.AVAILABLE
