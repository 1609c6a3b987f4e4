"""Placement in the planners, case by case: groups and clusters on several hosts (the fake fleet).

Hosts ``h1``/``h4`` are in the first AZ, ``h2`` in the second, ``h3`` in the third, all four in the
cache subnet group ``agents`` (the embedded host, which stands in every AZ, is not); a group runs its
members (and Sentinels) on ``h1``, ``h2``, ``h3``. Each case breaks or changes one thing (a host lost,
unreachable or drained) and checks what the group's or cluster's registration plans.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from tests.support.fakes import AZS, Fleet, master, memcached_stats, replica_of

from cachefleet.control.actions import (
    AllocatePort,
    Plan,
    ReloadEndpoint,
    RemoveNode,
    ReplicaOf,
    SentinelFailover,
    SetEndpointPrimary,
    StartNode,
    StartSentinel,
    Switchover,
)
from cachefleet.engines.haproxy import server_name
from cachefleet.model.errors import Fatal
from cachefleet.model.hosts import CacheSubnetGroupSpec, HostState
from cachefleet.model.nodes import Placement, cluster_node_keys, member_key, sentinel_keys
from cachefleet.model.status import ClusterStatus, GroupState, GroupStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS, HOSTS, SUBNET_GROUPS

G, C = GROUPS.name, CLUSTERS.name
A, B, Z = AZS


AGENTS = "agents"


def fleet_of_four() -> Fleet:
    fleet = Fleet()
    fleet.add_host("h1", A)
    fleet.add_host("h2", B)
    fleet.add_host("h3", Z)
    fleet.add_host("h4", A)
    subnets = tuple(f"subnet-{z}" for z in AZS)
    statuses.create(fleet.store, SUBNET_GROUPS, AGENTS, CacheSubnetGroupSpec(AGENTS, "the agents", subnets))
    return fleet


def plan_of(fleet: Fleet, kind: str = G, resource: str = "g") -> Plan:
    plan = asyncio.run(fleet.plan(kind, resource))
    assert plan is not None
    return plan


def record(fleet: Fleet, plan: Plan) -> None:
    """What the loop does after a pass: the plan's statuses written."""
    for (kind, resource), status in plan.statuses.items():
        fleet.put_status(kind, resource, status)


def node(plan: Plan, member: str) -> object:
    status = plan.statuses[(C, member)]
    assert isinstance(status, ClusterStatus)
    found = status.node("0001")
    assert found is not None
    return found


def messages(plan: Plan) -> list[str]:
    return [e.message for e in plan.events]


def drain(fleet: Fleet, host_id: str) -> None:
    host = HOSTS.get(fleet.store, host_id)
    HOSTS.put_spec(fleet.store, host_id, host.spec.with_drain(True))
    fleet.put_status(HOSTS.name, host_id, replace(host.status, status=HostState.DRAINING))


# -- placement of new processes -------------------------------------------------------------------


def test_a_new_group_spreads_over_hosts_and_azs() -> None:
    fleet = fleet_of_four()
    fleet.group(state=GroupState.CREATING, running=False, failover=True, subnet_group=AGENTS)
    plan = plan_of(fleet)
    # Strict AZs (a, b, c as the API spread them); in a, h1 and h4 are alike: the id decides.
    assert [node(plan, m).placement.host for m in ("g-001", "g-002", "g-003")] == ["h1", "h2", "h3"]  # type: ignore[attr-defined]
    assert [a.at.host for a in plan.actions if isinstance(a, AllocatePort) and a.node.cluster_id != "rg.g"] == [
        "h1",
        "h2",
        "h3",
    ]
    group = plan.statuses[(G, "g")]
    assert isinstance(group, GroupStatus)
    assert {k: p.host for k, p in group.sentinels.items()} == {
        "sentinel-1": "h1",
        "sentinel-2": "h2",
        "sentinel-3": "h3",
    }


def test_no_room_for_a_new_member_fails_its_creation() -> None:
    fleet = Fleet()
    fleet.add_host("h1", A, max_nodes=1)
    fleet.group(state=GroupState.CREATING, running=False, nodes=2, subnet_group="only-a")
    statuses.create(fleet.store, SUBNET_GROUPS, "only-a", CacheSubnetGroupSpec("only-a", "d", (f"subnet-{A}",)))
    for member in ("g-001", "g-002"):
        spec = CLUSTERS.get(fleet.store, member).spec
        CLUSTERS.put_spec(fleet.store, member, replace(spec, node_azs=(A,), subnet_group="only-a"))
    with pytest.raises(Fatal, match=f"capacity in {A}"):
        plan_of(fleet)


