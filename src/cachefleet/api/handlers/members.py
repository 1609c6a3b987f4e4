"""Changing who belongs to a replication group: replicas added or removed, one at a time or by count.

IncreaseReplicaCount, DecreaseReplicaCount, and the legacy CreateCacheCluster(ReplicationGroupId) and
DeleteCacheCluster(replica) all come down to ``add_replicas`` / ``remove_replicas``: one transaction
that rewrites the group's member list and marks the group ``modifying``; the reconciler starts or
stops the nodes and returns the group to ``available``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cachefleet.api import inputs, placing, validate
from cachefleet.api.context import Context
from cachefleet.api.handlers.replication_groups import render
from cachefleet.model import lifecycle
from cachefleet.model.errors import (
    CacheClusterAlreadyExists,
    InvalidCacheClusterState,
    InvalidParameterCombination,
    InvalidParameterValue,
    NodeGroupNotFound,
    NoOperation,
)
from cachefleet.model.ids import member_cluster_id
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import MEMBER_NODE_ID
from cachefleet.model.specs import CacheClusterSpec, StoredSettings, Tags
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.records import CLUSTER, GROUP, Cluster, Group, find_cluster, get_group

MAX_REPLICAS = 5


def replica_ids(group: Group) -> list[str]:
    primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
    return [m for m in group.spec.members if m != primary]


def minimum_replicas(group: Group) -> int:
    # Automatic failover (and Multi-AZ, which needs it) is meaningless without a replica to promote.
    return 1 if group.spec.automatic_failover or group.spec.multi_az else 0


def next_member_ids(ctx: Context, group: Group, count: int) -> list[str]:
    ids: list[str] = []
    index = 1
    while len(ids) < count:
        candidate = member_cluster_id(group.spec.id, index)
        if candidate not in group.spec.members and ctx.store.get(CLUSTER, candidate) is None:
            ids.append(candidate)
        index += 1
    return ids


def spread_azs(ctx: Context, group: Group, count: int) -> list[str]:
    """AZs for new replicas: each goes where the group has the fewest members, as ElastiCache spreads
    them, among the AZs of the group's cache subnet group."""
    zones = placing.zones(ctx, group.spec.subnet_group) or ctx.settings.azs
    used = Counter(_zone(c) for m in group.spec.members if (c := find_cluster(ctx.store, m)))
    chosen: list[str] = []
    for _ in range(count):
        az = min(zones, key=lambda a: (used[a], zones.index(a)))
        used[az] += 1
        chosen.append(az)
    return chosen


def _zone(cluster: Cluster) -> str:
    node = cluster.status.node(MEMBER_NODE_ID)
    return node.placement.zone if node is not None and node.placement is not None else cluster.spec.node_azs[0]


def _hosts(ctx: Context, group: Group) -> list[str]:
    """The hosts the group's members run on (a new replica avoids them when it can)."""
    found = []
    for member in group.spec.members:
        cluster = find_cluster(ctx.store, member)
        node = cluster.status.node(MEMBER_NODE_ID) if cluster else None
        if node is not None and node.placement is not None:
            found.append(node.placement.host)
    return found


def add_replicas(
    ctx: Context,
    group: Group,
    ids: Sequence[str],
    azs: Sequence[str],
    *,
    tags: Tags | None = None,
    stored: StoredSettings | None = None,
) -> None:
    """New replicas like the group's others; ``tags`` and ``stored`` default to the group's own."""
    now = ctx.clock()
    spec = group.spec
    placing.check_zones(ctx, azs, spec.subnet_group)
    placing.check_capacity(
        ctx, ids, azs, node_type=spec.node_type, subnet_group_name=spec.subnet_group, together=_hosts(ctx, group)
    )
    with ctx.store.transaction():
        for cluster_id, az in zip(ids, azs, strict=True):
            member = CacheClusterSpec(
                id=cluster_id,
                engine=spec.engine,
                engine_version=spec.engine_version,
                node_type=spec.node_type,
                node_azs=(az,),
                created_at=now,
                port=spec.port,
                replication_group_id=spec.id,
                tags=spec.tags if tags is None else tags,
                parameter_group=spec.parameter_group,
                stored=spec.stored if stored is None else stored,
                subnet_group=spec.subnet_group,
            )
            if not statuses.create(ctx.store, CLUSTERS, cluster_id, member):
                raise CacheClusterAlreadyExists(f"Cache cluster {cluster_id} already exists.")
        grown = replace(spec, members=(*spec.members, *ids))
        ctx.store.put_spec(GROUP, spec.id, grown.to_json())
        statuses.change(ctx.store, GROUPS, spec.id, Event.MODIFY)


