"""The lifecycle tables: every row, every refusal, what the API calls need, and what boto3's waiters expect."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import botocore
import pytest

from cachefleet.model import lifecycle
from cachefleet.model.errors import InvalidCacheClusterState, InvalidReplicationGroupState, InvalidSnapshotState
from cachefleet.model.hosts import HOST
from cachefleet.model.lifecycle import (
    CLUSTER,
    GROUP,
    NODE,
    SNAPSHOT,
    USER,
    USER_GROUP,
    Event,
    InvalidTransition,
    Lifecycle,
    Row,
)
from cachefleet.model.status import ClusterState, GroupState, NodeState, SnapshotState

TABLES: list[Lifecycle[Any]] = [GROUP, CLUSTER, NODE, SNAPSHOT, USER, USER_GROUP, HOST]
ROWS = [(table, row) for table in TABLES for row in table.rows]


def _row_id(item: tuple[Lifecycle[Any], Row[Any]]) -> str:
    table, row = item
    return f"{table.kind}: {row.source} -{row.event}-> {row.target}"


@pytest.mark.parametrize("item", ROWS, ids=[_row_id(i) for i in ROWS])
def test_every_row_fires_and_is_told_by_its_statuses(item: tuple[Lifecycle[Any], Row[Any]]) -> None:
    table, row = item
    assert table.fire(row.source, row.event) == row.target
    assert table.event_between(row.source, row.target) == row.event
    assert table.allows(row.source, row.event)
    if row.source is not None:
        assert row.source in table.sources(row.event)


@pytest.mark.parametrize("table", TABLES, ids=[t.kind for t in TABLES])
def test_every_other_event_is_refused(table: Lifecycle[Any]) -> None:
    rows = {(r.source, r.event) for r in table.rows}
    for source in [None, *table.states]:
        for event in Event:
            if (source, event) in rows:
                continue
            assert not table.allows(source, event)
            with pytest.raises(InvalidTransition):
                table.fire(source, event)


@pytest.mark.parametrize("table", TABLES, ids=[t.kind for t in TABLES])
def test_every_status_is_reached_from_creation(table: Lifecycle[Any]) -> None:
    reached: set[StrEnum | None] = {None}
    while True:
        more = {r.target for r in table.rows if r.source in reached} - reached
        if not more:
            break
        reached |= more
    # A node's "deleting" is a model value nothing here shows: a node goes with its cluster's record.
    assert set(table.states) - reached <= {NodeState.DELETING}
    assert table.initial == table.fire(None, Event.CREATE)


def test_statuses_are_spelled_as_on_the_wire() -> None:
    assert {s.value for s in GroupState} == {
        "creating", "available", "modifying", "deleting", "create-failed", "snapshotting"
    }
    assert {s.value for s in ClusterState} == {
        "creating", "available", "modifying", "deleting", "rebooting cluster nodes", "restore-failed", "snapshotting"
    }
    assert {s.value for s in NodeState} == {"creating", "available", "rebooting", "deleting"}
    assert {s.value for s in SnapshotState} == {"creating", "available", "restoring", "copying", "deleting", "failed"}


def test_a_table_refuses_ambiguous_rows() -> None:
    g = GroupState
    with pytest.raises(ValueError, match="share"):
        Lifecycle("x", "X", GroupState, [(None, Event.CREATE, g.CREATING), (g.CREATING, Event.READY, g.AVAILABLE),
                                         (g.CREATING, Event.MODIFY, g.AVAILABLE)])
    with pytest.raises(ValueError, match="exactly one"):
        Lifecycle("x", "X", GroupState, [(g.CREATING, Event.READY, g.AVAILABLE)])


def test_the_calls_that_change_a_status_are_allowed_only_where_their_row_fires() -> None:
    for (kind, operation), rule in lifecycle.OPERATIONS.items():
        if rule.event is not None:
            sources = lifecycle.LIFECYCLES[kind].sources(rule.event)
            assert rule.allowed <= sources, f"{operation} allowed where {rule.event} has no row"


@pytest.mark.parametrize(
    ("kind", "operation", "allowed", "refused", "error"),
    [
        ("replication-group", "DeleteReplicationGroup", "create-failed", "creating", InvalidReplicationGroupState),
        ("replication-group", "ModifyReplicationGroup", "available", "snapshotting", InvalidReplicationGroupState),
        ("cache-cluster", "DeleteCacheCluster", "restore-failed", "rebooting cluster nodes", InvalidCacheClusterState),
        ("cache-cluster", "RebootCacheCluster", "available", "modifying", InvalidCacheClusterState),
        ("snapshot", "DeleteSnapshot", "failed", "creating", InvalidSnapshotState),
        ("snapshot", "CopySnapshot", "restoring", "deleting", InvalidSnapshotState),
    ],
)
def test_require(kind: str, operation: str, allowed: str, refused: str, error: type[Exception]) -> None:
    lifecycle.require(kind, operation, "r1", allowed)
    with pytest.raises(error, match=f"r1 is not in available state \\(current status: {refused}\\)"):
        lifecycle.require(kind, operation, "r1", refused)


# -- boto3's waiters -------------------------------------------------------------------------------

_WAITERS = Path(botocore.__file__).parent / "data" / "elasticache" / "2015-02-02" / "waiters-2.json"
# Values the waiters test that nothing here shows: a deleted resource is not found (the waiters take
# the NotFound error code as their success), and there is no VPC for a network to be incompatible with.
NEVER_SHOWN = {"deleted", "incompatible-network"}
STATES = {"CacheClusters[].CacheClusterStatus": ClusterState, "ReplicationGroups[].Status": GroupState}


def _acceptors() -> list[tuple[str, dict[str, Any]]]:
    waiters = json.loads(_WAITERS.read_text())["waiters"]
    return [(name, a) for name, w in waiters.items() for a in w["acceptors"] if a.get("argument") in STATES]


def test_every_status_a_waiter_tests_is_one_of_ours_or_never_shown() -> None:
    for name, acceptor in _acceptors():
        states = STATES[acceptor["argument"]]
        assert acceptor["expected"] in {s.value for s in states} | NEVER_SHOWN, (name, acceptor)


def test_the_waiters_stop_on_our_failed_creations_where_their_definitions_allow() -> None:
    failures = {(n, a["expected"]) for n, a in _acceptors() if a["state"] == "failure"}
    # A failed restore stops cache_cluster_available at once...
    failed_creations = {r.target for r in CLUSTER.rows if r.event in (Event.FAIL_CREATE, Event.FAIL_RESTORE)}
    assert failed_creations == {ClusterState.RESTORE_FAILED}
    assert ("CacheClusterAvailable", "restore-failed") in failures
    # ...while AWS's replication_group_available defines no failure but "deleted": it times out
    # on create-failed, as it does against AWS.
    assert {r.target for r in GROUP.rows if r.event is Event.FAIL_CREATE} == {GroupState.CREATE_FAILED}
    assert {e for n, e in failures if n == "ReplicationGroupAvailable"} == {"deleted"}


@pytest.mark.parametrize("table", TABLES, ids=[t.kind for t in TABLES])
def test_the_architecture_doc_shows_each_table_as_the_code_has_it(table: Lifecycle[Any]) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()

    def cell(state: StrEnum | None) -> str:
        return "(new)" if state is None else f"`{state.value}`"

    lines = ["| from | event | to |", "|---|---|---|"]
    lines += [f"| {cell(r.source)} | {r.event.value} | {cell(r.target)} |" for r in table.rows]
    assert "\n".join(lines) + "\n" in doc, f"docs/architecture.md's {table.kind} table differs from the code"
