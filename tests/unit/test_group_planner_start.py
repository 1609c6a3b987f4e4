"""The group planner's starts: how the members of a new group and a returning replica start (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cachefleet.control.actions import StartEndpoint, StartNode
from cachefleet.control.observe import EndpointObservation, GroupObservation, NodeObservation
from cachefleet.control.planners import group, params
from cachefleet.engines.redis import RedisObservation
from cachefleet.model.nodes import member_key
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import ClusterState, ClusterStatus, GroupState, GroupStatus

ADDRESS = "127.0.0.1"
MEMBERS = ("g-001", "g-002", "g-003")
PORTS = {"g-001": 7001, "g-002": 7002, "g-003": 7003}
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def spec() -> ReplicationGroupSpec:
    return ReplicationGroupSpec(
        id="g",
        description="test",
        engine="redis",
        engine_version="7.0.15",
        node_type="cache.t3.micro",
        members=MEMBERS,
        primary_cluster_id="g-001",
        created_at=NOW,
    )


def members(state: ClusterState) -> group.Members:
    return {
        m: (
            CacheClusterSpec(
                id=m,
                engine="redis",
                engine_version="7.0.15",
                node_type="cache.t3.micro",
                node_azs=("az-a",),
                created_at=NOW,
                replication_group_id="g",
            ),
            ClusterStatus(state),
        )
        for m in MEMBERS
    }


def master() -> RedisObservation:
    return RedisObservation(
        role="master",
        master_host=None,
        master_port=None,
        master_link_up=False,
        connected_replicas=0,
        loading=False,
        used_memory=0,
        repl_offset=0,
    )


def observed(running: set[str]) -> GroupObservation:
    nodes = {
        m: NodeObservation(PORTS[m], 100 + i, redis=master()) if m in running else NodeObservation(PORTS[m], None)
        for i, m in enumerate(MEMBERS)
    }
    return GroupObservation(nodes=nodes, endpoint=EndpointObservation(port=8001, reader_port=8002, pid=None))


def plan(state: GroupState, running: set[str]) -> tuple[object, ...]:
    wanted = params.wanted("redis", "7.0.15", "cache.t3.micro", {})
    made = group.plan(
        spec(),
        GroupStatus(state, primary_cluster_id="g-001"),
        members(ClusterState(state.value)),
        observed(running),
        address=ADDRESS,
        now=NOW.isoformat(),
        wanted=wanted,
    )
    return made.actions


def test_a_new_group_starts_every_node_seeded_and_its_endpoint_in_one_plan() -> None:
    actions = plan(GroupState.CREATING, running=set())
    starts = {a.node.cluster_id: a for a in actions if isinstance(a, StartNode)}
    seed = group.replication_id(spec())
    assert len(seed) == 40
    assert starts["g-001"] == StartNode(member_key("g-001"), replication_id=seed)
    primary = (ADDRESS, PORTS["g-001"])
    for replica in ("g-002", "g-003"):
        # Pointed at the primary from the start; the executor starts it once the primary listens.
        assert starts[replica] == StartNode(member_key(replica), replicaof=primary, replication_id=seed)
    assert any(isinstance(a, StartEndpoint) for a in actions)


def test_the_seed_is_stable_for_a_group_and_differs_between_groups() -> None:
    assert group.replication_id(spec()) == group.replication_id(spec())
    other = replace(spec(), id="h")
    later = replace(spec(), created_at=datetime(2026, 11, 27, tzinfo=UTC))
    assert len({group.replication_id(s) for s in (spec(), other, later)}) == 3


def test_a_replica_of_a_serving_primary_starts_pointed_at_it_unseeded() -> None:
    # The group is past creation: a replica that died comes back with its data, never seeded.
    actions = plan(GroupState.AVAILABLE, running={"g-001", "g-003"})
    starts = [a for a in actions if isinstance(a, StartNode)]
    assert starts == [StartNode(member_key("g-002"), replicaof=(ADDRESS, PORTS["g-001"]))]