# -- a host lost ------------------------------------------------------------------------------------


def test_a_lost_replica_is_replaced_in_its_az_with_the_same_member_id() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h2")
    plan = plan_of(fleet)
    moved = node(plan, "g-002")
    # No other host in b: it goes elsewhere, to the host no member uses (h4), and says so.
    assert moved.placement.host == "h4"  # type: ignore[attr-defined]
    assert moved.port is None  # type: ignore[attr-defined]
    assert moved.replaced_from == "h2"  # type: ignore[attr-defined]
    assert AllocatePort(member_key("g-002"), moved.placement) in plan.actions  # type: ignore[attr-defined]
    assert (
        f"Replacing cache node 0001 of g-002: host h2 was lost; it now runs on host h4 in {A}, since no host of "
        f"{B} could take it"
    ) in messages(plan)
    assert "Recovering cache nodes 0001" in messages(plan)
    # The Sentinel that ran on h2 is placed again too.
    group = plan.statuses[(G, "g")]
    assert isinstance(group, GroupStatus)
    assert group.sentinels["sentinel-2"].host == "h4"
    assert not any(a.at.host == "h2" for a in plan.actions if hasattr(a, "at"))  # nothing asked of a lost host


def test_a_lost_member_stays_in_its_az_when_a_host_there_has_room() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h1")
    fleet.promote("g", "g-002")  # Sentinel's failover
    plan = plan_of(fleet)
    replaced = node(plan, "g-001")
    assert replaced.placement == fleet.placement("h4", A)  # type: ignore[attr-defined]
    assert "Replacing cache node 0001 of g-001: host h1 was lost; it now runs on host h4" in messages(plan)
    record(fleet, plan)
    # Next pass: it has a port on h4 and starts as a replica of the primary Sentinel names.
    fleet.hosts.get("h4").allocate_port(member_key("g-001"))
    again = plan_of(fleet)
    primary = fleet.address_of("g-002")
    assert StartNode(member_key("g-001"), fleet.placement("h4", A), replicaof=primary) in again.actions


def test_an_unreachable_host_is_left_alone_until_it_is_lost() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h3", HostState.UNREACHABLE)
    plan = plan_of(fleet)
    assert plan.actions == ()
    assert node(plan, "g-003").placement.host == "h3"  # type: ignore[attr-defined]
    assert plan.statuses[(G, "g")].status == GroupState.AVAILABLE  # type: ignore[union-attr]


def test_the_endpoint_follows_a_promotion_while_the_old_primarys_host_is_unreachable() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h1", HostState.UNREACHABLE)
    # Sentinels on h2 and h3 promoted g-002; g-001 is out of reach, not yet lost (nor replaced).
    new = fleet.address_of("g-002")
    live = fleet.live_parameters("redis", "7.0.15", "cache.t3.micro")
    fleet.probes.redis_by_port[new[1]] = master(1, live)
    fleet.probes.redis_by_port[fleet.address_of("g-003")[1]] = replica_of(new, live)
    fleet.sentinels_name("g", new)
    plan = plan_of(fleet)
    endpoint = [a for a in plan.actions if isinstance(a, SetEndpointPrimary | ReloadEndpoint)]
    # Its node set is unchanged (g-001 keeps its recorded address): no reload, the routing moves at once.
    assert [type(a) for a in endpoint] == [SetEndpointPrimary]
    assert endpoint[0].server == server_name(new[1])  # type: ignore[union-attr]
    assert not any(a.at.host == "h1" for a in plan.actions if hasattr(a, "at"))


