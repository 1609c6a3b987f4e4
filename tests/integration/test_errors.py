"""Bad input answers with the exact AWS Code and HTTP status, changes nothing, and never 500s."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ServerProcess
from tests.support.sign import signed_post

pytestmark = pytest.mark.integration

NODE = {"CacheNodeType": "cache.t4g.micro"}
RG = {"ReplicationGroupDescription": "d", **NODE}
ARN = "arn:aws:elasticache:us-east-1:000000000000"

# (operation, parameters, expected Code, expected HTTP status)
CASES: list[tuple[str, dict[str, Any], str, int]] = [
    # Identifiers
    ("create_replication_group", {"ReplicationGroupId": "1abc", **RG}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "ab--c", **RG}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "abc-", **RG}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "a_b", **RG}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "a" * 41, **RG}, "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "a" * 51}, "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "-x"}, "InvalidParameterValue", 400),
    # CacheNodeType has no default on ElastiCache
    ("create_cache_cluster", {"CacheClusterId": "nonode"}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "nonode", "ReplicationGroupDescription": "d"},
     "InvalidParameterValue", 400),
    # Counts
    (
        "create_replication_group",
        {"ReplicationGroupId": "n", "NumCacheClusters": 7, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "n", "NumCacheClusters": 0, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "n", "ReplicasPerNodeGroup": 6, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "n", "NumCacheClusters": 2, "ReplicasPerNodeGroup": 2, **RG},
        "InvalidParameterCombination",
        400,
    ),
    (
        "create_cache_cluster",
        {"CacheClusterId": "m", "Engine": "memcached", "NumCacheNodes": 41},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_cache_cluster",
        {"CacheClusterId": "m", "Engine": "memcached", "NumCacheNodes": 0},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_cache_cluster",
        {"CacheClusterId": "r", "Engine": "redis", "NumCacheNodes": 2},
        "InvalidParameterValue",
        400,
    ),
    # AZ lists
    (
        "create_replication_group",
        {"ReplicationGroupId": "z", "NumCacheClusters": 2, "PreferredCacheClusterAZs": ["us-east-1a"], **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "z", "NumCacheClusters": 1, "PreferredCacheClusterAZs": ["mars-1a"], **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_cache_cluster",
        {
            "CacheClusterId": "m",
            "Engine": "memcached",
            "NumCacheNodes": 3,
            "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"],
        },
        "InvalidParameterValue",
        400,
    ),
    (
        "create_cache_cluster",
        {
            "CacheClusterId": "m",
            "Engine": "memcached",
            "NumCacheNodes": 2,
            "PreferredAvailabilityZone": "us-east-1a",
            "PreferredAvailabilityZones": ["us-east-1a", "us-east-1b"],
        },
        "InvalidParameterCombination",
        400,
    ),
    (
        "create_cache_cluster",
        {"CacheClusterId": "m", "Engine": "memcached", "AZMode": "everywhere"},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_cache_cluster",
        {"CacheClusterId": "r", "Engine": "redis", "AZMode": "cross-az"},
        "InvalidParameterCombination",
        400,
    ),
    # Catalogue: node types, engines, versions
    (
        "create_replication_group",
        {**RG, "ReplicationGroupId": "t", "CacheNodeType": "cache.huge.x"},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "t", "EngineVersion": "2.8", **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "t", "Engine": "memcached", **RG},
        "InvalidParameterValue",
        400,
    ),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "e", "Engine": "mongodb"}, "InvalidParameterValue", 400),
    (
        "create_cache_cluster",
        {"CacheClusterId": "e", "Engine": "memcached", "EngineVersion": "1.4.5"},
        "InvalidParameterValue",
        400,
    ),
    # Flags and their preconditions
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "MultiAZEnabled": True, **RG},
        "InvalidParameterCombination",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "AutomaticFailoverEnabled": True, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "NumNodeGroups": 3, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "CacheSubnetGroupName": "nope", **RG},
        "CacheSubnetGroupNotFoundFault",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "Port": 70000, **RG},
        "InvalidParameterValue",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "f", "TransitEncryptionEnabled": True, "AuthToken": "too-short", **RG},
        "InvalidParameterValue",
        400,
    ),
    # Tags
    (
        "create_replication_group",
        {"ReplicationGroupId": "g", "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)], **RG},
        "TagQuotaPerResourceExceeded",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "g", "Tags": [{"Key": "aws:owner", "Value": "v"}], **RG},
        "InvalidParameterValue",
        400,
    ),
    ("list_tags_for_resource", {"ResourceName": "not-an-arn"}, "InvalidARN", 400),
    ("list_tags_for_resource", {"ResourceName": f"{ARN}:cluster:missing"}, "CacheClusterNotFound", 404),
    (
        "list_tags_for_resource",
        {"ResourceName": f"{ARN}:replicationgroup:missing"},
        "ReplicationGroupNotFoundFault",
        404,
    ),
    (
        "add_tags_to_resource",
        {"ResourceName": f"{ARN}:snapshot:missing", "Tags": [{"Key": "a", "Value": "b"}]},
        "SnapshotNotFoundFault",
        404,
    ),
    (
        "add_tags_to_resource",
        {
            "ResourceName": f"{ARN}:cluster:existing-001",
            "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(50)],
        },
        "TagQuotaPerResourceExceeded",
        400,
    ),
    # Missing resources and duplicates
    ("describe_replication_groups", {"ReplicationGroupId": "missing"}, "ReplicationGroupNotFoundFault", 404),
    ("describe_cache_clusters", {"CacheClusterId": "missing"}, "CacheClusterNotFound", 404),
    ("delete_replication_group", {"ReplicationGroupId": "missing"}, "ReplicationGroupNotFoundFault", 404),
    ("delete_cache_cluster", {"CacheClusterId": "missing"}, "CacheClusterNotFound", 404),
    (
        "create_replication_group",
        {"ReplicationGroupId": "existing", **RG},
        "ReplicationGroupAlreadyExists",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "EXISTING", **RG},
        "ReplicationGroupAlreadyExists",
        400,
    ),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "existing-001"}, "CacheClusterAlreadyExists", 400),
    (
        "create_replication_group",
        {"ReplicationGroupId": "existing-0", "PrimaryClusterId": "missing", **RG},
        "CacheClusterNotFound",
        404,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "x", "PrimaryClusterId": "existing-002", **RG},
        "InvalidCacheClusterState",
        400,
    ),
    (
        "create_replication_group",
        {"ReplicationGroupId": "x", "PrimaryClusterId": "mc", **RG},
        "InvalidCacheClusterState",
        400,
    ),
    # Wrong state
    ("delete_cache_cluster", {"CacheClusterId": "existing-001"}, "InvalidCacheClusterState", 400),
    (
        "delete_cache_cluster",
        {"CacheClusterId": "mc", "FinalSnapshotIdentifier": "s"},
        "SnapshotFeatureNotSupportedFault",
        400,
    ),
    # Failover, replicas and events
    ("test_failover", {"ReplicationGroupId": "existing", "NodeGroupId": "0001"}, "InvalidReplicationGroupState", 400),
    ("test_failover", {"ReplicationGroupId": "existing", "NodeGroupId": "0002"}, "NodeGroupNotFoundFault", 404),
    ("test_failover", {"ReplicationGroupId": "missing", "NodeGroupId": "0001"}, "ReplicationGroupNotFoundFault", 404),
    ("increase_replica_count", {"ReplicationGroupId": "existing", "NewReplicaCount": 6, "ApplyImmediately": True},
     "InvalidParameterValue", 400),
    ("increase_replica_count", {"ReplicationGroupId": "existing", "NewReplicaCount": 1, "ApplyImmediately": True},
     "NoOperationFault", 400),
    ("increase_replica_count", {"ReplicationGroupId": "existing", "NewReplicaCount": 2, "ApplyImmediately": False},
     "InvalidParameterValue", 400),
    ("increase_replica_count", {"ReplicationGroupId": "existing", "ApplyImmediately": True},
     "InvalidParameterCombination", 400),
    ("decrease_replica_count", {"ReplicationGroupId": "existing", "ReplicasToRemove": ["existing-001"],
     "ApplyImmediately": True}, "InvalidParameterValue", 400),
    ("decrease_replica_count", {"ReplicationGroupId": "existing", "ReplicasToRemove": ["mc"],
     "ApplyImmediately": True}, "InvalidParameterValue", 400),
    ("decrease_replica_count", {"ReplicationGroupId": "existing", "NewReplicaCount": 2, "ApplyImmediately": True},
     "InvalidParameterValue", 400),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "MultiAZEnabled": True},
     "InvalidParameterCombination", 400),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "PrimaryClusterId": "mc"},
     "InvalidParameterValue", 400),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "CacheNodeType": "cache.r7g.large"},
     "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "extra", "ReplicationGroupId": "missing"},
     "ReplicationGroupNotFoundFault", 404),
    ("create_cache_cluster", {"CacheClusterId": "extra", "ReplicationGroupId": "existing", "Engine": "memcached"},
     "InvalidParameterCombination", 400),
    ("describe_events", {"SourceIdentifier": "existing"}, "InvalidParameterCombination", 400),
    ("describe_events", {"SourceType": "galaxy"}, "InvalidParameterValue", 400),
    ("describe_events", {"Duration": 30000}, "InvalidParameterValue", 400),
    # Paging
    ("describe_replication_groups", {"MaxRecords": 19}, "InvalidParameterValue", 400),
    ("describe_cache_clusters", {"MaxRecords": 101}, "InvalidParameterValue", 400),
    ("describe_cache_clusters", {"Marker": "garbage"}, "InvalidParameterValue", 400),
    # Parameter groups ("pg" is a customer redis7 group, "pg-mc" a memcached1.6 one used by "mc")
    ("create_cache_parameter_group", {"CacheParameterGroupName": "pg", "CacheParameterGroupFamily": "redis7",
     "Description": "d"}, "CacheParameterGroupAlreadyExists", 400),
    ("create_cache_parameter_group", {"CacheParameterGroupName": "new", "CacheParameterGroupFamily": "redis2.6",
     "Description": "d"}, "InvalidParameterValue", 400),
    ("create_cache_parameter_group", {"CacheParameterGroupName": "1pg", "CacheParameterGroupFamily": "redis7",
     "Description": "d"}, "InvalidParameterValue", 400),
    ("describe_cache_parameter_groups", {"CacheParameterGroupName": "missing"}, "CacheParameterGroupNotFound", 404),
    ("describe_cache_parameter_groups", {"MaxRecords": 19}, "InvalidParameterValue", 400),
    ("describe_cache_parameters", {"CacheParameterGroupName": "missing"}, "CacheParameterGroupNotFound", 404),
    ("describe_cache_parameters", {"CacheParameterGroupName": "pg", "Source": "mine"}, "InvalidParameterValue", 400),
    ("describe_engine_default_parameters", {"CacheParameterGroupFamily": "redis9"}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "no-such-parameter", "ParameterValue": "1"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "lua-time-limit", "ParameterValue": "5000"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "timeout", "ParameterValue": "5"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "maxmemory-policy", "ParameterValue": "sometimes"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "timeout", "ParameterValue": "30"},
        {"ParameterName": "appendfsync", "ParameterValue": "sometimes"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "timeout", "ParameterValue": str(20 + i)} for i in range(21)]},
     "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "max_item_size", "ParameterValue": "2097152"}]}, "InvalidParameterValue", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "default.redis7", "ParameterNameValues": [
        {"ParameterName": "timeout", "ParameterValue": "30"}]}, "InvalidCacheParameterGroupState", 400),
    ("modify_cache_parameter_group", {"CacheParameterGroupName": "missing", "ParameterNameValues": [
        {"ParameterName": "timeout", "ParameterValue": "30"}]}, "CacheParameterGroupNotFound", 404),
    ("reset_cache_parameter_group", {"CacheParameterGroupName": "pg", "ResetAllParameters": True,
     "ParameterNameValues": [{"ParameterName": "timeout"}]}, "InvalidParameterCombination", 400),
    ("reset_cache_parameter_group", {"CacheParameterGroupName": "pg"}, "InvalidParameterCombination", 400),
    ("reset_cache_parameter_group", {"CacheParameterGroupName": "pg", "ParameterNameValues": [
        {"ParameterName": "no-such-parameter"}]}, "InvalidParameterValue", 400),
    ("reset_cache_parameter_group", {"CacheParameterGroupName": "default.memcached1.6", "ResetAllParameters": True},
     "InvalidCacheParameterGroupState", 400),
    ("delete_cache_parameter_group", {"CacheParameterGroupName": "default.redis7"},
     "InvalidCacheParameterGroupState", 400),
    ("delete_cache_parameter_group", {"CacheParameterGroupName": "pg-mc"}, "InvalidCacheParameterGroupState", 400),
    ("delete_cache_parameter_group", {"CacheParameterGroupName": "missing"}, "CacheParameterGroupNotFound", 404),
    ("create_replication_group", {"ReplicationGroupId": "p", "CacheParameterGroupName": "missing", **RG},
     "CacheParameterGroupNotFound", 404),
    ("create_replication_group", {"ReplicationGroupId": "p", "CacheParameterGroupName": "pg-mc", **RG},
     "InvalidParameterCombination", 400),
    ("create_replication_group", {"ReplicationGroupId": "p", "CacheParameterGroupName": "default.redis7.cluster.on",
     **RG}, "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "p", "Engine": "redis",
     "CacheParameterGroupName": "default.redis7.cluster.on"}, "InvalidParameterCombination", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "p", "Engine": "memcached", "CacheParameterGroupName": "pg"},
     "InvalidParameterCombination", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "p", "Engine": "redis", "CacheParameterGroupName": "missing"},
     "CacheParameterGroupNotFound", 404),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "extra", "ReplicationGroupId": "existing",
     "CacheParameterGroupName": "pg"}, "InvalidParameterCombination", 400),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "CacheParameterGroupName": "missing"},
     "CacheParameterGroupNotFound", 404),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "CacheParameterGroupName": "pg-mc"},
     "InvalidParameterCombination", 400),
    ("modify_cache_cluster", {"CacheClusterId": "missing", "CacheParameterGroupName": "pg"},
     "CacheClusterNotFound", 404),
    ("modify_cache_cluster", {"CacheClusterId": "existing-001", "CacheParameterGroupName": "pg"},
     "InvalidParameterCombination", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "CacheParameterGroupName": "pg"},
     "InvalidParameterCombination", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "CacheNodeType": "cache.r7g.large"},
     "InvalidParameterValue", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "NumCacheNodes": 41, "ApplyImmediately": True},
     "InvalidParameterValue", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "NumCacheNodes": 2, "CacheNodeIdsToRemove": ["0001"]},
     "InvalidParameterCombination", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "NumCacheNodes": 2, "NewAvailabilityZones": ["mars-1a"]},
     "InvalidParameterValue", 400),
    ("modify_cache_cluster", {"CacheClusterId": "existing-001", "NumCacheNodes": 2}, "InvalidParameterValue", 400),
    # An AuthToken without TLS: the same rule for memcached as for redis (model/security.py)
    ("create_cache_cluster", {"CacheClusterId": "m", "Engine": "memcached", "AuthToken": "a" * 20},
     "InvalidParameterCombination", 400),
    ("reboot_cache_cluster", {"CacheClusterId": "missing", "CacheNodeIdsToReboot": ["0001"]},
     "CacheClusterNotFound", 404),
    ("reboot_cache_cluster", {"CacheClusterId": "mc", "CacheNodeIdsToReboot": ["0002"]},
     "InvalidParameterValue", 400),
    ("add_tags_to_resource", {"ResourceName": f"{ARN}:parametergroup:default.redis7",
     "Tags": [{"Key": "a", "Value": "b"}]}, "InvalidParameterValue", 400),
    ("list_tags_for_resource", {"ResourceName": f"{ARN}:parametergroup:missing"},
     "CacheParameterGroupNotFound", 404),
    # Snapshots ("snap" is an available snapshot of "existing")
    ("create_snapshot", {"ReplicationGroupId": "missing", "SnapshotName": "s"}, "ReplicationGroupNotFoundFault", 404),
    ("create_snapshot", {"CacheClusterId": "missing", "SnapshotName": "s"}, "CacheClusterNotFound", 404),
    ("create_snapshot", {"CacheClusterId": "mc", "SnapshotName": "s"}, "SnapshotFeatureNotSupportedFault", 400),
    ("create_snapshot", {"ReplicationGroupId": "existing", "CacheClusterId": "existing-001", "SnapshotName": "s"},
     "InvalidParameterCombination", 400),
    ("create_snapshot", {"SnapshotName": "s"}, "InvalidParameterValue", 400),
    ("create_snapshot", {"ReplicationGroupId": "existing", "SnapshotName": "1s"}, "InvalidParameterValue", 400),
    ("create_snapshot", {"ReplicationGroupId": "existing", "SnapshotName": "snap"}, "SnapshotAlreadyExistsFault", 400),
    # A transit mode for a group without TLS: ElastiCache's path starts at TransitEncryptionEnabled
    ("modify_replication_group", {"ReplicationGroupId": "existing", "TransitEncryptionMode": "required"},
     "InvalidParameterCombination", 400),
    # Members this version does not implement, refused by name before anything runs (docs/api-members.md)
    ("modify_replication_group", {"ReplicationGroupId": "existing", "CacheSecurityGroupNames": ["old"]},
     "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "o", "PreferredOutpostArn": "arn:aws:outposts:x"},
     "InvalidParameterValue", 400),
    ("create_replication_group", {**RG, "ReplicationGroupId": "sg", "SecurityGroupIds": ["not-a-group"]},
     "InvalidParameterValue", 400),
    # Hostile values: a character XML cannot carry, a number past int()'s digit limit
    ("create_replication_group", {**RG, "ReplicationGroupId": "ctl", "ReplicationGroupDescription": "a\x01b"},
     "InvalidParameterValue", 400),
    ("describe_cache_clusters", {"MaxRecords": 10**30}, "InvalidParameterValue", 400),
    # A KMS key this server does not manage.
    ("create_snapshot", {"ReplicationGroupId": "existing", "SnapshotName": "s", "KmsKeyId": "k"},
     "InvalidKMSKeyFault", 400),
    ("describe_snapshots", {"SnapshotName": "missing"}, "SnapshotNotFoundFault", 404),
    ("describe_snapshots", {"CacheClusterId": "missing"}, "CacheClusterNotFound", 404),
    ("describe_snapshots", {"SnapshotSource": "robot"}, "InvalidParameterValue", 400),
    ("describe_snapshots", {"MaxRecords": 51}, "InvalidParameterValue", 400),
    ("delete_snapshot", {"SnapshotName": "missing"}, "SnapshotNotFoundFault", 404),
    ("copy_snapshot", {"SourceSnapshotName": "missing", "TargetSnapshotName": "t"}, "SnapshotNotFoundFault", 404),
    ("copy_snapshot", {"SourceSnapshotName": "snap", "TargetSnapshotName": "snap"}, "SnapshotAlreadyExistsFault", 400),
    ("copy_snapshot", {"SourceSnapshotName": "snap", "TargetSnapshotName": "t", "TargetBucket": "no-such-bucket"},
     "InvalidParameterValue", 400),
    ("copy_snapshot", {"SourceSnapshotName": "snap", "TargetSnapshotName": "t", "TargetBucket": "Bad_Bucket"},
     "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotName": "missing", **RG},
     "SnapshotNotFoundFault", 404),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotName": "snap",
     "SnapshotArns": ["arn:aws:s3:::b/k.rdb"], **RG}, "InvalidParameterCombination", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotArns": ["s3://b/k.rdb"], **RG},
     "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotArns": ["arn:aws:s3:::bb/a.rdb",
     "arn:aws:s3:::bb/b.rdb"], **RG}, "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotName": "snap", "PrimaryClusterId": "mc", **RG},
     "InvalidParameterCombination", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotRetentionLimit": 36, **RG},
     "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotWindow": "25:00-26:00", **RG},
     "InvalidParameterValue", 400),
    ("create_replication_group", {"ReplicationGroupId": "r", "SnapshotWindow": "05:00-05:30", **RG},
     "InvalidParameterValue", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "r", "Engine": "memcached", "SnapshotName": "snap"},
     "InvalidParameterCombination", 400),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "r", "Engine": "redis", "SnapshotName": "missing"},
     "SnapshotNotFoundFault", 404),
    ("create_cache_cluster", {**NODE, "CacheClusterId": "r", "ReplicationGroupId": "existing", "SnapshotName": "snap"},
     "InvalidParameterCombination", 400),
    ("delete_replication_group", {"ReplicationGroupId": "existing", "FinalSnapshotIdentifier": "snap"},
     "SnapshotAlreadyExistsFault", 400),
    ("delete_replication_group", {"ReplicationGroupId": "existing", "FinalSnapshotIdentifier": "-bad"},
     "InvalidParameterValue", 400),
    ("delete_cache_cluster", {"CacheClusterId": "existing-002", "FinalSnapshotIdentifier": "f"},
     "InvalidParameterCombination", 400),
    ("modify_replication_group", {"ReplicationGroupId": "existing", "SnapshotRetentionLimit": 99},
     "InvalidParameterValue", 400),
    ("modify_cache_cluster", {"CacheClusterId": "mc", "SnapshotRetentionLimit": 1}, "InvalidParameterCombination", 400),
    ("add_tags_to_resource", {"ResourceName": f"{ARN}:snapshot:snap", "Tags": [{"Key": "aws:x", "Value": "y"}]},
     "InvalidParameterValue", 400),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server with a group ``existing``, a memcached cluster ``mc`` and parameter groups ``pg`` (redis7)
    and ``pg-mc`` (memcached1.6, used by ``mc``) that the cases run against."""
    server = ServerProcess(tmp_path_factory.mktemp("errors") / "cf")
    try:
        server.start()
        client = server.client()
        client.create_replication_group(
            ReplicationGroupId="existing", NumCacheClusters=2, Tags=[{"Key": "owner", "Value": "ops"}], **RG
        )
        client.create_cache_parameter_group(
            CacheParameterGroupName="pg", CacheParameterGroupFamily="redis7", Description="d"
        )
        client.create_cache_parameter_group(
            CacheParameterGroupName="pg-mc", CacheParameterGroupFamily="memcached1.6", Description="d"
        )
        client.create_cache_cluster(CacheClusterId="mc", Engine="memcached", CacheParameterGroupName="pg-mc", **NODE)
        client.get_waiter("replication_group_available").wait(
            ReplicationGroupId="existing", WaiterConfig=FAST_WAIT
        )
        client.get_waiter("cache_cluster_available").wait(CacheClusterId="mc", WaiterConfig=FAST_WAIT)
        client.create_snapshot(ReplicationGroupId="existing", SnapshotName="snap")
        _wait_until_settled(client)
        yield server, client
    finally:
        server.cleanup()


