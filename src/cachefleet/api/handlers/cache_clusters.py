"""CreateCacheCluster, DescribeCacheClusters, DeleteCacheCluster, ModifyCacheCluster, RebootCacheCluster:
Memcached and standalone Redis (and, for reboots and deletes, replication group members)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from cachefleet.api import inputs, paging, placing, validate, views
from cachefleet.api import security as access
from cachefleet.api.context import Context
from cachefleet.api.handlers import members, snapshots
from cachefleet.model import lifecycle, node_count
from cachefleet.model import security as sec
from cachefleet.model.errors import (
    CacheClusterAlreadyExists,
    InvalidCacheClusterState,
    InvalidParameterCombination,
    InvalidParameterValue,
    SnapshotFeatureNotSupported,
)
from cachefleet.model.ids import CACHE_CLUSTER_ID_MAX, check_identifier, node_id
from cachefleet.model.lifecycle import Event
from cachefleet.model.parameters import default_group_name, family_for
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import ClusterState
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS
from cachefleet.store.records import CLUSTER, get_cluster, get_group
from cachefleet.store.sqlite import Match

MAX_MEMCACHED_NODES = 40
REDIS_PORT = 6379  # what a group created without Port listens on, as ElastiCache shows it

CREATE_INPUTS = inputs.Inputs(
    inputs.implemented(
        "CacheClusterId",
        "ReplicationGroupId",
        "AZMode",
        "PreferredAvailabilityZone",
        "PreferredAvailabilityZones",
        "NumCacheNodes",
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
        "CacheNodeType", note="required, unless SnapshotName or ReplicationGroupId names a node type to take"
    ),
    inputs.ON_ONE_HOST,
    inputs.STORED_SETTINGS,
    inputs.implemented(
        "TransitEncryptionEnabled",
        note="TLS `required`: a Redis node, or every Memcached node and the configuration endpoint, with the "
        "installation's CA",
    ),
    inputs.implemented(
        "AuthToken",
        note="16-128 characters, with TLS; Redis keeps a SHA-256 hash, Memcached the hash and the token sealed with "
        "the installation's key (clients log in as `default`: ASCII authentication, or SASL with binding_protocol "
        "`binary`)",
    ),
    inputs.NO_CLASSIC_SECURITY_GROUPS_OR_LOG_DELIVERY,
    inputs.refused("OutpostMode", "PreferredOutpostArn", "PreferredOutpostArns", why=inputs.WHY_OUTPOSTS),
    inputs.refused("NetworkType", "IpDiscovery", why=inputs.WHY_IPV4, accepted="ipv4"),
)


async def create_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster_id = check_identifier("CacheClusterId", params["CacheClusterId"], CACHE_CLUSTER_ID_MAX)
    if "ReplicationGroupId" in params:
        for name in ("SnapshotName", "SnapshotArns", "SnapshotRetentionLimit", "SnapshotWindow"):
            if params.get(name):
                raise InvalidParameterCombination(f"{name} does not apply to a replication group's member.")
        return _create_member(ctx, cluster_id, params)
    if params.get("Engine", "redis").lower() == "memcached":
        for name in ("SnapshotName", "SnapshotArns", "SnapshotRetentionLimit", "SnapshotWindow"):
            if params.get(name):
                raise InvalidParameterCombination(f"{name} is only valid for the redis engine.")
    seed = snapshots.restore_source(ctx, params)
    retention, window = snapshots.automatic_snapshots(params)
    binary = snapshots.restore_engine(ctx, params, seed)
    memcached = binary.engine == "memcached"
    count = params.get("NumCacheNodes", 1)
    if memcached and not 1 <= count <= MAX_MEMCACHED_NODES:
        raise InvalidParameterValue(f"NumCacheNodes must be between 1 and {MAX_MEMCACHED_NODES} for memcached.")
    if not memcached:
        if count != 1:
            raise InvalidParameterValue("NumCacheNodes must be 1 for the redis engine.")
        if "AZMode" in params or "PreferredAvailabilityZones" in params:
            raise InvalidParameterCombination("AZMode and PreferredAvailabilityZones apply only to memcached clusters.")
    subnet_group = placing.subnet_group(ctx, params)
    azs, az_mode = _placement(ctx, params, count, subnet_group)
    parameter_group = _parameter_group(ctx, params, binary.engine, binary.version)
    now = ctx.clock()
    security, sealed = _security(ctx, params, binary.engine, now)  # AWS's combination rules come first
    node_type = snapshots.restore_node_type(params, seed)
    placing.check_capacity(
        ctx,
        [f"{cluster_id}/{node_id(i)}" for i in range(1, count + 1)],
        azs,
        node_type=node_type,
        subnet_group_name=subnet_group,
    )
    spec = CacheClusterSpec(
        id=cluster_id,
        engine=binary.engine,
        engine_version=binary.version,
        node_type=node_type,
        node_azs=azs,
        created_at=now,
        az_mode=az_mode,
        port=validate.port(params),
        tags=validate.tags(params),
        parameter_group=parameter_group,
        snapshot_retention_limit=retention,
        snapshot_window=window,
        seed_snapshot=seed.snapshot.spec.name if seed and seed.snapshot else None,
        seed_object=seed.object_key if seed else None,
        stored=validate.stored_settings(params),
        subnet_group=subnet_group,
        node_ids=tuple(node_id(i) for i in range(1, count + 1)) if memcached else (),
        last_node=count if memcached else 0,
        security=security,
        sealed_token=sealed,
    )
    with ctx.store.transaction():
        if not statuses.create(ctx.store, CLUSTERS, cluster_id, spec):
            raise CacheClusterAlreadyExists(f"Cache cluster {cluster_id} already exists.")
        snapshots.mark_restoring(ctx, seed)
    return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, cluster_id), show_nodes=False)}


def _create_member(ctx: Context, cluster_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """A new replica of an existing group; it takes the group's engine, version, node type and port."""
    group = get_group(ctx.store, params["ReplicationGroupId"])
    spec = group.spec
    version = params.get("EngineVersion")
    if "AuthToken" in params:
        raise InvalidParameterCombination("A replication group's member uses its group's AUTH token.")
    agrees = {
        "TransitEncryptionEnabled": params.get("TransitEncryptionEnabled", spec.security.tls) == spec.security.tls,
        "Engine": params.get("Engine", spec.engine).lower() == spec.engine,
        "EngineVersion": version is None or validate.version_matches(spec.engine_version, version),
        "CacheNodeType": params.get("CacheNodeType", spec.node_type) == spec.node_type,
        "NumCacheNodes": params.get("NumCacheNodes", 1) == 1,
        "Port": params.get("Port", spec.port or REDIS_PORT) == (spec.port or REDIS_PORT),
        "CacheSubnetGroupName": placing.subnet_group(ctx, params, spec.subnet_group) == spec.subnet_group,
    }
    for name, agreed in agrees.items():
        if not agreed:
            raise InvalidParameterCombination(
                f"The parameter {name} must agree with replication group {spec.id}: a member is one node like the "
                "group's others."
            )
    if "AZMode" in params or "PreferredAvailabilityZones" in params:
        raise InvalidParameterCombination("AZMode and PreferredAvailabilityZones apply only to memcached clusters.")
    if "CacheParameterGroupName" in params:
        wanted = _parameter_group(ctx, params, spec.engine, spec.engine_version)
        if wanted != (spec.parameter_group or default_group_name(family_for(spec.engine, spec.engine_version))):
            raise InvalidParameterCombination(
                "A replication group member uses its group's parameter group; change it with ModifyReplicationGroup."
            )
    if ctx.store.get(CLUSTER, cluster_id):
        raise CacheClusterAlreadyExists(f"Cache cluster {cluster_id} already exists.")
    members.add_member_cluster(ctx, group, cluster_id, params)
    return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, cluster_id), show_nodes=False)}