def test_a_pass_leaves_the_endpoint_on_a_replica_just_promoted_but_not_on_a_returned_old_primary() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    old, new = fleet.address_of("g-001"), fleet.address_of("g-002")
    live = fleet.live_parameters("redis", "7.0.15", "cache.t3.micro")
    # Mid-failover: the leader promoted g-002 and the follower moved the endpoint to it; the Sentinels'
    # majority still names g-001, which still reports master. The pass must not move it back.
    fleet.probes.redis_by_port[new[1]] = master(1, live)
    fleet.route("g", new)
    fleet.followed["g"] = new
    assert not any(isinstance(a, SetEndpointPrimary) for a in plan_of(fleet).actions)
    # Without the follower's word the pass enforces what the majority names.
    del fleet.followed["g"]
    assert any(isinstance(a, SetEndpointPrimary) for a in plan_of(fleet).actions)
    # Once the majority names g-002, a former primary that is still a master gets no traffic: the
    # endpoint leaves it at once (the follower leads to g-002 too).
    fleet.sentinels_name("g", new)
    fleet.followed["g"] = new
    fleet.route("g", old)
    moved = [a for a in plan_of(fleet).actions if isinstance(a, SetEndpointPrimary)]
    assert [a.server for a in moved] == [server_name(new[1])]


def test_a_host_that_stops_answering_mid_pass_is_sent_nothing() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.hosts.get("h3").down = True  # the store still says active: the host kind has not looked yet
    plan = plan_of(fleet)
    assert not any(a.at.host == "h3" for a in plan.actions if hasattr(a, "at"))


def test_a_replaced_primary_without_failover_waits_for_a_promotion() -> None:
    fleet = fleet_of_four()
    fleet.group(on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h1")
    plan = plan_of(fleet)
    record(fleet, plan)
    fleet.hosts.get("h4").allocate_port(member_key("g-001"))
    again = plan_of(fleet)
    assert not any(isinstance(a, StartNode) and a.node == member_key("g-001") for a in again.actions)
    # Nor are its replicas repointed at it: they keep the data.
    assert not any(isinstance(a, ReplicaOf | StartNode) for a in again.actions)
    assert any("promote a replica with ModifyReplicationGroup PrimaryClusterId" in e.message for e in again.blocked)


def test_deleting_a_group_leaves_a_lost_host_alone() -> None:
    fleet = fleet_of_four()
    spec = fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    fleet.take_down("h2")
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True))
    plan = plan_of(fleet)
    removed = [a for a in plan.actions if isinstance(a, RemoveNode)]
    assert {a.at.host for a in removed} == {"h1", "h3", "local"}  # h2's leftovers go when it returns
    assert len(removed) == 2 + 2 + 1  # two Sentinels, two members, the endpoint


# -- a host drained -------------------------------------------------------------------------------


def test_a_replica_moves_off_a_draining_host() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    drain(fleet, "h3")
    plan = plan_of(fleet)
    target = node(plan, "g-003").moving_to  # type: ignore[attr-defined]
    assert target.host == "h4"  # no host of c is left: the one that carries no member
    assert AllocatePort(member_key("g-003"), target) in plan.actions
    assert f"Moving cache node 0001 of g-003 off draining host h3 to host {target.host}" in messages(plan)
    record(fleet, plan)
    there = fleet.hosts.get(target.host)
    port = there.allocate_port(member_key("g-003"))
    # Started there as a replica of the primary, beside the old one.
    second = plan_of(fleet)
    primary = fleet.address_of("g-001")
    assert StartNode(member_key("g-003"), target, replicaof=primary) in second.actions
    # In sync: it takes over and the old process goes.
    there.run(member_key("g-003"), port)
    fleet.probes.redis_by_port[port] = replica_of(primary, fleet.live_parameters("redis", "7.0.15", "cache.t3.micro"))
    third = plan_of(fleet)
    assert RemoveNode(member_key("g-003"), fleet.placement("h3", Z)) in third.actions
    moved = node(third, "g-003")
    assert (moved.placement, moved.moving_to, moved.port) == (target, None, port)  # type: ignore[attr-defined]
    assert f"Cache node 0001 of g-003 moved from host h3 to host {target.host}" in messages(third)


def test_the_primary_leaves_a_draining_host_by_a_failover_that_loses_no_write() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    drain(fleet, "h1")
    plan = plan_of(fleet)
    # Sentinel moves the primary role first (writes paused until the replicas have them all).
    (failover,) = [a for a in plan.actions if isinstance(a, SentinelFailover)]
    assert failover.primary == fleet.address_of("g-001")
    assert "Moving the primary role off draining host h1" in messages(plan)
    assert node(plan, "g-001").moving_to is None  # type: ignore[attr-defined]


