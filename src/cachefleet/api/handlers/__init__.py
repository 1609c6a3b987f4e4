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
    replication_groups,
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
    "DescribeCacheEngineVersions": engine_versions.describe_cache_engine_versions,
    "AddTagsToResource": tags.add_tags_to_resource,
    "ListTagsForResource": tags.list_tags_for_resource,
    "RemoveTagsFromResource": tags.remove_tags_from_resource,
}