def _security(ctx: Context, params: dict[str, Any], engine: str, now: datetime) -> tuple[sec.Security, str | None]:
    """A standalone cluster's TLS (``required``) and AUTH token, as ``model.security`` checks them (it
    keeps the token's hash); for Memcached also the token sealed (``store.keys.Sealer``): memcached checks
    a password as given, so its nodes need the token back."""
    wanted = access.request(params)
    security = sec.at_creation(wanted, engine=engine, user_groups={}, now=now)
    if engine != "memcached" or wanted.auth_token is None:
        return security, None
    if ctx.sealer is None:
        raise InvalidParameterValue("AuthToken on memcached is not supported by this server: it has no sealing key.")
    return security, ctx.sealer.seal(wanted.auth_token)


def _parameter_group(ctx: Context, params: dict[str, Any], engine: str, version: str) -> str:
    """The group asked for (checked), or the default of the engine version's family."""
    if "CacheParameterGroupName" in params:
        return validate.cache_parameter_group(
            ctx.store, params["CacheParameterGroupName"], engine, version, replication_group=False
        )
    return default_group_name(family_for(engine, version))


def _placement(
    ctx: Context, params: dict[str, Any], count: int, subnet_group: str | None
) -> tuple[tuple[str, ...], str]:
    azs, az_mode = _zones(ctx, params, count, subnet_group)
    placing.check_zones(ctx, azs, subnet_group)
    return azs, az_mode


