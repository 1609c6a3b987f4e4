"""The host kind against fake hosts: statuses as the agent answers or not, stale nodes, removal."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from tests.support.fakes import AZS, LOST_AFTER, NOW, Fleet

from cachefleet.control.kinds.base import WorkerKind
from cachefleet.control.kinds.host import CLEAN_INTERVAL
from cachefleet.model.hosts import HOST, HostState, computed_state
from cachefleet.model.nodes import member_key, node_key, sentinel_keys
from cachefleet.model.status import ClusterStatus
from cachefleet.store.hosts import nodes_on
from cachefleet.store.kinds import CLUSTERS, GROUPS, HOSTS

A, B, C = AZS


def look(fleet: Fleet, host_id: str) -> None:
    kind = fleet.kinds[HOSTS.name]
    assert isinstance(kind, WorkerKind)
    asyncio.run(kind.work(host_id))


def state(fleet: Fleet, host_id: str) -> HostState:
    found = HOSTS.find(fleet.store, host_id)
    assert found is not None
    return found.status.status


def told(fleet: Fleet, host_id: str) -> list[str]:
    return [e.message for e in fleet.store.events() if e.source_id == host_id]


def test_a_joining_host_becomes_active_once_its_agent_answers() -> None:
    fleet = Fleet()
    fleet.add_host("h1", A, state=HostState.JOINING)
    look(fleet, "h1")
    host = HOSTS.get(fleet.store, "h1")
    assert host.status.status == HostState.ACTIVE
    assert (host.status.agent_version, host.status.reported_memory_bytes) == ("fake", 8 << 30)
    assert told(fleet, "h1") == ["Host h1 is active"]


def test_a_host_that_stops_answering_is_unreachable_then_lost_and_its_users_are_woken() -> None:
    fleet = Fleet()
    for host_id, zone in (("h1", A), ("h2", B), ("h3", C)):
        fleet.add_host(host_id, zone)
    fleet.group(failover=True, on=["h1", "h2", "h3"])
    fleet.hosts.get("h2").down = True
    look(fleet, "h2")
    status = HOSTS.get(fleet.store, "h2").status
    assert status.status == HostState.UNREACHABLE
    assert status.unreachable_since == NOW.isoformat()
    assert "does not answer" in status.message
    assert fleet.woken == [(GROUPS.name, "g")]
    fleet.clock = NOW + timedelta(seconds=LOST_AFTER - 1)
    look(fleet, "h2")
    assert state(fleet, "h2") == HostState.UNREACHABLE
    fleet.clock = NOW + timedelta(seconds=LOST_AFTER)
    look(fleet, "h2")
    assert state(fleet, "h2") == HostState.LOST
    assert told(fleet, "h2")[-1] == "Host h2 is lost: its nodes are replaced on other hosts"
    # Back: active again, since cleared.
    fleet.hosts.get("h2").down = False
    look(fleet, "h2")
    status = HOSTS.get(fleet.store, "h2").status
    assert (status.status, status.unreachable_since) == (HostState.ACTIVE, None)


def test_a_returning_host_loses_what_belongs_elsewhere_and_keeps_its_own() -> None:
    fleet = Fleet()
    for host_id, zone in (("h1", A), ("h2", B), ("h3", C), ("h4", A)):
        fleet.add_host(host_id, zone)
    fleet.group(failover=True, on=["h1", "h2", "h3"])
    h1 = fleet.hosts.get("h1")
    # While h1 was lost, g-001 and sentinel-1 were placed again on h4 (the store says so) ...
    moved_to = fleet.placement("h4", A)
    member = CLUSTERS.get(fleet.store, "g-001").status
    node = member.node("0001")
    assert node is not None
    fleet.put_status(CLUSTERS.name, "g-001", replace(member, nodes=(replace(node, placement=moved_to),)))
    group = GROUPS.get(fleet.store, "g").status
    fleet.put_status(GROUPS.name, "g", replace(group, sentinels={**group.sentinels, "sentinel-1": moved_to}))
    # ... a cluster that lived on h1 was deleted, and one being created has no placement yet.
    h1.run(node_key("gone", "0001"), 30901)
    fleet.cluster("new", running=False)
    h1.run(node_key("new", "0001"), 30902)
    fleet.put_status(HOSTS.name, "h1", replace(HOSTS.get(fleet.store, "h1").status, status=HostState.LOST))
    look(fleet, "h1")
    assert state(fleet, "h1") == HostState.ACTIVE
    stale = [member_key("g-001"), sentinel_keys("g")[0], node_key("gone", "0001")]
    assert sorted(map(str, h1.removed)) == sorted(map(str, stale))
    assert node_key("new", "0001") in h1.nodes_by_key
    assert f"Removed stale node {member_key('g-001')} from host h1" in told(fleet, "h1")
    # What the store places on h2 stays there.
    look(fleet, "h2")
    assert fleet.hosts.get("h2").removed == []


def test_a_draining_host_is_drained_once_nothing_is_placed_on_it() -> None:
    fleet = Fleet()
    fleet.add_host("h1", A)
    fleet.cluster("c", engine="memcached", on=["h1"])
    host = HOSTS.get(fleet.store, "h1")
    HOSTS.put_spec(fleet.store, "h1", host.spec.with_drain(True))
    fleet.put_status(HOSTS.name, "h1", replace(host.status, status=HostState.DRAINING))
    look(fleet, "h1")
    assert (state(fleet, "h1"), HOSTS.get(fleet.store, "h1").status.nodes) == (HostState.DRAINING, 1)
    fleet.put_status(CLUSTERS.name, "c", ClusterStatus(CLUSTERS.get(fleet.store, "c").status.status))
    look(fleet, "h1")
    assert state(fleet, "h1") == HostState.DRAINED
    assert told(fleet, "h1")[-1] == "Host h1 is drained: no node runs on it"


def test_a_removed_host_goes_once_empty() -> None:
    fleet = Fleet()
    fleet.add_host("h1", A)
    host = HOSTS.get(fleet.store, "h1")
    HOSTS.put_spec(fleet.store, "h1", replace(host.spec, removing=True))
    fleet.put_status(HOSTS.name, "h1", replace(host.status, status=HostState.REMOVING))
    look(fleet, "h1")
    assert HOSTS.find(fleet.store, "h1") is None
    assert told(fleet, "h1") == ["Host h1 removed"]
    assert fleet.hosts.get("h1").closed  # its driver let go of its connections


def test_every_state_the_kind_computes_is_a_row_of_the_table() -> None:
    for previous in HostState:
        for draining in (False, True):
            for reachable in (False, True):
                for lost in (False, True):
                    for has_nodes in (False, True):
                        new = computed_state(
                            previous, draining=draining, reachable=reachable, lost=lost, has_nodes=has_nodes
                        )
                        assert new == previous or HOST.event_between(previous, new)


def test_nodes_on_counts_where_nodes_run_and_where_they_move() -> None:
    fleet = Fleet()
    for host_id, zone in (("h1", A), ("h2", B), ("h3", C), ("h4", A)):
        fleet.add_host(host_id, zone)
    fleet.group(failover=True, on=["h1", "h2", "h3"])
    member = CLUSTERS.get(fleet.store, "g-001").status
    node = member.node("0001")
    assert node is not None
    moving = replace(node, moving_to=fleet.placement("h4", A))
    fleet.put_status(CLUSTERS.name, "g-001", replace(member, nodes=(moving,)))
    assert [nodes_on(fleet.store, h) for h in ("h1", "h2", "h3", "h4", "h5")] == [1, 1, 1, 1, 0]


def test_stale_nodes_are_looked_for_at_the_first_beat_then_every_clean_interval() -> None:
    fleet = Fleet()
    fleet.add_host("h1", A)
    h1 = fleet.hosts.get("h1")
    look(fleet, "h1")
    h1.run(node_key("gone", "0001"), 30901)
    look(fleet, "h1")  # a second later: not looked for yet
    assert h1.removed == []
    fleet.clock = NOW + timedelta(seconds=CLEAN_INTERVAL)
    look(fleet, "h1")
    assert [str(k) for k in h1.removed] == [str(node_key("gone", "0001"))]
