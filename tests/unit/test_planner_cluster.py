"""What the cache cluster kind plans, case by case: one row per planner branch (in the fake fleet)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from tests.support.fakes import ADDRESS, AZS, Fleet, replica_of

from cachefleet.control.actions import (
    AllocatePort,
    ConfigSet,
    DeleteRecord,
    Event,
    Plan,
    RemoveNode,
    ReplicaOf,
    RestartNode,
    StartNode,
)
from cachefleet.model.nodes import Placement, cluster_node_keys, config_endpoint_key, node_key
from cachefleet.model.specs import SnapshotSpec
from cachefleet.model.status import ClusterState, ClusterStatus, NodeState, NodeStatus, SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, SNAPSHOTS

C = CLUSTERS.name
REDIS = node_key("c", "0001")
MEMCACHED = cluster_node_keys("c", 3)
LOCAL = Placement("local", ADDRESS, AZS[0])  # a cluster's nodes default to one AZ, all on the embedded host
ENDPOINT = Placement("local", ADDRESS, "")  # where a Memcached cluster's configuration endpoint runs


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[Fleet], object]
    check: Callable[[Fleet, Plan | None], None]


def _state(plan: Plan | None) -> ClusterState:
    assert plan is not None
    status = plan.statuses[(C, "c")]
    assert isinstance(status.status, ClusterState)
    return status.status


def _memcached(fleet: Fleet, **fields: object) -> None:
    fleet.cluster("c", engine="memcached", nodes=3, **fields)


def _healthy(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert (plan.actions, plan.events, plan.converged) == ((), (), True)
    assert _state(plan) == ClusterState.AVAILABLE


def _new(fleet: Fleet) -> None:
    fleet.cluster("c", engine="memcached", nodes=3, state=ClusterState.CREATING, running=False)


def _new_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (
        *(AllocatePort(k, LOCAL) for k in MEMCACHED),
        AllocatePort(config_endpoint_key("c"), ENDPOINT),
    )
    assert [n.placement for n in plan.statuses[(C, "c")].nodes] == [LOCAL] * 3  # type: ignore[union-attr]


def _ports_given(fleet: Fleet) -> None:
    _new(fleet)
    for key in MEMCACHED:
        fleet.host.allocate_port(key)
    placed = tuple(NodeStatus(k.node_id, NodeState.CREATING, placement=LOCAL) for k in MEMCACHED)
    fleet.put_status(C, "c", ClusterStatus(ClusterState.CREATING, nodes=placed))


def _ports_given_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (*(StartNode(k, LOCAL) for k in MEMCACHED), AllocatePort(config_endpoint_key("c"), ENDPOINT))


def _created(fleet: Fleet) -> None:
    _memcached(fleet, state=ClusterState.CREATING)


def _created_check(fleet: Fleet, plan: Plan | None) -> None:
    assert _state(plan) == ClusterState.AVAILABLE
    assert plan is not None
    assert plan.events == (Event("c", C, "Cache cluster created"),)
    assert [n.role for n in plan.statuses[(C, "c")].nodes] == [None, None, None]  # type: ignore[union-attr]


def _killed(fleet: Fleet) -> None:
    _memcached(fleet)
    fleet.kill(MEMCACHED[1])


def _killed_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (StartNode(MEMCACHED[1], LOCAL),)


def _dir_lost(fleet: Fleet) -> None:
    _memcached(fleet)
    fleet.lose(MEMCACHED[2])


def _dir_lost_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    recorded = fleet.status(C, "c").node("0003").port
    assert plan.actions == (AllocatePort(MEMCACHED[2], LOCAL, port=recorded),)


def _squatted(fleet: Fleet) -> None:
    _memcached(fleet)
    fleet.squat(MEMCACHED[0])


def _squatted_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == ()
    (blocked,) = plan.blocked
    assert blocked.source_id == "c"
    assert "Cache node 0001 of c cannot start" in blocked.message
    node = plan.statuses[(C, "c")].node("0001")  # type: ignore[union-attr]
    assert node is not None
    assert node.status == NodeState.REBOOTING
    assert not plan.converged


def _not_master(fleet: Fleet) -> None:
    fleet.cluster("c")
    port = fleet.host.port_now(REDIS)
    assert port is not None
    fleet.probes.redis_by_port[port] = replica_of(port + 1)


def _not_master_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (ReplicaOf(REDIS, LOCAL, None),)


def _modifying(fleet: Fleet) -> None:
    fleet.cluster("c", state=ClusterState.MODIFYING)
    port = fleet.host.port_now(REDIS)
    assert port is not None
    observed = fleet.probes.redis_by_port[port]
    fleet.probes.redis_by_port[port] = replace(observed, config={**(observed.config or {}), "timeout": "60"})


def _modifying_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (ConfigSet(REDIS, LOCAL, (("timeout", "0"),)),)
    assert _state(plan) == ClusterState.MODIFYING  # until the parameters are in


def _modified(fleet: Fleet) -> None:
    fleet.cluster("c", state=ClusterState.MODIFYING)


def _modified_check(fleet: Fleet, plan: Plan | None) -> None:
    assert _state(plan) == ClusterState.AVAILABLE


def _reboot(fleet: Fleet) -> None:
    _memcached(fleet, state=ClusterState.REBOOTING, reboot_requests=1, reboot_nodes=("0002", "0003"))


def _reboot_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    assert plan.actions == (RestartNode(MEMCACHED[1], LOCAL),)  # one node at a time
    assert plan.events == (Event("c", C, "Cache node 0002 shutdown"),)
    assert _state(plan) == ClusterState.REBOOTING


def _delete(fleet: Fleet) -> None:
    spec = fleet.cluster("c", engine="memcached", nodes=3)
    CLUSTERS.put_spec(fleet.store, "c", replace(spec, deleting=True))


def _delete_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is not None
    removals = (*(RemoveNode(k, LOCAL) for k in MEMCACHED), RemoveNode(config_endpoint_key("c"), ENDPOINT))
    assert plan.actions == (*removals, DeleteRecord(C, "c"))
    assert plan.events == (Event("c", C, "Cache cluster deleted"),)


def _snapshot(fleet: Fleet, *, final: bool = False) -> None:
    spec = SnapshotSpec(
        "s1", "manual", "redis", "7.0.15", "cache.t3.micro", fleet.clock, cache_cluster_id="c", final=final
    )
    statuses.create(fleet.store, SNAPSHOTS, "s1", spec, SnapshotStatus(SnapshotState.CREATING, node_cluster_id="c"))


def _snapshotting(fleet: Fleet) -> None:
    fleet.cluster("c", state=ClusterState.SNAPSHOTTING)
    _snapshot(fleet)


def _snapshotting_check(fleet: Fleet, plan: Plan | None) -> None:
    assert _state(plan) == ClusterState.SNAPSHOTTING


def _deleting_after_final_snapshot(fleet: Fleet) -> None:
    spec = fleet.cluster("c")
    CLUSTERS.put_spec(fleet.store, "c", replace(spec, deleting=True))
    _snapshot(fleet, final=True)


def _waits_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan == Plan()


def _restore_failed(fleet: Fleet) -> None:
    fleet.cluster("c", state=ClusterState.RESTORE_FAILED, running=False)


def _member(fleet: Fleet) -> None:
    fleet.cluster("c", replication_group_id="g")


def _member_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is None
    assert fleet.woken == [("replication-group", "g")]  # members are planned with their group


def _nothing_check(fleet: Fleet, plan: Plan | None) -> None:
    assert plan is None


CASES = [
    Case("healthy redis", lambda f: f.cluster("c"), _healthy),
    Case("healthy memcached", _memcached, _healthy),
    Case("new: ports first", _new, _new_check),
    Case("new: nodes start", _ports_given, _ports_given_check),
    Case("new: available once all serve", _created, _created_check),
    Case("node killed", _killed, _killed_check),
    Case("node directory lost: same port", _dir_lost, _dir_lost_check),
    Case("node port squatted: waits", _squatted, _squatted_check),
    Case("redis node not master", _not_master, _not_master_check),
    Case("modifying: parameters set live", _modifying, _modifying_check),
    Case("modifying: done", _modified, _modified_check),
    Case("reboot", _reboot, _reboot_check),
    Case("delete", _delete, _delete_check),
    Case("snapshot being taken", _snapshotting, _snapshotting_check),
    Case("delete waits for the final snapshot", _deleting_after_final_snapshot, _waits_check),
    Case("restore-failed: left alone", _restore_failed, _nothing_check),
    Case("member: planned with its group", _member, _member_check),
    Case("gone", lambda f: None, _nothing_check),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cluster_plan(case: Case) -> None:
    fleet = Fleet()
    case.arrange(fleet)
    case.check(fleet, asyncio.run(fleet.plan(C, "c")))
