"""The one writer of statuses (store/statuses.py): what it writes, what it refuses, and that it is the only one."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.model.errors import InvalidReplicationGroupState
from cachefleet.model.lifecycle import Event, InvalidTransition
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import ClusterState, ClusterStatus, GroupState, GroupStatus, NodeState, NodeStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.sqlite import Store

NOW = datetime(2026, 11, 26, tzinfo=UTC)
G, C = GROUPS.name, CLUSTERS.name


@pytest.fixture
def store() -> Store:
    store = Store(":memory:")
    group = ReplicationGroupSpec("g", "d", "redis", "7.0.15", "cache.t3.micro", ("g-001",), "g-001", NOW)
    member = CacheClusterSpec("g-001", "redis", "7.0.15", "cache.t3.micro", ("a",), NOW, replication_group_id="g")
    assert statuses.create(store, GROUPS, "g", group)
    assert statuses.create(store, CLUSTERS, "g-001", member)
    return store


def group_state(store: Store) -> GroupState:
    return GROUPS.get(store, "g").status.status


def test_create_starts_in_the_tables_first_status_and_refuses_a_taken_id(store: Store) -> None:
    assert group_state(store) == GroupState.CREATING
    assert CLUSTERS.get(store, "g-001").status == ClusterStatus(ClusterState.CREATING)
    assert not statuses.create(store, GROUPS, "G", GROUPS.get(store, "g").spec)  # ids are case-insensitive
    with pytest.raises(InvalidTransition):
        statuses.create(store, GROUPS, "h", GROUPS.get(store, "g").spec, GroupStatus(GroupState.AVAILABLE))


def test_change_fires_an_event_at_once_and_refuses_what_no_row_allows(store: Store) -> None:
    with pytest.raises(InvalidReplicationGroupState, match="current status: creating"):
        statuses.change(store, GROUPS, "g", Event.DELETE)
    assert group_state(store) == GroupState.CREATING
    statuses.change(store, GROUPS, "g", Event.FAIL_CREATE, message="no port left")
    assert GROUPS.get(store, "g").status == GroupStatus(GroupState.CREATE_FAILED, message="no port left")
    assert statuses.change(store, GROUPS, "g", Event.DELETE).status == GroupState.DELETING


def test_change_from_fires_only_from_the_status_named(store: Store) -> None:
    assert not statuses.change_from(store, CLUSTERS, "g-001", ClusterState.AVAILABLE, Event.SNAPSHOT)
    assert CLUSTERS.get(store, "g-001").status.status == ClusterState.CREATING
    assert statuses.change_from(store, CLUSTERS, "g-001", ClusterState.CREATING, Event.FAIL_RESTORE, message="bad")
    assert CLUSTERS.get(store, "g-001").status == ClusterStatus(ClusterState.RESTORE_FAILED, message="bad")
    assert not statuses.change_from(store, CLUSTERS, "nobody", ClusterState.CREATING, Event.FAIL_RESTORE)


def test_write_takes_a_move_along_a_row_and_any_change_of_other_fields(store: Store) -> None:
    ready = GroupStatus(GroupState.AVAILABLE, primary_cluster_id="g-001", primary_endpoint_port=7001)
    assert statuses.write(store, GROUPS, "g", ready)
    assert GROUPS.get(store, "g").status == ready
    moved = replace(ready, primary_cluster_id="g-002")
    assert statuses.write(store, GROUPS, "g", moved)
    assert GROUPS.get(store, "g").status == moved
    assert not statuses.write(store, GROUPS, "gone", moved)


def test_write_refuses_and_logs_an_invalid_transition(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="cachefleet.store.statuses"):
        assert not statuses.write(store, GROUPS, "g", GroupStatus(GroupState.SNAPSHOTTING))
    assert group_state(store) == GroupState.CREATING
    assert "refused status write for replication-group g" in caplog.text


def test_write_checks_the_nodes_of_a_cluster_against_the_node_table(store: Store) -> None:
    up = ClusterStatus(ClusterState.CREATING, nodes=(NodeStatus("0001", NodeState.CREATING),))
    assert statuses.write(store, CLUSTERS, "g-001", up)
    served = ClusterStatus(ClusterState.AVAILABLE, nodes=(NodeStatus("0001", NodeState.AVAILABLE, port=7001),))
    assert statuses.write(store, CLUSTERS, "g-001", served)
    down = replace(served, nodes=(NodeStatus("0001", NodeState.REBOOTING, port=7001),))
    assert statuses.write(store, CLUSTERS, "g-001", down)
    # A node that served never goes back to creating.
    again = replace(served, nodes=(NodeStatus("0001", NodeState.CREATING),))
    assert not statuses.write(store, CLUSTERS, "g-001", again)
    assert CLUSTERS.get(store, "g-001").status == down


def test_record_writes_a_pass_only_if_no_spec_it_read_moved_on(store: Store) -> None:
    group = GROUPS.get(store, "g")
    read = {(G, "g"): group.generation, (C, "g-001"): CLUSTERS.get(store, "g-001").generation}
    ready = {(G, "g"): GroupStatus(GroupState.AVAILABLE), (C, "g-001"): ClusterStatus(ClusterState.AVAILABLE)}

    GROUPS.put_spec(store, "g", replace(group.spec, description="changed meanwhile"))  # the API wrote
    assert not statuses.record(store, ready, read)
    assert group_state(store) == GroupState.CREATING  # a stale status is never written...
    assert CLUSTERS.get(store, "g-001").status.status == ClusterState.CREATING  # ...nor any of the pass

    read[(G, "g")] = GROUPS.get(store, "g").generation
    assert statuses.record(store, ready, read)
    assert group_state(store) == GroupState.AVAILABLE
    assert CLUSTERS.get(store, "g-001").status.status == ClusterState.AVAILABLE


def test_record_refuses_a_pass_whose_resource_is_gone(store: Store) -> None:
    read = {(G, "g"): GROUPS.get(store, "g").generation}
    store.delete(G, "g")
    assert not statuses.record(store, {(G, "g"): GroupStatus(GroupState.AVAILABLE)}, read)


def test_record_leaves_out_a_refused_status_and_writes_the_rest(store: Store) -> None:
    read = {(G, "g"): GROUPS.get(store, "g").generation}
    written = {(G, "g"): GroupStatus(GroupState.DELETING), (C, "g-001"): ClusterStatus(ClusterState.AVAILABLE)}
    assert statuses.record(store, written, read)
    assert group_state(store) == GroupState.CREATING
    assert CLUSTERS.get(store, "g-001").status.status == ClusterState.AVAILABLE


def test_nothing_else_writes_a_status() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "cachefleet"
    callers = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if re.search(r"\.write_status\(", path.read_text()) and path.name != "statuses.py"
    ]
    assert callers == []
    assert "def write_status" in (src / "store" / "sqlite.py").read_text()
