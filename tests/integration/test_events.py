"""DescribeEvents: filters by source, by time window, and pages, newest first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tests.integration.conftest import FAST_WAIT

pytestmark = pytest.mark.integration


def test_events_filter_by_source_and_time(client: Any) -> None:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro", ReplicationGroupId="ev", ReplicationGroupDescription="e"
    )
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="evmc", Engine="memcached")
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="ev", WaiterConfig=FAST_WAIT)
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="evmc", WaiterConfig=FAST_WAIT)
    client.delete_cache_cluster(CacheClusterId="evmc")
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="evmc", WaiterConfig=FAST_WAIT)

    everything = client.describe_events()["Events"]
    listed = [(e["SourceIdentifier"], e["Message"]) for e in everything]
    assert listed[0] == ("evmc", "Cache cluster deleted")
    # The two creations race each other; both are listed, after the deletion.
    assert sorted(listed[1:]) == [("ev", "Replication group ev created"), ("evmc", "Cache cluster created")]
    dates = [e["Date"] for e in everything]
    assert dates == sorted(dates, reverse=True)  # newest first, as ElastiCache lists them

    groups = client.describe_events(SourceType="replication-group")["Events"]
    assert [e["Message"] for e in groups] == ["Replication group ev created"]
    one = client.describe_events(SourceType="cache-cluster", SourceIdentifier="EVMC")["Events"]
    assert [e["Message"] for e in one] == ["Cache cluster deleted", "Cache cluster created"]

    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert client.describe_events(StartTime=future, EndTime=future + dt.timedelta(hours=1))["Events"] == []
    past = client.describe_events(EndTime=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), Duration=30)["Events"]
    assert past == []
    assert len(client.describe_events(Duration=5)["Events"]) == 3


def test_events_page_with_marker(client: Any) -> None:
    for i in range(11):
        client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId=f"evp{i}", Engine="memcached")
    for i in range(11):
        client.get_waiter("cache_cluster_available").wait(CacheClusterId=f"evp{i}", WaiterConfig=FAST_WAIT)
    for i in range(11):
        client.delete_cache_cluster(CacheClusterId=f"evp{i}")
    for i in range(11):
        client.get_waiter("cache_cluster_deleted").wait(CacheClusterId=f"evp{i}", WaiterConfig=FAST_WAIT)
    first = client.describe_events(MaxRecords=20)
    assert len(first["Events"]) == 20
    rest = client.describe_events(MaxRecords=20, Marker=first["Marker"])
    assert len(rest["Events"]) == 2
    assert "Marker" not in rest
