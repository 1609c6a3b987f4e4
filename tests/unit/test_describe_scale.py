"""Describe at scale, in process (real boto3 into the real app over a real SQLite store): a Describe
naming one resource costs the same whatever else exists, a page costs by the page, and boto3's
paginators walk every list once, in order, across markers.

"Costs" is counted, not timed: the SQL statements one request runs and the rows they return,
each statement checked to go through an index (SQLite's plan says SEARCH, never SCAN of a table).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import InProcessApi

from cachefleet.store.records import CLUSTER, GROUP

NODE = {"CacheNodeType": "cache.t4g.micro"}


@pytest.fixture
def api(tmp_path: Any) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "cf")
    yield server
    server.close()


@pytest.fixture
def client(api: InProcessApi) -> Any:
    return api.client()


def _group(client: Any, group_id: str, members: int = 3) -> None:
    client.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="d",
        NumCacheClusters=members,
        AutomaticFailoverEnabled=members > 1,
        **NODE,
    )


def _available(api: InProcessApi, group_id: str, members: int = 3) -> None:
    api.mark_available(GROUP, group_id)
    for i in range(1, members + 1):
        api.mark_available(CLUSTER, f"{group_id}-{i:03d}")


def _grow(api: InProcessApi, client: Any, first: int, last: int) -> None:
    for i in range(first, last):
        _group(client, f"g{i:03d}")
        _available(api, f"g{i:03d}")
        api.store.add_event(f"g{i:03d}", "replication-group", f"noise {i}", api.now())


def _cost(api: InProcessApi, call: Callable[[], Any]) -> tuple[int, int]:
    """The SELECTs the store runs for ``call`` (one request) and the rows they return; each
    statement is checked to go through an index."""
    db: sqlite3.Connection = api.store._db
    statements: list[str] = []
    rows = 0

    def count(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> sqlite3.Row:
        nonlocal rows
        rows += 1
        return sqlite3.Row(cursor, row)

    db.set_trace_callback(lambda sql: statements.append(sql) if sql.lstrip().upper().startswith("SELECT") else None)
    db.row_factory = count
    try:
        call()
    finally:
        db.set_trace_callback(None)
        db.row_factory = sqlite3.Row
    for sql in statements:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not [step for step in plan if step.startswith("SCAN")], f"{sql}\n{plan}"
    return len(statements), rows


def _describe_calls(client: Any) -> dict[str, Callable[[], Any]]:
    return {
        "group": lambda: client.describe_replication_groups(ReplicationGroupId="g001"),
        "cluster": lambda: client.describe_cache_clusters(CacheClusterId="g001-002", ShowCacheNodeInfo=True),
        "snapshot": lambda: client.describe_snapshots(SnapshotName="snap-g001"),
        "snapshot with a filter": lambda: client.describe_snapshots(SnapshotName="snap-g001", SnapshotSource="user"),
        "snapshots of a cluster": lambda: client.describe_snapshots(CacheClusterId="g001-002"),
        "snapshots of a group": lambda: client.describe_snapshots(ReplicationGroupId="g001"),
        "events of a group": lambda: client.describe_events(SourceType="replication-group", SourceIdentifier="g001"),
        "group page": lambda: client.describe_replication_groups(MaxRecords=20),
        "cluster page": lambda: client.describe_cache_clusters(MaxRecords=20),
        "standalone cluster page": lambda: client.describe_cache_clusters(
            MaxRecords=20, ShowCacheClustersNotInReplicationGroups=True
        ),
        "snapshot page": lambda: client.describe_snapshots(MaxRecords=20),
        "event page": lambda: client.describe_events(MaxRecords=20),
    }


def _fleet(api: InProcessApi, client: Any, groups: int, snapshots: int, standalone: int) -> None:
    """Grow the fleet to these counts (snapshots spread over groups: 20 a day per source at most)."""
    have = len(api.store.records(GROUP))
    _grow(api, client, have, groups)
    for i in range(len(api.store.records("snapshot")), snapshots):
        client.create_snapshot(ReplicationGroupId=f"g{i // 10:03d}", SnapshotName=f"snap-g{i:03d}")
        api.mark_available("snapshot", f"snap-g{i:03d}")
        _available(api, f"g{i // 10:03d}")
    for i in range(len(api.store.records(CLUSTER)) - 3 * groups, standalone):
        client.create_cache_cluster(CacheClusterId=f"alone{i:03d}", Engine="memcached", **NODE)


def test_a_describe_reads_the_same_rows_with_four_times_the_fleet(api: InProcessApi, client: Any) -> None:
    # Every list already fills a page of 20, so a cost that followed the fleet would show.
    _fleet(api, client, groups=25, snapshots=25, standalone=25)
    calls = _describe_calls(client)
    small = {name: _cost(api, call) for name, call in calls.items()}
    _fleet(api, client, groups=100, snapshots=100, standalone=100)
    large = {name: _cost(api, call) for name, call in calls.items()}
    assert large == small
    # The caller's key is not among them: the identity store caches it (store/iam.py).
    assert small["group"] == (2, 4)  # the group; its three members in one query
    assert small["group page"] == (2, 21 + 60)  # 20 groups and the next's seq; their members


def test_boto3s_paginators_walk_each_list_once_in_creation_order(api: InProcessApi, client: Any) -> None:
    _grow(api, client, 0, 45)
    for i in range(3):
        client.create_cache_cluster(CacheClusterId=f"alone{i}", Engine="memcached", **NODE)

    def walk(operation: str, key: str, field: str, **params: Any) -> list[str]:
        pages = client.get_paginator(operation).paginate(PaginationConfig={"PageSize": 20}, **params)
        return [item[field] for page in pages for item in page[key]]

    groups = walk("describe_replication_groups", "ReplicationGroups", "ReplicationGroupId")
    assert groups == [f"g{i:03d}" for i in range(45)]
    clusters = walk("describe_cache_clusters", "CacheClusters", "CacheClusterId")
    assert clusters == [f"g{i:03d}-{m:03d}" for i in range(45) for m in (1, 2, 3)] + ["alone0", "alone1", "alone2"]
    standalone = walk(
        "describe_cache_clusters", "CacheClusters", "CacheClusterId", ShowCacheClustersNotInReplicationGroups=True
    )
    assert standalone == ["alone0", "alone1", "alone2"]
    events = walk("describe_events", "Events", "Message", SourceType="replication-group")
    assert events == [f"noise {i}" for i in reversed(range(45))]


def test_a_group_deleted_between_two_pages_shifts_no_other(api: InProcessApi, client: Any) -> None:
    _grow(api, client, 0, 30)
    first = client.describe_replication_groups(MaxRecords=20)
    assert [g["ReplicationGroupId"] for g in first["ReplicationGroups"]] == [f"g{i:03d}" for i in range(20)]
    api.store.delete(GROUP, "g005")  # as the reconciler does once a deletion is done
    _group(client, "late")
    second = client.describe_replication_groups(MaxRecords=20, Marker=first["Marker"])
    assert [g["ReplicationGroupId"] for g in second["ReplicationGroups"]] == [
        *(f"g{i:03d}" for i in range(20, 30)),
        "late",
    ]
    assert "Marker" not in second


def test_snapshots_filter_and_page_through_their_indexes(api: InProcessApi, client: Any) -> None:
    _grow(api, client, 0, 3)
    names = []
    for i in range(22):
        group_id = "g001" if i % 2 else "g000"  # ElastiCache allows 20 manual snapshots a day per source
        names.append(f"s{i:02d}")
        client.create_snapshot(ReplicationGroupId=group_id, SnapshotName=names[-1])
        # As the reconciler leaves them once taken (the group and the saved member back to available).
        api.mark_available("snapshot", names[-1])
        _available(api, group_id)
    client.create_snapshot(CacheClusterId="g002-001", SnapshotName="on-primary")
    first = client.describe_snapshots(SnapshotSource="user", MaxRecords=20)
    assert [s["SnapshotName"] for s in first["Snapshots"]] == names[:20]
    rest = client.describe_snapshots(SnapshotSource="user", MaxRecords=20, Marker=first["Marker"])
    assert ([s["SnapshotName"] for s in rest["Snapshots"]], "Marker" in rest) == ([*names[20:], "on-primary"], False)
    of_group = client.describe_snapshots(ReplicationGroupId="g001", SnapshotSource="user")["Snapshots"]
    assert [s["SnapshotName"] for s in of_group] == names[1::2]
    by_member = client.describe_snapshots(CacheClusterId="g002-001")["Snapshots"]
    assert [s["SnapshotName"] for s in by_member] == ["on-primary"]
    assert client.describe_snapshots(CacheClusterId="g002-002")["Snapshots"] == []
    assert client.describe_snapshots(SnapshotSource="system")["Snapshots"] == []
    named = client.describe_snapshots(SnapshotName="s03", ReplicationGroupId="g002")["Snapshots"]
    assert named == []  # the name and a filter that does not hold: nothing, as before
    with pytest.raises(ClientError) as missing:
        client.describe_snapshots(CacheClusterId="nope")
    assert missing.value.response["Error"]["Code"] == "CacheClusterNotFound"


def test_a_marker_of_another_list_or_a_forged_one_is_invalid_on_the_wire(api: InProcessApi, client: Any) -> None:
    _grow(api, client, 0, 21)
    groups_marker = client.describe_replication_groups(MaxRecords=20)["Marker"]
    events_marker = client.describe_events(MaxRecords=20)["Marker"]
    versions_marker = client.describe_cache_parameters(CacheParameterGroupName="default.redis7", MaxRecords=20)[
        "Marker"
    ]
    for call in (
        lambda: client.describe_events(Marker=groups_marker),
        lambda: client.describe_replication_groups(Marker=events_marker),
        lambda: client.describe_cache_clusters(Marker=versions_marker),
        lambda: client.describe_cache_parameters(CacheParameterGroupName="default.redis7", Marker=groups_marker),
        lambda: client.describe_replication_groups(Marker="x" * 2000),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        error = refused.value.response["Error"]
        assert (error["Code"], error["Message"]) == ("InvalidParameterValue", "The parameter Marker is not valid.")
    # With one id, the marker of a page that starts after it: an empty list, no error.
    late = client.describe_replication_groups(ReplicationGroupId="g000", Marker=groups_marker)
    assert late["ReplicationGroups"] == []
    named = client.describe_replication_groups(ReplicationGroupId="g020", Marker=groups_marker)
    assert len(named["ReplicationGroups"]) == 1


def test_events_of_a_window_only_however_long_the_history(api: InProcessApi, client: Any) -> None:
    now = api.now()
    for days in (30, 10, 2):
        api.store.add_event("old", "cache-cluster", f"{days} days ago", now - timedelta(days=days))
    api.store.add_event("old", "cache-cluster", "just now", now)
    recent = client.describe_events(SourceType="cache-cluster", SourceIdentifier="old")["Events"]
    assert [e["Message"] for e in recent] == ["just now"]  # the last hour by default
    two_weeks = client.describe_events(Duration=20160)["Events"]
    assert [e["Message"] for e in two_weeks] == ["just now", "2 days ago", "10 days ago"]


def test_writes_that_check_a_quota_or_a_use_read_the_same_rows_with_four_times_the_fleet(
    api: InProcessApi, client: Any
) -> None:
    def calls(group_id: str, n: int) -> dict[str, Callable[[], Any]]:
        return {
            # The quota of TestFailover reads the last day's requests only.
            "test failover": lambda: client.test_failover(ReplicationGroupId=group_id, NodeGroupId="0001"),
            # The quota of manual snapshots reads the source's snapshots only (none, for both).
            "create snapshot": lambda: client.create_snapshot(ReplicationGroupId=group_id, SnapshotName=f"q{n}"),
            "create parameter group": lambda: client.create_cache_parameter_group(
                CacheParameterGroupName=f"pg{n}", CacheParameterGroupFamily="redis7", Description="d"
            ),
            # Deleting one reads the clusters and groups that name it only.
            "delete parameter group": lambda: client.delete_cache_parameter_group(CacheParameterGroupName=f"pg{n}"),
        }

    _fleet(api, client, groups=25, snapshots=25, standalone=25)
    small = {name: _cost(api, call) for name, call in calls("g024", 0).items()}
    _fleet(api, client, groups=100, snapshots=100, standalone=100)
    for i in range(3):
        client.create_cache_parameter_group(
            CacheParameterGroupName=f"other{i}", CacheParameterGroupFamily="redis7", Description="d"
        )
    large = {name: _cost(api, call) for name, call in calls("g099", 1).items()}
    statements, rows = small.pop("test failover")
    assert large.pop("test failover") == (statements, rows + 1)  # and the request the first call made
    assert large == small