def _zones(ctx: Context, params: dict[str, Any], count: int, subnet_group: str | None) -> tuple[tuple[str, ...], str]:
    known = ctx.settings.azs
    validate.exclusive(params, "PreferredAvailabilityZone", "PreferredAvailabilityZones")
    az_mode = params.get("AZMode", "single-az")
    if az_mode not in ("single-az", "cross-az"):
        raise InvalidParameterValue(
            f"Invalid value for parameter AZMode: {az_mode}. Valid values: single-az, cross-az."
        )
    if "PreferredAvailabilityZones" in params:
        azs = validate.availability_zones(params["PreferredAvailabilityZones"], known)
        if len(azs) != count:
            raise InvalidParameterValue(
                f"The number of PreferredAvailabilityZones ({len(azs)}) must equal NumCacheNodes ({count})."
            )
        if az_mode == "single-az" and len(set(azs)) > 1 and "AZMode" in params:
            raise InvalidParameterCombination("AZMode single-az cannot place nodes in several zones.")
        return azs, "cross-az" if len(set(azs)) > 1 else az_mode
    if "PreferredAvailabilityZone" in params:
        (az,) = validate.availability_zones([params["PreferredAvailabilityZone"]], known)
        if az_mode == "cross-az" and count > 1:
            raise InvalidParameterCombination(
                "AZMode cross-az needs PreferredAvailabilityZones, not a single PreferredAvailabilityZone."
            )
        return (az,) * count, az_mode
    spread = placing.spread(ctx, count, subnet_group)
    return (spread if az_mode == "cross-az" else (spread[0],) * count), az_mode


DESCRIBE_INPUTS = inputs.Inputs(
    inputs.implemented(
        "CacheClusterId", "MaxRecords", "Marker", "ShowCacheNodeInfo", "ShowCacheClustersNotInReplicationGroups"
    )
)


async def describe_cache_clusters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    marker = None
    if "CacheClusterId" in params:
        selected = paging.one(get_cluster(ctx.store, params["CacheClusterId"]), params)
    else:
        standalone = params.get("ShowCacheClustersNotInReplicationGroups", False)
        where = [[Match("spec", "replication_group_id", None)]] if standalone else []
        selected, marker = paging.resources(CLUSTERS, ctx.store, params, where=where)
    show_nodes = bool(params.get("ShowCacheNodeInfo", False))
    result: dict[str, Any] = {"CacheClusters": [views.cache_cluster(ctx, c, show_nodes=show_nodes) for c in selected]}
    if marker:
        result["Marker"] = marker
    return result


DELETE_INPUTS = inputs.Inputs(inputs.implemented("CacheClusterId", "FinalSnapshotIdentifier"))


async def delete_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    cluster = get_cluster(ctx.store, params["CacheClusterId"])
    final = None
    if "FinalSnapshotIdentifier" in params:
        if cluster.spec.engine == "memcached":
            raise SnapshotFeatureNotSupported("Snapshots are not supported for memcached clusters.")
        if cluster.spec.replication_group_id:
            raise InvalidParameterCombination(
                f"Cache cluster {cluster.spec.id} is a member of replication group "
                f"{cluster.spec.replication_group_id}: take a final snapshot with DeleteReplicationGroup."
            )
        final = snapshots.final_snapshot_name(ctx, params)
    if cluster.spec.replication_group_id:
        members.remove_member_cluster(ctx, get_group(ctx.store, cluster.spec.replication_group_id), cluster)
        return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, cluster.spec.id), show_nodes=False)}
    lifecycle.require(CLUSTER, "DeleteCacheCluster", cluster.spec.id, cluster.status.status)
    if final is not None and cluster.status.status != ClusterState.AVAILABLE:
        raise InvalidCacheClusterState(
            f"Cache cluster {cluster.spec.id} is {cluster.status.status}: a final snapshot needs it available."
        )
    spec = replace(cluster.spec, deleting=True)
    with ctx.store.transaction():
        ctx.store.put_spec(CLUSTER, spec.id, spec.to_json())
        statuses.change(ctx.store, CLUSTERS, spec.id, Event.DELETE)
        if final is not None:
            # Taken before the node goes (the reconciler waits for it).
            snapshots.cluster_snapshot(ctx, final, cluster, final=True)
    return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, spec.id), show_nodes=False)}