def remove_replicas(ctx: Context, group: Group, ids: Sequence[str]) -> None:
    """Removed members leave the group and are deleted as standalone clusters by the reconciler."""
    spec = group.spec
    with ctx.store.transaction():
        for cluster_id in ids:
            cluster = find_cluster(ctx.store, cluster_id)
            if cluster is None:
                continue
            leaving = replace(cluster.spec, replication_group_id=None, deleting=True)
            ctx.store.put_spec(CLUSTER, cluster_id, leaving.to_json())
            statuses.change(ctx.store, CLUSTERS, cluster_id, Event.DELETE)
        shrunk = replace(spec, members=tuple(m for m in spec.members if m not in ids))
        ctx.store.put_spec(GROUP, spec.id, shrunk.to_json())
        statuses.change(ctx.store, GROUPS, spec.id, Event.MODIFY)


def _shard_request(params: dict[str, Any], *, allow_remove: bool) -> tuple[int | None, list[str] | None]:
    """The new replica count and optional AZs from NewReplicaCount or ReplicaConfiguration."""
    if params.get("ApplyImmediately") is not True:
        raise InvalidParameterValue("Only ApplyImmediately=true is supported for replica count changes.")
    given = [n for n in ("NewReplicaCount", "ReplicaConfiguration", "ReplicasToRemove") if n in params]
    if len(given) != 1 or (not allow_remove and given == ["ReplicasToRemove"]):
        choices = (
            "NewReplicaCount, ReplicaConfiguration or ReplicasToRemove"
            if allow_remove
            else ("NewReplicaCount or ReplicaConfiguration")
        )
        raise InvalidParameterCombination(f"Exactly one of {choices} must be given.")
    if "NewReplicaCount" in params:
        return int(params["NewReplicaCount"]), None
    if "ReplicasToRemove" in params:
        return None, None
    shards = params["ReplicaConfiguration"]
    if len(shards) != 1:
        raise InvalidParameterValue("A cluster-mode-disabled group has exactly one node group, 0001.")
    shard = shards[0]
    if shard["NodeGroupId"].zfill(4) != "0001":
        raise NodeGroupNotFound(f"Node group {shard['NodeGroupId']} not found.")
    count = int(shard["NewReplicaCount"])
    azs = shard.get("PreferredAvailabilityZones")
    if azs is not None and len(azs) != count + 1:
        raise InvalidParameterValue(
            "PreferredAvailabilityZones must list one zone for the primary and one for each replica "
            f"({count + 1} in all)."
        )
    return count, azs


INCREASE_INPUTS = inputs.Inputs(
    inputs.implemented("ReplicationGroupId", "NewReplicaCount", "ReplicaConfiguration"),
    inputs.implemented("ApplyImmediately", note="only true, as on ElastiCache"),
    inputs.refused("ReplicaConfiguration.PreferredOutpostArns", why=inputs.WHY_OUTPOSTS),
)


async def increase_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(ctx.store, params["ReplicationGroupId"])
    count, azs = _shard_request(params, allow_remove=False)
    assert count is not None
    lifecycle.require(GROUP, "IncreaseReplicaCount", group.spec.id, group.status.status)
    current = len(replica_ids(group))
    if count == current:
        raise NoOperation(f"Replication group {group.spec.id} already has {current} replicas.")
    if not current < count <= MAX_REPLICAS:
        raise InvalidParameterValue(
            f"NewReplicaCount must be greater than the current {current} and at most {MAX_REPLICAS}."
        )
    added = count - current
    new_azs = (
        list(validate.availability_zones(azs[-added:], ctx.settings.azs)) if azs else spread_azs(ctx, group, added)
    )
    add_replicas(ctx, group, next_member_ids(ctx, group, added), new_azs)
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, group.spec.id))}