def _wait_until_settled(client: Any) -> None:
    """The snapshot taken, and the group back from snapshotting."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = client.describe_snapshots(SnapshotName="snap")["Snapshots"][0]
        group = client.describe_replication_groups(ReplicationGroupId="existing")["ReplicationGroups"][0]
        if (snapshot["SnapshotStatus"], group["Status"]) == ("available", "available"):
            return
        time.sleep(0.05)
    raise AssertionError("snapshot snap never became available")


def _snapshot(client: Any) -> Any:
    groups = client.describe_replication_groups()["ReplicationGroups"]
    clusters = client.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    tags = client.list_tags_for_resource(ResourceName=f"{ARN}:cluster:existing-001")["TagList"]
    parameter_groups = client.describe_cache_parameter_groups()["CacheParameterGroups"]
    parameters = client.describe_cache_parameters(CacheParameterGroupName="pg")["Parameters"]
    snapshots = client.describe_snapshots()["Snapshots"]
    return groups, clusters, tags, parameter_groups, parameters, snapshots


@pytest.mark.parametrize(
    ("operation", "params", "code", "status"), CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_gets_the_aws_error_and_changes_nothing(
    prepared: Any, operation: str, params: dict[str, Any], code: str, status: int
) -> None:
    server, client = prepared
    before = _snapshot(client)
    with pytest.raises(ClientError) as caught:
        getattr(client, operation)(**params)
    error = caught.value.response["Error"]
    assert (error["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert error["Message"]
    assert "Traceback" not in error["Message"]
    assert _snapshot(client) == before
    assert len(server.member_pids()) == 3


def test_modeled_exception_classes_match(prepared: Any) -> None:
    _, client = prepared
    with pytest.raises(client.exceptions.ReplicationGroupNotFoundFault):
        client.describe_replication_groups(ReplicationGroupId="missing")
    with pytest.raises(client.exceptions.ReplicationGroupAlreadyExistsFault):
        client.create_replication_group(ReplicationGroupId="existing", **RG)
    with pytest.raises(client.exceptions.CacheClusterNotFoundFault):
        client.delete_cache_cluster(CacheClusterId="missing")


def test_unknown_and_unimplemented_actions(prepared: Any) -> None:
    server, _ = prepared
    for action, code in (("NoSuchThing", "InvalidAction"), ("DescribeServerlessCaches", "InvalidAction")):
        response = signed_post(server, {"Action": action, "Version": "2015-02-02"})
        assert response.status_code == 400, response.text
        assert f"<Code>{code}</Code>" in response.text
    response = signed_post(server, {"Version": "2015-02-02"})
    assert response.status_code == 400
    assert "<Code>MissingParameter</Code>" in response.text
    for body in (b"\xff\xfe\x00garbage", b"Action=CreateReplicationGroup&ReplicationGroupId=%ZZ", b"&&&==="):
        response = signed_post(server, body)
        assert 400 <= response.status_code < 500, response.text
        assert "<ErrorResponse" in response.text


def test_other_methods_get_the_xml_error_over_real_http(prepared: Any) -> None:
    server, _ = prepared
    # boto3 cannot even send this: Python will not turn 5000 digits into an int.
    huge = {"Action": "DescribeCacheClusters", "Version": "2015-02-02", "MaxRecords": "9" * 5000}
    response = signed_post(server, huge)
    assert response.status_code == 400, response.text
    assert "<Code>InvalidParameterValue</Code>" in response.text
    for method in ("PUT", "DELETE", "PATCH"):
        response = httpx.request(method, server.endpoint_url + "/", timeout=10)
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST, GET"
        assert "<Code>MethodNotAllowed</Code>" in response.text


def test_stored_settings_are_shown_by_a_real_server(prepared: Any) -> None:
    _, client = prepared
    before = client.describe_cache_clusters(CacheClusterId="existing-001")["CacheClusters"][0]
    assert "SecurityGroups" not in before
    # Each case above compares the state before and after itself, so this lasting change harms none.
    client.modify_replication_group(ReplicationGroupId="existing", SecurityGroupIds=["sg-0123abcd"])
    for member in ("existing-001", "existing-002"):
        shown = client.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
        assert shown["SecurityGroups"] == [{"SecurityGroupId": "sg-0123abcd", "Status": "active"}]
    group = client.describe_replication_groups(ReplicationGroupId="existing")["ReplicationGroups"][0]
    assert group["Status"] == "available"  # a stored setting needs no reconcile
