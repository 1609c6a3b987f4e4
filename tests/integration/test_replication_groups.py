"""Replication groups end to end: real boto3 against a real server driving real redis-server nodes."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ADMIN_USER, ServerProcess, is_alive, wait_until

pytestmark = pytest.mark.integration


def _group(client: Any, group_id: str) -> dict[str, Any]:
    return client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]


def _redis(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)


def test_three_node_group_serves_replicates_and_is_deleted(server: ServerProcess, client: Any) -> None:
    created = client.create_replication_group(
        ReplicationGroupId="Orders",
        ReplicationGroupDescription="orders cache",
        NumCacheClusters=3,
        CacheNodeType="cache.t4g.small",
        Tags=[{"Key": "team", "Value": "shop"}],
    )["ReplicationGroup"]
    assert created["ReplicationGroupId"] == "orders"  # ids are stored lowercase, as on AWS
    assert created["Status"] == "creating"
    assert created["MemberClusters"] == ["orders-001", "orders-002", "orders-003"]
    assert created["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:orders"

    client.get_waiter("replication_group_available").wait(ReplicationGroupId="orders", WaiterConfig=FAST_WAIT)
    group = _group(client, "orders")
    assert group["Status"] == "available"
    (node_group,) = group["NodeGroups"]
    members = node_group["NodeGroupMembers"]
    assert [m["CurrentRole"] for m in members] == ["primary", "replica", "replica"]
    assert [m["PreferredAvailabilityZone"] for m in members] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    ports = [m["ReadEndpoint"]["Port"] for m in members]
    endpoints = [node_group["PrimaryEndpoint"]["Port"], node_group["ReaderEndpoint"]["Port"]]
    assert len(set(ports + endpoints)) == 5

    # The replicas joined from the group's seed: partial resyncs, no RDB sent (docs/decisions.md).
    with redis.Redis(
        host="127.0.0.1", port=ports[0], username=ADMIN_USER, password=server.admin_password(), decode_responses=True
    ) as admin:
        stats = admin.info("stats")
    assert (stats["sync_full"], stats["sync_partial_ok"]) == (0, 2)

    primary, *replicas = (_redis(p) for p in ports)
    writer, reader = _redis(endpoints[0]), _redis(endpoints[1])
    try:
        writer.set("greeting", "hello")  # through the primary endpoint
        assert primary.get("greeting") == "hello"
        primary.execute_command("WAIT", 2, 2000)
        for replica in replicas:
            assert replica.get("greeting") == "hello"
            assert replica.info("replication")["master_link_status"] == "up"
        assert reader.get("greeting") == "hello"
        assert reader.info("replication")["role"] == "slave"  # the reader endpoint lands on replicas
        # maxmemory follows the node type: cache.t4g.small has 1.37 GiB.
        assert int(primary.info("memory")["maxmemory"]) == pytest.approx(1.37 * 2**30, rel=0.01)
        # Applications connect as the default user and never get admin powers.
        for command in (
            ("CONFIG", "GET", "maxmemory"),
            ("REPLICAOF", "NO", "ONE"),
            ("SHUTDOWN",),
            ("DEBUG", "SLEEP", "0"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                primary.execute_command(*command)
    finally:
        for connection in (primary, *replicas, writer, reader):
            connection.close()

    clusters = client.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    assert [c["CacheClusterId"] for c in clusters] == ["orders-001", "orders-002", "orders-003"]
    assert all(
        c["ReplicationGroupId"] == "orders" and c["CacheClusterStatus"] == "available" for c in clusters
    )
    assert [c["CacheNodes"][0]["Endpoint"]["Port"] for c in clusters] == ports
    assert client.list_tags_for_resource(ResourceName=clusters[0]["ARN"])["TagList"] == [
        {"Key": "team", "Value": "shop"}
    ]

    pids = server.node_pids()
    # The group's endpoints are served by the host's one endpoint proxy.
    assert sorted(pids) == ["host.endpoints/haproxy", "orders-001/0001", "orders-002/0001", "orders-003/0001"]
    deleting = client.delete_replication_group(ReplicationGroupId="orders")["ReplicationGroup"]
    assert deleting["Status"] == "deleting"
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="orders", WaiterConfig=FAST_WAIT)
    with pytest.raises(ClientError) as caught:
        _group(client, "orders")
    assert caught.value.response["Error"]["Code"] == "ReplicationGroupNotFoundFault"
    assert client.describe_cache_clusters()["CacheClusters"] == []
    wait_until(lambda: not any(is_alive(p) for p in pids.values()), 10, what="node processes to exit")
    assert not (server.data_dir / "nodes" / "orders-001").exists()


def test_replicas_per_node_group_and_preferred_azs(client: Any) -> None:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId="placed",
        ReplicationGroupDescription="placement",
        ReplicasPerNodeGroup=1,
        PreferredCacheClusterAZs=["us-east-1c", "us-east-1c"],
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="placed", WaiterConfig=FAST_WAIT)
    members = _group(client, "placed")["NodeGroups"][0]["NodeGroupMembers"]
    assert [(m["CacheClusterId"], m["PreferredAvailabilityZone"], m["CurrentRole"]) for m in members] == [
        ("placed-001", "us-east-1c", "primary"),
        ("placed-002", "us-east-1c", "replica"),
    ]


def test_primary_cluster_id_adopts_a_standalone_cluster_and_retain_primary_keeps_it(
    server: ServerProcess, client: Any
) -> None:
    client.create_cache_cluster(
        CacheNodeType="cache.t4g.micro", CacheClusterId="solo", Engine="redis", PreferredAvailabilityZone="us-east-1b"
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)
    solo = client.describe_cache_clusters(CacheClusterId="solo", ShowCacheNodeInfo=True)["CacheClusters"][0]
    port = solo["CacheNodes"][0]["Endpoint"]["Port"]
    with _redis(port) as connection:
        connection.set("kept", "yes")

    client.create_replication_group(
        ReplicationGroupId="grown",
        ReplicationGroupDescription="from solo",
        PrimaryClusterId="solo",
        NumCacheClusters=2,
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="grown", WaiterConfig=FAST_WAIT)
    group = _group(client, "grown")
    assert group["MemberClusters"] == ["solo", "grown-002"]
    assert group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Port"] == port
    replica_port = group["NodeGroups"][0]["NodeGroupMembers"][1]["ReadEndpoint"]["Port"]
    with _redis(replica_port) as replica:
        wait_until(lambda: replica.get("kept") == "yes", 10, what="the replica to sync")

    client.delete_replication_group(ReplicationGroupId="grown", RetainPrimaryCluster=True)
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="grown", WaiterConfig=FAST_WAIT)
    remaining = client.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    assert [c["CacheClusterId"] for c in remaining] == ["solo"]
    assert "ReplicationGroupId" not in remaining[0]
    assert remaining[0]["CacheClusterStatus"] == "available"
    with _redis(port) as connection:
        assert connection.get("kept") == "yes"
    assert list(server.node_pids()) == ["solo/0001"]


def test_describe_pages_with_marker(client: Any) -> None:
    for i in range(21):
        client.create_replication_group(
            CacheNodeType="cache.t4g.micro", ReplicationGroupId=f"page{i:02d}", ReplicationGroupDescription="p"
        )
    first = client.describe_replication_groups(MaxRecords=20)
    assert len(first["ReplicationGroups"]) == 20
    second = client.describe_replication_groups(MaxRecords=20, Marker=first["Marker"])
    assert [g["ReplicationGroupId"] for g in second["ReplicationGroups"]] == ["page20"]
    assert "Marker" not in second
    paginator = client.get_paginator("describe_replication_groups")
    seen = [
        g["ReplicationGroupId"]
        for p in paginator.paginate(PaginationConfig={"PageSize": 20})
        for g in p["ReplicationGroups"]
    ]
    assert seen == [f"page{i:02d}" for i in range(21)]
    clusters = client.get_paginator("describe_cache_clusters").paginate(PaginationConfig={"PageSize": 20})
    assert sum(len(p["CacheClusters"]) for p in clusters) == 21
