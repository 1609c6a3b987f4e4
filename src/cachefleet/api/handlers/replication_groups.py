"""CreateReplicationGroup, DescribeReplicationGroups, DeleteReplicationGroup (cluster mode disabled)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cachefleet.api import inputs, paging, placing, validate, views
from cachefleet.api import security as access
from cachefleet.api.context import Context
from cachefleet.api.handlers import snapshots
from cachefleet.model import lifecycle
from cachefleet.model import security as sec
from cachefleet.model.encryption import requested
from cachefleet.model.errors import (
    CacheClusterAlreadyExists,
    CacheClusterNotFound,
    InvalidCacheClusterState,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidReplicationGroupState,
    ReplicationGroupAlreadyExists,
)
from cachefleet.model.ids import (
    CACHE_CLUSTER_ID_MAX,
    REPLICATION_GROUP_ID_MAX,
    check_identifier,
    member_cluster_id,
)
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import MEMBER_NODE_ID
from cachefleet.model.parameters import default_group_name, family_for
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import GroupState, GroupStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.records import (
    CLUSTER,
    GROUP,
    Cluster,
    Group,
    find_cluster,
    get_group,
)

MAX_NODES = 6

CREATE_INPUTS = inputs.Inputs(
    inputs.implemented(
        "ReplicationGroupId",
        "ReplicationGroupDescription",
        "PrimaryClusterId",
        "AutomaticFailoverEnabled",
        "MultiAZEnabled",
        "NumCacheClusters",
        "PreferredCacheClusterAZs",
        "ReplicasPerNodeGroup",
        "Engine",
        "EngineVersion",
        "CacheParameterGroupName",
        "Tags",
        "SnapshotArns",
        "SnapshotName",
        "SnapshotRetentionLimit",
        "SnapshotWindow",
    ),
    inputs.implemented(
        "CacheNodeType", note="required unless PrimaryClusterId or SnapshotName names a node type to take"
    ),
    inputs.ON_ONE_HOST,
    inputs.STORED_SETTINGS,
    inputs.not_yet("NumNodeGroups", note="cluster mode enabled", accepted=1),
    inputs.not_yet("ClusterMode", note="cluster mode enabled", accepted="disabled"),
    inputs.not_yet("NodeGroupConfiguration", note="cluster mode enabled"),
    inputs.implemented(
        "AtRestEncryptionEnabled", note="snapshots are always sealed; on, a node keeps no RDB a snapshot made"
    ),
    inputs.implemented("KmsKeyId", note="a key `cachefleet kms` manages; other KMS keys are InvalidKMSKeyFault"),
    inputs.implemented(
        "AuthToken",
        note="16-128 characters, TLS `required`; stored as a SHA-256 hash, applied as the default user's password",
    ),
    inputs.implemented("UserGroupIds", note="one user group (RBAC), TLS `required`, not with AuthToken"),
    inputs.implemented("TransitEncryptionEnabled", "TransitEncryptionMode", note="TLS; `required` unless told"),
    inputs.NO_CLASSIC_SECURITY_GROUPS_OR_LOG_DELIVERY,
    inputs.refused("GlobalReplicationGroupId", why=inputs.WHY_GLOBAL),
    inputs.refused("DataTieringEnabled", why=inputs.WHY_DATA_TIERING, accepted=False),
    inputs.refused("NetworkType", "IpDiscovery", why=inputs.WHY_IPV4, accepted="ipv4"),
    inputs.refused("ServerlessCacheSnapshotName", why=inputs.WHY_SERVERLESS),
    inputs.refused("Durability", why=inputs.WHY_DURABILITY, accepted="default"),
)


def _members(ctx: Context, group: Group) -> list[Cluster]:
    return CLUSTERS.many(ctx.store, group.spec.members)


def render(ctx: Context, group: Group) -> dict[str, Any]:
    return views.replication_group(ctx, group, _members(ctx, group))


def render_all(ctx: Context, groups: Sequence[Group]) -> list[dict[str, Any]]:
    """Groups with their members, every member of the page read in one query."""
    clusters = CLUSTERS.many(ctx.store, [m for g in groups for m in g.spec.members])
    by_id = {c.spec.id: c for c in clusters}
    return [views.replication_group(ctx, g, [by_id[m] for m in g.spec.members if m in by_id]) for g in groups]


async def create_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group_id = check_identifier("ReplicationGroupId", params["ReplicationGroupId"], REPLICATION_GROUP_ID_MAX)
    description = params["ReplicationGroupDescription"]
    tags = validate.tags(params)
    port = validate.port(params)
    stored = validate.stored_settings(params)

    retention, window = snapshots.automatic_snapshots(params)
    seed = snapshots.restore_source(ctx, params)

    primary: Cluster | None = None
    if "PrimaryClusterId" in params:
        if seed is not None:
            raise InvalidParameterCombination("PrimaryClusterId cannot be combined with SnapshotName or SnapshotArns.")
        primary = _existing_primary(ctx, params["PrimaryClusterId"])
    count = _node_count(params, primary)
    _check_failover_flags(params, count)

    subnet_group = placing.subnet_group(ctx, params, primary.spec.subnet_group if primary else None)
    if primary is not None:
        _same_as_primary(params, primary, subnet_group)
        engine, version, node_type = primary.spec.engine, primary.spec.engine_version, primary.spec.node_type
    else:
        binary = snapshots.restore_engine(ctx, params, seed)
        if binary.engine not in validate.REDIS_ENGINES:
            raise InvalidParameterValue("Replication groups support only the redis and valkey engines.")
        engine, version, node_type = binary.engine, binary.version, snapshots.restore_node_type(params, seed)

    encryption = requested(engine, params.get("AtRestEncryptionEnabled"), snapshots.kms_key_id(ctx, params))
    azs = _placement(ctx, params, count, primary, subnet_group)
    parameter_group = _parameter_group(ctx, params, engine, version, primary)
    now = ctx.clock()
    security = sec.at_creation(
        access.request(params),
        engine=engine,
        user_groups=access.user_group_engines(ctx.store),
        deleting=access.user_groups_deleting(ctx.store),
        now=now,
    )
    if primary is not None:
        access.same_as_primary(security, primary.spec.security, primary.spec.id)
    if ctx.store.get(GROUP, group_id):
        raise ReplicationGroupAlreadyExists(f"Replication group {group_id} already exists.")
    member_ids = _member_ids(group_id, count, primary)
    for member in member_ids:
        check_identifier("CacheClusterId", member, CACHE_CLUSTER_ID_MAX)
        is_new = primary is None or member != primary.spec.id
        if is_new and ctx.store.get(CLUSTER, member):
            raise CacheClusterAlreadyExists(f"Cache cluster {member} already exists.")
    new_members = [(m, az) for m, az in zip(member_ids, azs, strict=True) if primary is None or m != primary.spec.id]
    primary_node = primary.status.node(MEMBER_NODE_ID) if primary is not None else None
    placing.check_capacity(
        ctx,
        [m for m, _ in new_members],
        [az for _, az in new_members],
        node_type=node_type,
        subnet_group_name=subnet_group,
        together=[primary_node.placement.host] if primary_node and primary_node.placement else [],
    )

    spec = ReplicationGroupSpec(
        id=group_id,
        description=description,
        engine=engine,
        engine_version=version,
        node_type=node_type,
        members=member_ids,
        primary_cluster_id=member_ids[0],
        created_at=now,
        port=port,
        automatic_failover=bool(params.get("AutomaticFailoverEnabled", False)),
        multi_az=bool(params.get("MultiAZEnabled", False)),
        tags=tags,
        parameter_group=parameter_group,
        snapshot_retention_limit=retention,
        snapshot_window=window,
        stored=stored,
        subnet_group=subnet_group,
        encryption=encryption,
        security=security,
    )
    # A new group's nodes start with its security: nothing is pending about it.
    initial = GroupStatus(GroupState.CREATING, transit_mode=security.mode_text, user_group_ids=security.user_group_ids)
    with ctx.store.transaction():
        if not statuses.create(ctx.store, GROUPS, group_id, spec, initial):
            raise ReplicationGroupAlreadyExists(f"Replication group {group_id} already exists.")
        snapshots.mark_restoring(ctx, seed)
        for member, az in zip(member_ids, azs, strict=True):
            if primary is not None and member == primary.spec.id:
                adopted = replace(
                    primary.spec, replication_group_id=group_id, parameter_group=parameter_group, stored=stored
                )
                ctx.store.put_spec(CLUSTER, member, adopted.to_json())
                continue
            cluster = CacheClusterSpec(
                id=member,
                engine=engine,
                engine_version=version,
                node_type=node_type,
                node_azs=(az,),
                created_at=now,
                port=port,
                replication_group_id=group_id,
                tags=tags,
                parameter_group=parameter_group,
                # The first primary is seeded; its replicas sync from it.
                seed_snapshot=seed.snapshot.spec.name if seed and seed.snapshot and member == member_ids[0] else None,
                seed_object=seed.object_key if seed and member == member_ids[0] else None,
                stored=stored,
                subnet_group=subnet_group,
            )
            if not statuses.create(ctx.store, CLUSTERS, member, cluster):
                raise CacheClusterAlreadyExists(f"Cache cluster {member} already exists.")
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, group_id))}


def _parameter_group(ctx: Context, params: dict[str, Any], engine: str, version: str, primary: Cluster | None) -> str:
    """The group asked for (checked), else the adopted primary's, else the family's default."""
    if "CacheParameterGroupName" in params:
        return validate.cache_parameter_group(
            ctx.store, params["CacheParameterGroupName"], engine, version, replication_group=True
        )
    if primary is not None and primary.spec.parameter_group:
        return primary.spec.parameter_group
    return default_group_name(family_for(engine, version))


def _existing_primary(ctx: Context, cluster_id: str) -> Cluster:
    cluster = find_cluster(ctx.store, cluster_id)
    if cluster is None:
        raise CacheClusterNotFound(f"Cache cluster {cluster_id} not found.")
    if cluster.spec.engine not in validate.REDIS_ENGINES or cluster.spec.replication_group_id:
        raise InvalidCacheClusterState(
            f"Cache cluster {cluster_id} must be a standalone Redis cluster to become a primary."
        )
    lifecycle.require(CLUSTER, "CreateReplicationGroup.PrimaryClusterId", cluster_id, cluster.status.status)
    return cluster


def _same_as_primary(params: dict[str, Any], primary: Cluster, subnet_group: str | None) -> None:
    """A group built on an existing primary takes its engine, version, node type, AZ and subnet group;
    asking for others is a contradiction, not something to ignore."""
    spec = primary.spec
    version = params.get("EngineVersion")
    wanted = {
        "CacheSubnetGroupName": subnet_group == spec.subnet_group,
        "Engine": params.get("Engine", spec.engine).lower() == spec.engine,
        "EngineVersion": version is None or validate.version_matches(spec.engine_version, version),
        "CacheNodeType": params.get("CacheNodeType", spec.node_type) == spec.node_type,
        "PreferredCacheClusterAZs": params.get("PreferredCacheClusterAZs", spec.node_azs)[0] == spec.node_azs[0],
    }
    for name, agrees in wanted.items():
        if not agrees:
            raise InvalidParameterCombination(
                f"The parameter {name} must agree with the primary cluster {spec.id} (PrimaryClusterId)."
            )


def _node_count(params: dict[str, Any], primary: Cluster | None) -> int:
    num = params.get("NumCacheClusters")
    replicas = params.get("ReplicasPerNodeGroup")
    if num is not None and replicas is not None and num != replicas + 1:
        raise InvalidParameterCombination("NumCacheClusters must equal ReplicasPerNodeGroup + 1 when both are given.")
    if replicas is not None and not 0 <= replicas <= MAX_NODES - 1:
        raise InvalidParameterValue(f"ReplicasPerNodeGroup must be between 0 and {MAX_NODES - 1}.")
    count = num if num is not None else (replicas + 1 if replicas is not None else 1)
    if not 1 <= count <= MAX_NODES:
        raise InvalidParameterValue(f"NumCacheClusters must be between 1 and {MAX_NODES}.")
    azs = params.get("PreferredCacheClusterAZs")
    if azs is not None and len(azs) != count:
        raise InvalidParameterValue(
            f"The number of PreferredCacheClusterAZs ({len(azs)}) must equal the number of cache clusters ({count})."
        )
    return count


def _check_failover_flags(params: dict[str, Any], count: int) -> None:
    failover = params.get("AutomaticFailoverEnabled", False)
    if params.get("MultiAZEnabled", False) and not failover:
        raise InvalidParameterCombination("Multi-AZ requires automatic failover to be enabled.")
    if failover and count < 2:
        raise InvalidParameterValue(
            "Automatic failover needs at least one replica: NumCacheClusters must be at least 2."
        )


def _placement(
    ctx: Context, params: dict[str, Any], count: int, primary: Cluster | None, subnet_group: str | None
) -> tuple[str, ...]:
    if "PreferredCacheClusterAZs" in params:
        azs = validate.availability_zones(params["PreferredCacheClusterAZs"], ctx.settings.azs)
        placing.check_zones(ctx, azs[1:] if primary is not None else azs, subnet_group)
        return azs
    first = views.node_zone(primary.status.node(MEMBER_NODE_ID), primary.spec.node_azs[0]) if primary else None
    return placing.spread(ctx, count, subnet_group, first)


def _member_ids(group_id: str, count: int, primary: Cluster | None) -> tuple[str, ...]:
    if primary is None:
        return tuple(member_cluster_id(group_id, i) for i in range(1, count + 1))
    return (primary.spec.id, *(member_cluster_id(group_id, i) for i in range(2, count + 1)))


DESCRIBE_INPUTS = inputs.Inputs(inputs.implemented("ReplicationGroupId", "MaxRecords", "Marker"))


async def describe_replication_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    marker = None
    if "ReplicationGroupId" in params:
        selected = paging.one(get_group(ctx.store, params["ReplicationGroupId"]), params)
    else:
        selected, marker = paging.resources(GROUPS, ctx.store, params)
    result: dict[str, Any] = {"ReplicationGroups": render_all(ctx, selected)}
    if marker:
        result["Marker"] = marker
    return result


DELETE_INPUTS = inputs.Inputs(
    inputs.implemented("ReplicationGroupId", "RetainPrimaryCluster", "FinalSnapshotIdentifier")
)


async def delete_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(ctx.store, params["ReplicationGroupId"])
    final = snapshots.final_snapshot_name(ctx, params)
    lifecycle.require(GROUP, "DeleteReplicationGroup", group.spec.id, group.status.status)
    if final is not None and group.status.status != GroupState.AVAILABLE:
        raise InvalidReplicationGroupState(
            f"Replication group {group.spec.id} is {group.status.status}: a final snapshot needs it available."
        )
    retain = bool(params.get("RetainPrimaryCluster", False))
    spec = replace(group.spec, deleting=True, retain_primary_cluster=retain)
    with ctx.store.transaction():
        ctx.store.put_spec(GROUP, spec.id, spec.to_json())
        statuses.change(ctx.store, GROUPS, spec.id, Event.DELETE)
        for member in _members(ctx, group):
            if retain and member.spec.id == (group.status.primary_cluster_id or spec.primary_cluster_id):
                continue
            statuses.change(ctx.store, CLUSTERS, member.spec.id, Event.DELETE)
        if final is not None:
            # Taken from the primary before any node goes (the reconciler waits for it).
            snapshots.group_snapshot(ctx, final, group, final=True)
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, spec.id))}


MODIFY_INPUTS = inputs.Inputs(
    inputs.implemented(
        "ReplicationGroupId",
        "ReplicationGroupDescription",
        "PrimaryClusterId",
        "SnapshottingClusterId",
        "AutomaticFailoverEnabled",
        "MultiAZEnabled",
        "CacheParameterGroupName",
        "SnapshotRetentionLimit",
        "SnapshotWindow",
    ),
    inputs.implemented(
        "ApplyImmediately",
        note="every change this version makes is applied at once (AWS defers only node type and engine "
        "version changes)",
    ),
    inputs.STORED_SETTINGS,
    inputs.stored("NotificationTopicStatus", note="shown in NotificationConfiguration"),
    inputs.ignored("NodeGroupId", note="deprecated; ElastiCache documents it as unused"),
    inputs.not_yet("Engine", "EngineVersion", note="engine upgrades"),
    inputs.not_yet("CacheNodeType", note="vertical scaling"),
    inputs.implemented(
        "AuthToken",
        "AuthTokenUpdateStrategy",
        note="ROTATE (default), SET, DELETE (only with UserGroupIdsToAdd); live on every node, connections kept",
    ),
    inputs.implemented(
        "UserGroupIdsToAdd", "UserGroupIdsToRemove", "RemoveUserGroups", note="one user group; live on every node"
    ),
    inputs.implemented(
        "TransitEncryptionEnabled",
        "TransitEncryptionMode",
        note="off -> `preferred` -> `required` and back, one step per call; live (ports keep their numbers)",
    ),
    inputs.not_yet("ClusterMode", note="cluster mode enabled", accepted="disabled"),
    inputs.NO_CLASSIC_SECURITY_GROUPS_OR_LOG_DELIVERY,
    inputs.refused("IpDiscovery", why=inputs.WHY_IPV4, accepted="ipv4"),
    inputs.refused("Durability", why=inputs.WHY_DURABILITY, accepted="default"),
)


async def modify_replication_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(ctx.store, params["ReplicationGroupId"])
    lifecycle.require(GROUP, "ModifyReplicationGroup", group.spec.id, group.status.status)
    spec = group.spec
    failover = params.get("AutomaticFailoverEnabled", spec.automatic_failover)
    multi_az = params.get("MultiAZEnabled", spec.multi_az if failover else False)
    if multi_az and not failover:
        raise InvalidParameterCombination("Multi-AZ requires automatic failover to be enabled.")
    replicas = len(spec.members) - 1
    if failover and replicas < 1:
        raise InvalidReplicationGroupState(
            f"Replication group {spec.id} needs at least one replica for automatic failover."
        )
    primary = spec.primary_cluster_id
    if "PrimaryClusterId" in params:
        primary = params["PrimaryClusterId"].lower()
        if primary not in spec.members:
            raise InvalidParameterValue(f"{primary} is not a member of replication group {spec.id}.")
        if failover and primary != (group.status.primary_cluster_id or spec.primary_cluster_id):
            # ElastiCache's rule: a manual promotion needs automatic failover turned off first.
            raise InvalidParameterCombination(
                "PrimaryClusterId can only be changed while automatic failover is disabled."
            )
    snapshotting = spec.snapshotting_cluster_id
    if "SnapshottingClusterId" in params:
        snapshotting = params["SnapshottingClusterId"].lower()
        if snapshotting not in spec.members:
            raise InvalidParameterValue(f"{snapshotting} is not a member of replication group {spec.id}.")
    stored = validate.stored_settings(params, spec.stored)
    security = sec.modified(
        spec.security,
        access.request(params),
        engine=spec.engine,
        user_groups=access.user_group_engines(ctx.store),
        deleting=access.user_groups_deleting(ctx.store),
        now=ctx.clock(),
    )
    retention, window = snapshots.automatic_snapshots(params, spec.snapshot_retention_limit, spec.snapshot_window)
    current_parameters = spec.parameter_group or default_group_name(family_for(spec.engine, spec.engine_version))
    parameter_group = current_parameters
    if "CacheParameterGroupName" in params:
        parameter_group = validate.cache_parameter_group(
            ctx.store, params["CacheParameterGroupName"], spec.engine, spec.engine_version, replication_group=True
        )
    changed = replace(
        spec,
        description=params.get("ReplicationGroupDescription", spec.description),
        automatic_failover=failover,
        multi_az=multi_az,
        primary_cluster_id=primary,
        snapshot_window=window,
        snapshot_retention_limit=retention,
        parameter_group=parameter_group if parameter_group != current_parameters else spec.parameter_group,
        snapshotting_cluster_id=snapshotting,
        stored=stored,
        security=security,
    )
    if changed != spec:
        needs_reconcile = (failover, primary, parameter_group, security) != (
            spec.automatic_failover,
            _current_primary(group),
            current_parameters,
            spec.security,
        )
        with ctx.store.transaction():
            ctx.store.put_spec(GROUP, spec.id, changed.to_json())
            if parameter_group != current_parameters or stored != spec.stored:
                # Every member carries its group's parameter group and stored settings (new members copy them).
                for member in _members(ctx, group):
                    moved = replace(member.spec, parameter_group=parameter_group, stored=stored)
                    ctx.store.put_spec(CLUSTER, member.spec.id, moved.to_json())
            if needs_reconcile:
                statuses.change(ctx.store, GROUPS, spec.id, Event.MODIFY)
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, spec.id))}


def _current_primary(group: Group) -> str:
    return group.status.primary_cluster_id or group.spec.primary_cluster_id