MODIFY_INPUTS = inputs.Inputs(
    inputs.implemented("CacheClusterId", "CacheParameterGroupName", "SnapshotRetentionLimit", "SnapshotWindow"),
    inputs.implemented(
        "NumCacheNodes",
        "CacheNodeIdsToRemove",
        "NewAvailabilityZones",
        "AZMode",
        note="Memcached node count: nodes added and removed, pending without ApplyImmediately",
    ),
    inputs.implemented(
        "ApplyImmediately",
        note="a Memcached node-count change waits without it (PendingModifiedValues) and is carried out by the next "
        "call with it; everything else this version changes is applied at once",
    ),
    inputs.STORED_SETTINGS,
    inputs.stored("NotificationTopicStatus", note="shown in NotificationConfiguration"),
    inputs.not_yet("ScaleConfig", note="gradual Memcached scaling"),
    inputs.not_yet("Engine", "EngineVersion", note="engine upgrades"),
    inputs.not_yet("CacheNodeType", note="vertical scaling"),
    inputs.implemented(
        "AuthToken",
        "AuthTokenUpdateStrategy",
        note="standalone Redis clusters (a group's with ModifyReplicationGroup); live, connections kept; "
        "Memcached: not yet",
    ),
    inputs.NO_CLASSIC_SECURITY_GROUPS_OR_LOG_DELIVERY,
    inputs.refused("IpDiscovery", why=inputs.WHY_IPV4, accepted="ipv4"),
)


