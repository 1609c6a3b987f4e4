"""Defaults as ElastiCache has them, and the settings that are stored and shown (docs/decisions.md).

In-process: a real boto3 client into the real app over a real SQLite store; the reconciler's part
(a resource becoming available) is stood in for by ``InProcessApi.mark_available``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import InProcessApi

from cachefleet.control.scheduler import SnapshotScheduler
from cachefleet.model import snapshots as sn
from cachefleet.model.specs import DEFAULT_MAINTENANCE_WINDOW
from cachefleet.store.records import CLUSTER, GROUP, all_snapshots

NODE = {"CacheNodeType": "cache.t4g.micro"}
RG = {"ReplicationGroupDescription": "d", **NODE}
TOPIC = "arn:aws:sns:us-east-1:123456789012:cache-events"
NO_NODE_TYPE = "The parameter CacheNodeType must be provided and must not be null."


@pytest.fixture
def api(tmp_path: Any) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "cf")
    yield server
    server.close()


@pytest.fixture
def client(api: InProcessApi) -> Any:
    return api.client()


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def group(client: Any, group_id: str) -> dict[str, Any]:
    return dict(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def cluster(client: Any, cluster_id: str) -> dict[str, Any]:
    return dict(client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0])


def available_group(api: InProcessApi, client: Any, group_id: str, **params: Any) -> None:
    client.create_replication_group(ReplicationGroupId=group_id, **{**RG, **params})
    api.mark_available(GROUP, group_id)
    for member in group(client, group_id)["MemberClusters"]:
        api.mark_available(CLUSTER, member)


# CacheNodeType: ElastiCache has no default


@pytest.mark.parametrize("value", [None, ""])
def test_create_cache_cluster_requires_a_node_type(client: Any, value: str | None) -> None:
    params = {} if value is None else {"CacheNodeType": value}
    for engine in ("redis", "memcached"):
        assert error(client.create_cache_cluster, CacheClusterId="c", Engine=engine, **params) == (
            "InvalidParameterValue",
            NO_NODE_TYPE,
        )
    assert client.describe_cache_clusters()["CacheClusters"] == []


def test_create_replication_group_requires_a_node_type(client: Any) -> None:
    assert error(client.create_replication_group, ReplicationGroupId="g", ReplicationGroupDescription="d") == (
        "InvalidParameterValue",
        NO_NODE_TYPE,
    )
    assert client.describe_replication_groups()["ReplicationGroups"] == []


def test_a_group_on_an_existing_primary_takes_its_node_type(api: InProcessApi, client: Any) -> None:
    client.create_cache_cluster(CacheClusterId="solo", Engine="redis", CacheNodeType="cache.r7g.large")
    api.mark_available(CLUSTER, "solo")
    assert error(
        client.create_replication_group,
        ReplicationGroupId="g",
        ReplicationGroupDescription="d",
        PrimaryClusterId="solo",
        CacheNodeType="cache.t4g.micro",
    ) == ("InvalidParameterCombination", "The parameter CacheNodeType must agree with the primary cluster solo "
          "(PrimaryClusterId).")
    created = client.create_replication_group(
        ReplicationGroupId="g", ReplicationGroupDescription="d", PrimaryClusterId="solo", NumCacheClusters=2
    )["ReplicationGroup"]
    assert created["CacheNodeType"] == "cache.r7g.large"
    assert cluster(client, "g-002")["CacheNodeType"] == "cache.r7g.large"


def test_a_member_added_by_create_cache_cluster_takes_its_groups_node_type(api: InProcessApi, client: Any) -> None:
    available_group(api, client, "g", CacheNodeType="cache.m7g.large")
    assert error(client.create_cache_cluster, CacheClusterId="extra", ReplicationGroupId="g", **NODE)[0] == (
        "InvalidParameterCombination"
    )
    client.create_cache_cluster(CacheClusterId="extra", ReplicationGroupId="g")
    assert cluster(client, "extra")["CacheNodeType"] == "cache.m7g.large"


# SnapshottingClusterId: shown while automatic snapshots are on


def test_snapshotting_cluster_id_is_shown_only_with_automatic_snapshots(api: InProcessApi, client: Any) -> None:
    available_group(api, client, "g", NumCacheClusters=3)
    assert "SnapshottingClusterId" not in group(client, "g")
    client.modify_replication_group(ReplicationGroupId="g", SnapshotRetentionLimit=1)
    # No replica serves yet (nothing reconciles here), so the scheduler would take the primary.
    assert group(client, "g")["SnapshottingClusterId"] == "g-001"
    client.modify_replication_group(ReplicationGroupId="g", SnapshottingClusterId="G-003")
    assert group(client, "g")["SnapshottingClusterId"] == "g-003"
    client.modify_replication_group(ReplicationGroupId="g", SnapshotRetentionLimit=0)
    assert "SnapshottingClusterId" not in group(client, "g")


def test_snapshotting_cluster_id_must_be_a_member(api: InProcessApi, client: Any) -> None:
    available_group(api, client, "g", NumCacheClusters=2)
    assert error(client.modify_replication_group, ReplicationGroupId="g", SnapshottingClusterId="other-001") == (
        "InvalidParameterValue",
        "other-001 is not a member of replication group g.",
    )


def test_the_scheduler_takes_automatic_snapshots_on_the_snapshotting_cluster(api: InProcessApi, client: Any) -> None:
    available_group(api, client, "g", NumCacheClusters=3, SnapshotRetentionLimit=1, SnapshotWindow="05:00-06:00")
    client.modify_replication_group(ReplicationGroupId="g", SnapshottingClusterId="g-002")
    api.mark_available(GROUP, "g")
    in_window = datetime(2030, 1, 1, 5, 10, tzinfo=UTC)
    SnapshotScheduler(api.store, schedule_clock=lambda: in_window, clock=lambda: in_window).tick()
    (snapshot,) = all_snapshots(api.store)
    assert snapshot.spec.name == sn.automatic_name("g", in_window)
    assert snapshot.status.node_cluster_id == "g-002"


# Stored settings: kept and shown as ElastiCache shows them


def test_defaults_shown_for_settings_not_given(client: Any) -> None:
    client.create_cache_cluster(CacheClusterId="c", Engine="redis", **NODE)
    shown = cluster(client, "c")
    assert shown["PreferredMaintenanceWindow"] == DEFAULT_MAINTENANCE_WINDOW
    assert shown["AutoMinorVersionUpgrade"] is True
    assert shown["CacheSubnetGroupName"] == "default"
    assert "SecurityGroups" not in shown
    assert "NotificationConfiguration" not in shown


def test_the_default_windows_do_not_overlap() -> None:
    def minutes(hh_mm: str) -> int:
        hours, _, mins = hh_mm.partition(":")
        return int(hours) * 60 + int(mins)

    # sun:06:00-sun:07:00 against the daily 05:00-06:00: compared within the day.
    _, start, _, end = re.fullmatch(r"(\w+):(\d\d:\d\d)-(\w+):(\d\d:\d\d)", DEFAULT_MAINTENANCE_WINDOW).groups()
    snapshot_start, snapshot_end = sn.DEFAULT_WINDOW.split("-")
    assert minutes(snapshot_end) <= minutes(start) or minutes(end) <= minutes(snapshot_start)


def test_stored_settings_are_shown_on_a_cluster_and_changed_by_modify(api: InProcessApi, client: Any) -> None:
    client.create_cache_cluster(
        CacheClusterId="c",
        Engine="memcached",
        SecurityGroupIds=["sg-0123abcd", "sg-0123abcd", "sg-99"],
        PreferredMaintenanceWindow="Tue:23:30-Wed:00:30",
        NotificationTopicArn=TOPIC,
        AutoMinorVersionUpgrade=False,
        **NODE,
    )
    shown = cluster(client, "c")
    assert shown["SecurityGroups"] == [
        {"SecurityGroupId": "sg-0123abcd", "Status": "active"},
        {"SecurityGroupId": "sg-99", "Status": "active"},
    ]
    assert shown["PreferredMaintenanceWindow"] == "tue:23:30-wed:00:30"
    assert shown["NotificationConfiguration"] == {"TopicArn": TOPIC, "TopicStatus": "active"}
    assert shown["AutoMinorVersionUpgrade"] is False
    api.mark_available(CLUSTER, "c")
    client.modify_cache_cluster(CacheClusterId="c", NotificationTopicStatus="inactive", SecurityGroupIds=["sg-1"])
    shown = cluster(client, "c")
    assert shown["NotificationConfiguration"] == {"TopicArn": TOPIC, "TopicStatus": "inactive"}
    assert shown["SecurityGroups"] == [{"SecurityGroupId": "sg-1", "Status": "active"}]
    # An empty topic ARN removes the topic, as Terraform asks for it.
    client.modify_cache_cluster(CacheClusterId="c", NotificationTopicArn="")
    assert "NotificationConfiguration" not in cluster(client, "c")


def test_a_groups_stored_settings_are_its_members_and_its_snapshots(api: InProcessApi, client: Any) -> None:
    available_group(api, client, "g", NumCacheClusters=2, PreferredMaintenanceWindow="mon:01:00-mon:02:00")
    client.modify_replication_group(
        ReplicationGroupId="g", SecurityGroupIds=["sg-7"], NotificationTopicArn=TOPIC, AutoMinorVersionUpgrade=False
    )
    assert group(client, "g")["AutoMinorVersionUpgrade"] is False
    for member in ("g-001", "g-002"):
        shown = cluster(client, member)
        assert shown["PreferredMaintenanceWindow"] == "mon:01:00-mon:02:00"
        assert shown["SecurityGroups"] == [{"SecurityGroupId": "sg-7", "Status": "active"}]
        assert shown["NotificationConfiguration"]["TopicArn"] == TOPIC
    snapshot = client.create_snapshot(ReplicationGroupId="g", SnapshotName="s")["Snapshot"]
    assert (snapshot["PreferredMaintenanceWindow"], snapshot["TopicArn"]) == ("mon:01:00-mon:02:00", TOPIC)
    assert snapshot["AutoMinorVersionUpgrade"] is False
    # A replica added later is like the others.
    api.mark_available(GROUP, "g")
    client.increase_replica_count(ReplicationGroupId="g", NewReplicaCount=2, ApplyImmediately=True)
    assert cluster(client, "g-003")["SecurityGroups"] == [{"SecurityGroupId": "sg-7", "Status": "active"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"PreferredMaintenanceWindow": "sunday 5am"}, "Invalid value for parameter PreferredMaintenanceWindow"),
        ({"PreferredMaintenanceWindow": "sun:05:00-sun:05:30"}, "must be from 60 minutes to 24 hours long"),
        ({"PreferredMaintenanceWindow": "sun:05:00-mon:06:00"}, "must be from 60 minutes to 24 hours long"),
        ({"SecurityGroupIds": ["default"]}, "Invalid value for parameter SecurityGroupIds: default."),
        ({"NotificationTopicArn": "arn:aws:sqs:us-east-1:123456789012:q"}, "It must be an SNS topic ARN"),
        ({"NotificationTopicArn": "topic"}, "Invalid value for parameter NotificationTopicArn"),
    ],
)
def test_stored_settings_aws_would_refuse_are_refused(client: Any, params: dict[str, Any], message: str) -> None:
    code, text = error(client.create_cache_cluster, CacheClusterId="c", Engine="redis", **NODE, **params)
    assert code == "InvalidParameterValue"
    assert message in text
    assert client.describe_cache_clusters()["CacheClusters"] == []


def test_a_window_may_wrap_around_the_week(client: Any) -> None:
    client.create_cache_cluster(
        CacheClusterId="c", Engine="redis", PreferredMaintenanceWindow="sat:23:30-sun:00:30", **NODE
    )
    assert cluster(client, "c")["PreferredMaintenanceWindow"] == "sat:23:30-sun:00:30"