DECREASE_INPUTS = inputs.Inputs(
    inputs.implemented("ReplicationGroupId", "NewReplicaCount", "ReplicaConfiguration", "ReplicasToRemove"),
    inputs.implemented("ApplyImmediately", note="only true, as on ElastiCache"),
    inputs.not_yet("ReplicaConfiguration.PreferredAvailabilityZones", note="choosing the replicas to remove by zone"),
    inputs.refused("ReplicaConfiguration.PreferredOutpostArns", why=inputs.WHY_OUTPOSTS),
)


async def decrease_replica_count(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(ctx.store, params["ReplicationGroupId"])
    count, _ = _shard_request(params, allow_remove=True)
    lifecycle.require(GROUP, "DecreaseReplicaCount", group.spec.id, group.status.status)
    replicas = replica_ids(group)
    if "ReplicasToRemove" in params:
        doomed = [r.lower() for r in params["ReplicasToRemove"]]
        primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
        for cluster_id in doomed:
            if cluster_id == primary:
                raise InvalidParameterValue(f"Cannot remove {cluster_id}: it is the primary.")
            if cluster_id not in replicas:
                raise InvalidParameterValue(f"{cluster_id} is not a replica of {group.spec.id}.")
        count = len(replicas) - len(set(doomed))
    else:
        assert count is not None
        if count == len(replicas):
            raise NoOperation(f"Replication group {group.spec.id} already has {count} replicas.")
        if count > len(replicas):
            raise InvalidParameterValue(f"NewReplicaCount must be less than the current {len(replicas)}.")
        doomed = _least_useful(ctx, group, replicas, len(replicas) - count)
    if count < minimum_replicas(group):
        raise InvalidParameterValue(
            f"Replication group {group.spec.id} needs at least {minimum_replicas(group)} replica "
            "while automatic failover is enabled."
        )
    remove_replicas(ctx, group, doomed)
    return {"ReplicationGroup": render(ctx, get_group(ctx.store, group.spec.id))}


def _least_useful(ctx: Context, group: Group, replicas: list[str], count: int) -> list[str]:
    """Replicas to remove first: those sharing a crowded AZ, newest first, so the spread survives."""
    clusters = {r: c for r in replicas if (c := find_cluster(ctx.store, r)) is not None}
    crowd = Counter(c.spec.node_azs[0] for m in group.spec.members if (c := find_cluster(ctx.store, m)))
    ranked = sorted(replicas, key=lambda r: (crowd[clusters[r].spec.node_azs[0]], replicas.index(r)), reverse=True)
    return ranked[:count]


def add_member_cluster(ctx: Context, group: Group, cluster_id: str, params: dict[str, Any]) -> None:
    """CreateCacheCluster with ReplicationGroupId: one more replica, with its own id."""
    lifecycle.require(GROUP, "CreateCacheCluster.ReplicationGroupId", group.spec.id, group.status.status)
    if len(replica_ids(group)) >= MAX_REPLICAS:
        raise InvalidParameterValue(f"Replication group {group.spec.id} already has {MAX_REPLICAS} replicas.")
    if "PreferredAvailabilityZone" in params:
        azs = list(validate.availability_zones([params["PreferredAvailabilityZone"]], ctx.settings.azs))
    else:
        azs = spread_azs(ctx, group, 1)
    tags = validate.tags(params) if "Tags" in params else None
    add_replicas(ctx, group, [cluster_id], azs, tags=tags, stored=validate.stored_settings(params, group.spec.stored))


def remove_member_cluster(ctx: Context, group: Group, cluster: Cluster) -> None:
    """DeleteCacheCluster on a member: allowed for a replica the group can spare."""
    primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
    if cluster.spec.id == primary:
        raise InvalidCacheClusterState(
            f"Cache cluster {cluster.spec.id} is the primary of replication group {group.spec.id}."
        )
    if len(replica_ids(group)) - 1 < minimum_replicas(group):
        raise InvalidCacheClusterState(
            f"Cache cluster {cluster.spec.id} is the last replica of {group.spec.id}, which has "
            "automatic failover enabled."
        )
    lifecycle.require(CLUSTER, "DeleteCacheCluster", cluster.spec.id, cluster.status.status)
    remove_replicas(ctx, group, [cluster.spec.id])