async def modify_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The parameter group of a standalone cluster, applied at once whatever ApplyImmediately says
    (immediate parameters live, the others at reboot); a Memcached cluster's node count, now with
    ApplyImmediately, else pending (``model.node_count``)."""
    cluster = get_cluster(ctx.store, params["CacheClusterId"])
    spec = cluster.spec
    node_change = ("NumCacheNodes", "CacheNodeIdsToRemove", "NewAvailabilityZones", "AZMode")
    if spec.engine != "memcached":
        if params.get("NumCacheNodes", spec.num_nodes) != spec.num_nodes:
            raise InvalidParameterValue("NumCacheNodes must stay 1 for the redis engine.")
        if any(name in params for name in node_change[1:]):
            raise InvalidParameterCombination(
                "CacheNodeIdsToRemove, NewAvailabilityZones and AZMode apply only to memcached clusters."
            )
    if spec.replication_group_id and "CacheParameterGroupName" in params:
        raise InvalidParameterCombination(
            f"Cache cluster {spec.id} is a member of replication group {spec.replication_group_id}: "
            "change its parameter group with ModifyReplicationGroup."
        )
    lifecycle.require(CLUSTER, "ModifyCacheCluster", spec.id, cluster.status.status)
    if ("SnapshotRetentionLimit" in params or "SnapshotWindow" in params) and (
        spec.engine == "memcached" or spec.replication_group_id
    ):
        raise InvalidParameterCombination(
            "SnapshotRetentionLimit and SnapshotWindow apply to standalone redis clusters "
            "(a group's with ModifyReplicationGroup)."
        )
    # Everything is checked before anything is written.
    retention, window = snapshots.automatic_snapshots(params, spec.snapshot_retention_limit, spec.snapshot_window)
    security = spec.security
    if "AuthToken" in params or "AuthTokenUpdateStrategy" in params:
        if spec.engine == "memcached":
            raise InvalidParameterValue(
                "Changing the AuthToken of a memcached cluster is not supported by this cachefleet version yet."
            )
        if spec.replication_group_id:
            raise InvalidParameterCombination(
                "AuthToken applies to standalone redis clusters; "
                "a group's member changes it with ModifyReplicationGroup."
            )
        security = sec.modified(
            spec.security, access.request(params), engine=spec.engine, user_groups={}, now=ctx.clock()
        )
    changed = replace(
        spec,
        snapshot_retention_limit=retention,
        snapshot_window=window,
        stored=validate.stored_settings(params, spec.stored),
        security=security,
    )
    modifying = security != spec.security
    if "CacheParameterGroupName" in params:
        name = _parameter_group(ctx, params, spec.engine, spec.engine_version)
        current = spec.parameter_group or default_group_name(family_for(spec.engine, spec.engine_version))
        if name != current:
            changed = replace(changed, parameter_group=name)
            modifying = True
    resized = None
    if spec.engine == "memcached":
        changed, resized = _node_count(ctx, params, changed)
    if changed != spec:
        with ctx.store.transaction():
            ctx.store.put_spec(CLUSTER, spec.id, changed.to_json())
            if resized is not None:
                statuses.change(ctx.store, CLUSTERS, spec.id, Event.MODIFY, resize_from=spec.num_nodes)
                more = "Increasing" if resized.added else "Decreasing"
                ctx.store.add_event(spec.id, CLUSTER, f"{more} number of requested nodes", ctx.clock())
            elif modifying:
                statuses.change(ctx.store, CLUSTERS, spec.id, Event.MODIFY)
    return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, spec.id), show_nodes=False)}


REBOOT_INPUTS = inputs.Inputs(inputs.implemented("CacheClusterId", "CacheNodeIdsToReboot"))


def _node_count(
    ctx: Context, params: dict[str, Any], spec: CacheClusterSpec
) -> tuple[CacheClusterSpec, node_count.NodeCountChange | None]:
    """A Memcached cluster's nodes after the request, and the change made to them now (None: none).

    With ApplyImmediately, a change pending from an earlier call is carried out too.
    """
    apply_now = bool(params.get("ApplyImmediately", False))
    az_mode = params.get("AZMode", spec.az_mode)
    if az_mode not in ("single-az", "cross-az"):
        raise InvalidParameterValue(
            f"Invalid value for parameter AZMode: {az_mode}. Valid values: single-az, cross-az."
        )
    if az_mode == "single-az" and len(set(spec.node_azs)) > 1:
        raise InvalidParameterCombination(
            f"Cache cluster {spec.id} has nodes in several Availability Zones: AZMode cannot be single-az."
        )
    asked = any(n in params for n in ("NumCacheNodes", "CacheNodeIdsToRemove", "NewAvailabilityZones"))
    if asked:
        new_azs = (
            validate.availability_zones(params["NewAvailabilityZones"], ctx.settings.azs)
            if ("NewAvailabilityZones" in params)
            else ()
        )
        result = node_count.change(
            spec.nodes,
            spec.pending_nodes,
            requested=params.get("NumCacheNodes", spec.num_nodes),
            remove=list(params.get("CacheNodeIdsToRemove", [])),
            new_azs=new_azs,
            az_mode=az_mode,
            known_azs=ctx.settings.azs,
            apply_now=apply_now,
            last_node=spec.highest_node,
        )
    elif apply_now and spec.pending_nodes is not None:
        result = node_count.apply(spec.nodes, spec.pending_nodes, last_node=spec.highest_node)
    else:
        return replace(spec, az_mode=az_mode), None
    changed = replace(
        spec,
        az_mode=az_mode,
        node_ids=tuple(n for n, _ in result.nodes),
        node_azs=tuple(az for _, az in result.nodes),
        last_node=result.last_node,
        pending_nodes=result.pending,
    )
    return changed, result if (result.added or result.removed) else None


async def reboot_cache_cluster(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Restart the listed nodes, one at a time, keeping Redis data (the reconciler does it)."""
    cluster = get_cluster(ctx.store, params["CacheClusterId"])
    spec = cluster.spec
    known = [n for n, _ in spec.nodes]
    asked = params["CacheNodeIdsToReboot"]
    unknown = [n for n in asked if n not in known]
    if unknown:
        raise InvalidParameterValue(
            f"Cache cluster {spec.id} has no cache node {', '.join(unknown)} (its nodes: {', '.join(known)})."
        )
    # Cluster-mode-enabled groups cannot be rebooted on ElastiCache; none exist here yet.
    lifecycle.require(CLUSTER, "RebootCacheCluster", spec.id, cluster.status.status)
    nodes = tuple(n for n in known if n in asked)
    changed = replace(spec, reboot_requests=spec.reboot_requests + 1, reboot_nodes=nodes)
    with ctx.store.transaction():
        ctx.store.put_spec(CLUSTER, spec.id, changed.to_json())
        statuses.change(ctx.store, CLUSTERS, spec.id, Event.REBOOT)
    return {"CacheCluster": views.cache_cluster(ctx, get_cluster(ctx.store, spec.id), show_nodes=False)}
