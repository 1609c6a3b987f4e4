"""Memcached and standalone Redis clusters, tags and engine versions, through real boto3."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import redis
from pymemcache.client.base import Client as Memcache
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ServerProcess, is_alive, wait_until

pytestmark = pytest.mark.integration


def _cluster(client: Any, cluster_id: str) -> dict[str, Any]:
    clusters = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    return dict(clusters["CacheClusters"][0])


def test_memcached_cluster_across_azs(server: ServerProcess, client: Any) -> None:
    created = client.create_cache_cluster(
        CacheClusterId="sessions",
        Engine="memcached",
        NumCacheNodes=3,
        AZMode="cross-az",
        CacheNodeType="cache.t3.micro",
    )["CacheCluster"]
    assert created["CacheClusterStatus"] == "creating"
    assert "CacheNodes" not in created
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="sessions", WaiterConfig=FAST_WAIT)
    cluster = _cluster(client, "sessions")
    assert cluster["Engine"] == "memcached"
    assert cluster["EngineVersion"].startswith("1.6")
    assert cluster["PreferredAvailabilityZone"] == "Multiple"
    assert cluster["CacheParameterGroup"]["CacheParameterGroupName"] == "default.memcached1.6"
    nodes = cluster["CacheNodes"]
    assert [n["CacheNodeId"] for n in nodes] == ["0001", "0002", "0003"]
    assert [n["CustomerAvailabilityZone"] for n in nodes] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert all(n["CacheNodeStatus"] == "available" for n in nodes)
    for node in nodes:
        endpoint = node["Endpoint"]
        mc = Memcache((endpoint["Address"], endpoint["Port"]), connect_timeout=2, timeout=2)
        try:
            assert mc.set("k", node["CacheNodeId"], noreply=False)
            assert mc.get("k") == node["CacheNodeId"].encode()
            # -m follows the node type: cache.t3.micro has 0.5 GiB.
            assert int(mc.stats()[b"limit_maxbytes"]) == 512 * 2**20
        finally:
            mc.close()

    pids = server.member_pids()
    assert len(pids) == 3
    assert (
        client.delete_cache_cluster(CacheClusterId="sessions")["CacheCluster"]["CacheClusterStatus"]
        == "deleting"
    )
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="sessions", WaiterConfig=FAST_WAIT)
    wait_until(lambda: not server.member_pids(), 10, what="memcached processes to exit")
    assert not any(is_alive(pid) for pid in pids.values())


def test_memcached_placement_follows_preferred_zones(client: Any) -> None:
    client.create_cache_cluster(
        CacheNodeType="cache.t4g.micro",
        CacheClusterId="placed",
        Engine="memcached",
        NumCacheNodes=2,
        PreferredAvailabilityZones=["us-east-1c", "us-east-1c"],
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="placed", WaiterConfig=FAST_WAIT)
    cluster = _cluster(client, "placed")
    assert cluster["PreferredAvailabilityZone"] == "us-east-1c"
    assert [n["CustomerAvailabilityZone"] for n in cluster["CacheNodes"]] == ["us-east-1c", "us-east-1c"]


def test_standalone_redis_cluster_and_killed_node(server: ServerProcess, client: Any) -> None:
    client.create_cache_cluster(CacheClusterId="single", Engine="redis", CacheNodeType="cache.r7g.large")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="single", WaiterConfig=FAST_WAIT)
    cluster = _cluster(client, "single")
    assert cluster["NumCacheNodes"] == 1
    assert "ReplicationGroupId" not in cluster
    assert cluster["CacheParameterGroup"]["CacheParameterGroupName"] == "default.redis7"
    endpoint = cluster["CacheNodes"][0]["Endpoint"]
    with redis.Redis(host=endpoint["Address"], port=endpoint["Port"], socket_timeout=2) as connection:
        assert connection.ping()
    old = server.member_pids()["single/0001"]
    os.kill(old, 9)
    wait_until(
        lambda: server.member_pids().get("single/0001") not in (None, old), 15, what="the node's restart"
    )
    assert _cluster(client, "single")["CacheNodes"][0]["Endpoint"] == endpoint
    listing = client.describe_cache_clusters(ShowCacheClustersNotInReplicationGroups=True)["CacheClusters"]
    assert [c["CacheClusterId"] for c in listing] == ["single"]


def test_tags_on_groups_and_clusters(client: Any) -> None:
    group_arn = client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId="tagged", ReplicationGroupDescription="t", Tags=[{"Key": "env", "Value": "dev"}]
    )["ReplicationGroup"]["ARN"]
    assert client.add_tags_to_resource(
        ResourceName=group_arn, Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a"}]
    )["TagList"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a"}]
    assert client.remove_tags_from_resource(ResourceName=group_arn, TagKeys=["env", "absent"])["TagList"] == [
        {"Key": "team", "Value": "a"}
    ]
    assert client.list_tags_for_resource(ResourceName=group_arn)["TagList"] == [{"Key": "team", "Value": "a"}]
    member_arn = "arn:aws:elasticache:us-east-1:000000000000:cluster:tagged-001"
    assert client.list_tags_for_resource(ResourceName=member_arn)["TagList"] == [
        {"Key": "env", "Value": "dev"}
    ]


def test_engine_versions_are_what_is_installed(client: Any) -> None:
    versions = client.describe_cache_engine_versions()["CacheEngineVersions"]
    engines = {v["Engine"]: v for v in versions}
    assert {"redis", "memcached"} <= set(engines)
    assert engines["redis"]["CacheParameterGroupFamily"] == "redis7"
    assert engines["memcached"]["CacheParameterGroupFamily"] == "memcached1.6"
    installed = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"v={engines['redis']['EngineVersion']}" in installed
    only = client.describe_cache_engine_versions(Engine="memcached")["CacheEngineVersions"]
    assert [v["Engine"] for v in only] == ["memcached"]
    assert client.describe_cache_engine_versions(Engine="redis", EngineVersion="7.0")["CacheEngineVersions"]
    assert client.describe_cache_engine_versions(EngineVersion="1.2.3")["CacheEngineVersions"] == []
