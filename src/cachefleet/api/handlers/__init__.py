"""The registry of implemented operations: Action name -> handler and the input members it implements.

Each handler module declares, next to each handler, what the handler does with every member of its
input shape (``api/inputs.py``); this table pairs them. Adding an operation is one line here, a
handler, and its declaration (checked against the service model by the tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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
    subnet_groups,
    tags,
    users,
)
from cachefleet.api.inputs import Inputs

Handler = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Operation:
    handler: Handler
    inputs: Inputs


OPERATIONS: Mapping[str, Operation] = {
    "CreateReplicationGroup": Operation(replication_groups.create_replication_group, replication_groups.CREATE_INPUTS),
    "DescribeReplicationGroups": Operation(
        replication_groups.describe_replication_groups, replication_groups.DESCRIBE_INPUTS
    ),
    "DeleteReplicationGroup": Operation(replication_groups.delete_replication_group, replication_groups.DELETE_INPUTS),
    "ModifyReplicationGroup": Operation(replication_groups.modify_replication_group, replication_groups.MODIFY_INPUTS),
    "TestFailover": Operation(failover.test_failover, failover.TEST_FAILOVER_INPUTS),
    "IncreaseReplicaCount": Operation(members.increase_replica_count, members.INCREASE_INPUTS),
    "DecreaseReplicaCount": Operation(members.decrease_replica_count, members.DECREASE_INPUTS),
    "DescribeEvents": Operation(events.describe_events, events.DESCRIBE_INPUTS),
    "CreateCacheCluster": Operation(cache_clusters.create_cache_cluster, cache_clusters.CREATE_INPUTS),
    "DescribeCacheClusters": Operation(cache_clusters.describe_cache_clusters, cache_clusters.DESCRIBE_INPUTS),
    "DeleteCacheCluster": Operation(cache_clusters.delete_cache_cluster, cache_clusters.DELETE_INPUTS),
    "ModifyCacheCluster": Operation(cache_clusters.modify_cache_cluster, cache_clusters.MODIFY_INPUTS),
    "RebootCacheCluster": Operation(cache_clusters.reboot_cache_cluster, cache_clusters.REBOOT_INPUTS),
    "CreateCacheParameterGroup": Operation(
        parameter_groups.create_cache_parameter_group, parameter_groups.CREATE_INPUTS
    ),
    "DescribeCacheParameterGroups": Operation(
        parameter_groups.describe_cache_parameter_groups, parameter_groups.DESCRIBE_GROUPS_INPUTS
    ),
    "DescribeCacheParameters": Operation(
        parameter_groups.describe_cache_parameters, parameter_groups.DESCRIBE_PARAMETERS_INPUTS
    ),
    "DescribeEngineDefaultParameters": Operation(
        parameter_groups.describe_engine_default_parameters, parameter_groups.DESCRIBE_DEFAULTS_INPUTS
    ),
    "ModifyCacheParameterGroup": Operation(
        parameter_groups.modify_cache_parameter_group, parameter_groups.MODIFY_INPUTS
    ),
    "ResetCacheParameterGroup": Operation(parameter_groups.reset_cache_parameter_group, parameter_groups.RESET_INPUTS),
    "DeleteCacheParameterGroup": Operation(
        parameter_groups.delete_cache_parameter_group, parameter_groups.DELETE_INPUTS
    ),
    "DescribeCacheEngineVersions": Operation(
        engine_versions.describe_cache_engine_versions, engine_versions.DESCRIBE_INPUTS
    ),
    "CreateSnapshot": Operation(snapshots.create_snapshot, snapshots.CREATE_INPUTS),
    "DescribeSnapshots": Operation(snapshots.describe_snapshots, snapshots.DESCRIBE_INPUTS),
    "DeleteSnapshot": Operation(snapshots.delete_snapshot, snapshots.DELETE_INPUTS),
    "CopySnapshot": Operation(snapshots.copy_snapshot, snapshots.COPY_INPUTS),
    "CreateCacheSubnetGroup": Operation(subnet_groups.create_cache_subnet_group, subnet_groups.CREATE_INPUTS),
    "DescribeCacheSubnetGroups": Operation(
        subnet_groups.describe_cache_subnet_groups, subnet_groups.DESCRIBE_INPUTS
    ),
    "ModifyCacheSubnetGroup": Operation(subnet_groups.modify_cache_subnet_group, subnet_groups.MODIFY_INPUTS),
    "DeleteCacheSubnetGroup": Operation(subnet_groups.delete_cache_subnet_group, subnet_groups.DELETE_INPUTS),
    "AddTagsToResource": Operation(tags.add_tags_to_resource, tags.ADD_INPUTS),
    "ListTagsForResource": Operation(tags.list_tags_for_resource, tags.LIST_INPUTS),
    "RemoveTagsFromResource": Operation(tags.remove_tags_from_resource, tags.REMOVE_INPUTS),
    "CreateUser": Operation(users.create_user, users.CREATE_USER_INPUTS),
    "ModifyUser": Operation(users.modify_user, users.MODIFY_USER_INPUTS),
    "DeleteUser": Operation(users.delete_user, users.DELETE_USER_INPUTS),
    "DescribeUsers": Operation(users.describe_users, users.DESCRIBE_USERS_INPUTS),
    "CreateUserGroup": Operation(users.create_user_group, users.CREATE_GROUP_INPUTS),
    "ModifyUserGroup": Operation(users.modify_user_group, users.MODIFY_GROUP_INPUTS),
    "DeleteUserGroup": Operation(users.delete_user_group, users.DELETE_GROUP_INPUTS),
    "DescribeUserGroups": Operation(users.describe_user_groups, users.DESCRIBE_GROUPS_INPUTS),
}