def test_without_failover_the_primary_hands_over_to_its_own_second_process() -> None:
    fleet = fleet_of_four()
    fleet.group(on=["h1", "h2", "h3"], subnet_group=AGENTS)
    drain(fleet, "h1")
    plan = plan_of(fleet)
    target = node(plan, "g-001").moving_to  # type: ignore[attr-defined]
    assert target is not None
    record(fleet, plan)
    there = fleet.hosts.get(target.host)
    port = there.allocate_port(member_key("g-001"))
    there.run(member_key("g-001"), port)
    old = fleet.address_of("g-001")
    live = fleet.live_parameters("redis", "7.0.15", "cache.t3.micro")
    fleet.probes.redis_by_port[port] = replica_of(old, live)
    switch = plan_of(fleet)
    assert switch.actions == (Switchover(old=old, new=(target.address, port)),)
    # After the switchover: the second process is the primary; it takes over, the old one goes.
    fleet.probes.redis_by_port[port] = master(2, live)
    fleet.probes.redis_by_port[old[1]] = replica_of((target.address, port), live)
    done = plan_of(fleet)
    assert RemoveNode(member_key("g-001"), fleet.placement("h1", A)) in done.actions
    assert node(done, "g-001").placement == target  # type: ignore[attr-defined]


def test_a_sentinel_leaves_a_draining_host_one_at_a_time() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    drain(fleet, "h2")
    drain(fleet, "h3")
    plan = plan_of(fleet)
    removed = [a for a in plan.actions if isinstance(a, RemoveNode) and a.node in sentinel_keys("g")]
    assert removed == [RemoveNode(sentinel_keys("g")[1], fleet.placement("h2", B))]


def test_a_started_sentinel_gets_its_placement_address() -> None:
    fleet = fleet_of_four()
    fleet.group(failover=True, on=["h1", "h2", "h3"], subnet_group=AGENTS)
    key = sentinel_keys("g")[2]
    fleet.kill(key)
    plan = plan_of(fleet)
    assert plan.actions == (StartSentinel(key, fleet.placement("h3", Z), "g", fleet.address_of("g-001")),)


# -- clusters -------------------------------------------------------------------------------------


def test_a_memcached_node_on_a_lost_host_is_replaced_and_one_on_a_drained_host_moves() -> None:
    fleet = fleet_of_four()
    fleet.cluster("c", engine="memcached", nodes=2, on=["h1", "h2"], subnet_group=AGENTS)
    fleet.take_down("h2")
    plan = plan_of(fleet, C, "c")
    status = plan.statuses[(C, "c")]
    assert isinstance(status, ClusterStatus)
    second = status.node("0002")
    assert second is not None
    assert second.placement is not None
    assert second.placement.host == "h3"  # no other host of b; h1 carries the other node; h3, h4 alike: the id
    key1, key2 = cluster_node_keys("c", 2)
    assert AllocatePort(key2, second.placement) in plan.actions

    moving = fleet_of_four()
    moving.cluster("c", engine="memcached", nodes=1, on=["h1"], subnet_group=AGENTS)
    drain(moving, "h1")
    first = plan_of(moving, C, "c")
    target = first.statuses[(C, "c")].node("0001").moving_to  # type: ignore[union-attr]
    assert target is not None
    assert target.host == "h4"  # its AZ's other host
    record(moving, first)
    there = moving.hosts.get("h4")
    port = there.allocate_port(key1)
    there.run(key1, port)
    moving.probes.memcached_by_port[port] = memcached_stats()
    done = plan_of(moving, C, "c")
    assert RemoveNode(key1, moving.placement("h1", A)) in done.actions
    assert done.statuses[(C, "c")].node("0001").placement == target  # type: ignore[union-attr]


def test_a_standalone_node_is_placed_in_its_az() -> None:
    fleet = fleet_of_four()
    fleet.cluster("c", running=False, node_azs=(B,), subnet_group=AGENTS)
    plan = plan_of(fleet, C, "c")
    there = Placement("h2", fleet.hosts.get("h2").address, B)
    assert plan.actions == (AllocatePort(cluster_node_keys("c", 1)[0], there),)
