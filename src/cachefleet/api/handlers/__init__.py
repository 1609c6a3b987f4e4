"""The registry of implemented operations: one plain dict from Action name to handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.handlers import (
    cache_clusters,
    engine_versions,
    events,
    failover,
    members,
    parameter_groups,
    replication_groups,
    snapshots,
    tags,
)

Handler = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any] | None]]

HANDLERS: dict[str, Handler] = {
    "CreateReplicationGroup": replication_groups.create_replication_group,
    "DescribeReplicationGroups": replication_groups.describe_replication_groups,
    "DeleteReplicationGroup": replication_groups.delete_replication_group,
    "ModifyReplicationGroup": replication_groups.modify_replication_group,
    "TestFailover": failover.test_failover,
    "IncreaseReplicaCount": members.increase_replica_count,
    "DecreaseReplicaCount": members.decrease_replica_count,
    "DescribeEvents": events.describe_events,
    "CreateCacheCluster": cache_clusters.create_cache_cluster,
    "DescribeCacheClusters": cache_clusters.describe_cache_clusters,
    "DeleteCacheCluster": cache_clusters.delete_cache_cluster,
    "ModifyCacheCluster": cache_clusters.modify_cache_cluster,
    "RebootCacheCluster": cache_clusters.reboot_cache_cluster,
    "CreateCacheParameterGroup": parameter_groups.create_cache_parameter_group,
    "DescribeCacheParameterGroups": parameter_groups.describe_cache_parameter_groups,
    "DescribeCacheParameters": parameter_groups.describe_cache_parameters,
    "DescribeEngineDefaultParameters": parameter_groups.describe_engine_default_parameters,
    "ModifyCacheParameterGroup": parameter_groups.modify_cache_parameter_group,
    "ResetCacheParameterGroup": parameter_groups.reset_cache_parameter_group,
    "DeleteCacheParameterGroup": parameter_groups.delete_cache_parameter_group,
    "DescribeCacheEngineVersions": engine_versions.describe_cache_engine_versions,
    "CreateSnapshot": snapshots.create_snapshot,
    "DescribeSnapshots": snapshots.describe_snapshots,
    "DeleteSnapshot": snapshots.delete_snapshot,
    "CopySnapshot": snapshots.copy_snapshot,
    "AddTagsToResource": tags.add_tags_to_resource,
    "ListTagsForResource": tags.list_tags_for_resource,
    "RemoveTagsFromResource": tags.remove_tags_from_resource,
}
