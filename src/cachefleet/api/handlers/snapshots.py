"""CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot (Redis only).

These calls write desired state and answer at once: a new snapshot is ``creating`` (its source
``snapshotting``), a deleted one ``deleting``, a copied or exported one ``copying``. The reconciler
saves the node, writes and verifies the files, and records the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cachefleet.api import inputs, paging, validate, views
from cachefleet.api.context import Context
from cachefleet.engines.installed import EngineBinary
from cachefleet.model import lifecycle
from cachefleet.model import snapshots as sn
from cachefleet.model.errors import (
    CacheClusterNotFound,
    InvalidKMSKey,
    InvalidParameterCombination,
    InvalidParameterValue,
    SnapshotAlreadyExists,
    SnapshotFeatureNotSupported,
    SnapshotQuotaExceeded,
)
from cachefleet.model.ids import check_identifier
from cachefleet.model.lifecycle import Event
from cachefleet.model.specs import AUTOMATED, MANUAL, SnapshotSpec, Tags
from cachefleet.model.status import SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import EXPORTS, SNAPSHOTS
from cachefleet.store.records import (
    CLUSTER,
    GROUP,
    SNAPSHOT,
    Cluster,
    Export,
    Group,
    Snapshot,
    find_cluster,
    find_export,
    find_snapshot,
    get_cluster,
    get_group,
    get_snapshot,
    pick_member,
    request_snapshot,
    snapshots_of,
)
from cachefleet.store.sqlite import Match

MAX_RECORDS = 50  # DescribeSnapshots: MaxRecords 20-50, default 50
SOURCES = {"system": AUTOMATED, "user": MANUAL}


def snapshot_name(param: str, value: str) -> str:
    return check_identifier(param, value, sn.SNAPSHOT_NAME_MAX)


def _render(ctx: Context, name: str) -> dict[str, Any]:
    return {"Snapshot": views.snapshot(ctx, get_snapshot(ctx.store, name))}


def _not_taken(ctx: Context, name: str) -> None:
    if find_snapshot(ctx.store, name) is not None:
        raise SnapshotAlreadyExists(f"Snapshot {name} already exists.")


def _check_quota(ctx: Context, source_id: str) -> None:
    recent = [s.spec.created_at for s in snapshots_of(ctx.store, source_id) if s.spec.source == MANUAL]
    if sn.over_quota(recent, ctx.clock()):
        raise SnapshotQuotaExceeded(
            f"{source_id} has had {sn.MANUAL_SNAPSHOTS_PER_DAY} manual snapshots in the last 24 hours, "
            "the most allowed."
        )


def group_snapshot(
    ctx: Context,
    name: str,
    group: Group,
    *,
    member: str | None = None,
    final: bool = False,
    tags: Tags = (),
    kms_key_id: str | None = None,
) -> None:
    """Ask for a snapshot of ``group`` (on ``member`` if named; from the primary if final)."""
    members = [c.spec for m in group.spec.members if (c := find_cluster(ctx.store, m))]
    primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
    spec = sn.of_group(
        name, group.spec, members, primary, source=MANUAL, created_at=ctx.clock(), member=member, final=final, tags=tags
    )
    node = primary if final else pick_member(ctx.store, group, member)
    request_snapshot(ctx.store, _with_key(spec, kms_key_id), _creating(ctx, node))


def cluster_snapshot(
    ctx: Context, name: str, cluster: Cluster, *, final: bool = False, tags: Tags = (), kms_key_id: str | None = None
) -> None:
    spec = sn.of_cluster(name, cluster.spec, source=MANUAL, created_at=ctx.clock(), final=final, tags=tags)
    request_snapshot(ctx.store, _with_key(spec, kms_key_id), _creating(ctx, cluster.spec.id))


def kms_key_id(ctx: Context, params: dict[str, Any]) -> str | None:
    """The managed key ``KmsKeyId`` names (its id), or ``InvalidKMSKeyFault``."""
    if "KmsKeyId" not in params:
        return None
    if ctx.kms is None:
        raise InvalidKMSKey("This server manages no KMS keys.")
    return ctx.kms.resolve(params["KmsKeyId"]).key_id


def _with_key(spec: SnapshotSpec, key_id: str | None) -> SnapshotSpec:
    # A snapshot's own KmsKeyId wraps its data key; the source's at-rest setting is kept as it was.
    return spec if key_id is None else replace(spec, encryption=replace(spec.encryption, kms_key_id=key_id))


def _creating(ctx: Context, node: str | None) -> SnapshotStatus:
    return SnapshotStatus(SnapshotState.CREATING, requested_at=ctx.clock().isoformat(), node_cluster_id=node)


def final_snapshot_name(ctx: Context, params: dict[str, Any]) -> str | None:
    """``FinalSnapshotIdentifier`` checked: a valid name no snapshot has yet."""
    if "FinalSnapshotIdentifier" not in params:
        return None
    name = snapshot_name("FinalSnapshotIdentifier", params["FinalSnapshotIdentifier"])
    _not_taken(ctx, name)
    return name


CREATE_INPUTS = inputs.Inputs(
    inputs.implemented("ReplicationGroupId", "CacheClusterId", "SnapshotName", "Tags"),
    inputs.implemented("KmsKeyId", note="a key `cachefleet kms` manages; it wraps the snapshot's data key"),
)


async def create_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = snapshot_name("SnapshotName", params["SnapshotName"])
    tags = validate.tags(params)
    key = kms_key_id(ctx, params)
    if "ReplicationGroupId" in params and "CacheClusterId" in params:
        raise InvalidParameterCombination("Give either ReplicationGroupId or CacheClusterId, not both.")
    if "ReplicationGroupId" in params:
        group = get_group(ctx.store, params["ReplicationGroupId"])
        lifecycle.require(GROUP, "CreateSnapshot", group.spec.id, group.status.status)
        _not_taken(ctx, name)
        _check_quota(ctx, group.spec.id)
        group_snapshot(ctx, name, group, tags=tags, kms_key_id=key)
        return _render(ctx, name)
    if "CacheClusterId" not in params:
        raise InvalidParameterValue("One of ReplicationGroupId or CacheClusterId must be given.")
    cluster = get_cluster(ctx.store, params["CacheClusterId"])
    if cluster.spec.engine == "memcached":
        raise SnapshotFeatureNotSupported("Snapshots are not supported for memcached clusters.")
    if cluster.spec.replication_group_id:
        # A member of a cluster-mode-disabled group: that node is saved, the snapshot is the group's.
        group = get_group(ctx.store, cluster.spec.replication_group_id)
        lifecycle.require(GROUP, "CreateSnapshot", group.spec.id, group.status.status)
        lifecycle.require(CLUSTER, "CreateSnapshot", cluster.spec.id, cluster.status.status)
        _not_taken(ctx, name)
        _check_quota(ctx, group.spec.id)
        group_snapshot(ctx, name, group, member=cluster.spec.id, tags=tags, kms_key_id=key)
        return _render(ctx, name)
    lifecycle.require(CLUSTER, "CreateSnapshot", cluster.spec.id, cluster.status.status)
    _not_taken(ctx, name)
    _check_quota(ctx, cluster.spec.id)
    cluster_snapshot(ctx, name, cluster, tags=tags, kms_key_id=key)
    return _render(ctx, name)


DESCRIBE_INPUTS = inputs.Inputs(
    inputs.implemented(
        "ReplicationGroupId",
        "CacheClusterId",
        "SnapshotName",
        "SnapshotSource",
        "Marker",
        "MaxRecords",
        "ShowNodeGroupConfig",
    )
)


async def describe_snapshots(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    source = params.get("SnapshotSource")
    if source is not None and source not in SOURCES:
        raise InvalidParameterValue(
            f"Invalid value for parameter SnapshotSource: {source}. Valid values: system, user."
        )
    cluster_id = params["CacheClusterId"].lower() if "CacheClusterId" in params else None
    group_id = params["ReplicationGroupId"].lower() if "ReplicationGroupId" in params else None
    marker = None
    if "SnapshotName" in params:
        named = get_snapshot(ctx.store, params["SnapshotName"])
        snapshots = paging.one(named, params, default=MAX_RECORDS, maximum=MAX_RECORDS)
        snapshots = [s for s in snapshots if _matches(s, cluster_id, group_id, source)]
    else:
        # The narrowest filter first: it leads the query (store.sqlite.Store.page).
        where: list[list[Match]] = []
        if cluster_id is not None:
            on_cluster = [Match("spec", "cache_cluster_id", cluster_id), Match("status", "node_cluster_id", cluster_id)]
            where.append(on_cluster)
        if group_id is not None:
            where.append([Match("spec", "replication_group_id", group_id)])
        if source is not None:
            where.append([Match("spec", "source", SOURCES[source])])
        snapshots, marker = paging.resources(
            SNAPSHOTS, ctx.store, params, where=where, default=MAX_RECORDS, maximum=MAX_RECORDS
        )
    if cluster_id is not None and not snapshots and find_cluster(ctx.store, cluster_id) is None:
        raise CacheClusterNotFound(f"Cache cluster {cluster_id} not found.")
    show = bool(params.get("ShowNodeGroupConfig", False))
    result: dict[str, Any] = {"Snapshots": [views.snapshot(ctx, s, show_node_group_config=show) for s in snapshots]}
    if marker:
        result["Marker"] = marker
    return result


def _matches(snapshot: Snapshot, cluster_id: str | None, group_id: str | None, source: str | None) -> bool:
    spec = snapshot.spec
    return (
        (cluster_id is None or cluster_id in (spec.cache_cluster_id, snapshot.status.node_cluster_id))
        and (group_id is None or spec.replication_group_id == group_id)
        and (source is None or spec.source == SOURCES[source])
    )


DELETE_INPUTS = inputs.Inputs(inputs.implemented("SnapshotName"))


async def delete_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    snapshot = get_snapshot(ctx.store, params["SnapshotName"])
    name = snapshot.spec.name
    lifecycle.require(SNAPSHOT, "DeleteSnapshot", name, snapshot.status.status)
    with ctx.store.transaction():
        ctx.store.put_spec(SNAPSHOT, name, replace(snapshot.spec, deleting=True).to_json())
        statuses.change(ctx.store, SNAPSHOTS, name, Event.DELETE)
    return _render(ctx, name)


COPY_INPUTS = inputs.Inputs(
    inputs.implemented("SourceSnapshotName", "TargetSnapshotName"),
    inputs.implemented("TargetBucket", note="a directory of the server's export area stands for the S3 bucket"),
    inputs.implemented("Tags", note="tags the new snapshot; an export to TargetBucket makes no snapshot to tag"),
    inputs.implemented("KmsKeyId", note="a key `cachefleet kms` manages; it wraps the copy's data key"),
)


async def copy_snapshot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    source = get_snapshot(ctx.store, params["SourceSnapshotName"])
    target = snapshot_name("TargetSnapshotName", params["TargetSnapshotName"])
    tags = validate.tags(params)
    key = kms_key_id(ctx, params)
    lifecycle.require(SNAPSHOT, "CopySnapshot", source.spec.name, source.status.status)
    if params.get("TargetBucket"):
        return _export(ctx, source.spec, target, params["TargetBucket"])
    _not_taken(ctx, target)
    spec = _with_key(sn.copy(source.spec, target, created_at=ctx.clock(), tags=tags), key)
    request_snapshot(ctx.store, spec, SnapshotStatus(SnapshotState.CREATING, requested_at=ctx.clock().isoformat()))
    return _render(ctx, target)


def _export(ctx: Context, source: SnapshotSpec, target: str, bucket_name: str) -> dict[str, Any]:
    """Export to ``s3://bucket/<target>.rdb`` (the export area): answers with the source snapshot,
    ``copying`` until the object is written."""
    bucket = sn.check_bucket(bucket_name)
    export = Export(source=source.name, bucket=bucket, key=f"{target}.rdb", requested_at=ctx.clock().isoformat())
    if ctx.exports is None or not ctx.exports.bucket_exists(bucket):
        raise InvalidParameterValue(f"The S3 bucket {bucket} does not exist.")
    if ctx.exports.exists(bucket, export.key) or find_export(ctx.store, export.id) is not None:
        raise SnapshotAlreadyExists(f"The S3 bucket {bucket} already contains an object with key {export.key}.")
    with ctx.store.transaction():
        if not statuses.create(ctx.store, EXPORTS, export.id, export):
            raise SnapshotAlreadyExists(f"The S3 bucket {bucket} already contains an object with key {export.key}.")
        statuses.change_from(ctx.store, SNAPSHOTS, source.name, SnapshotState.AVAILABLE, Event.COPY)
    return _render(ctx, source.name)


# -- restores: SnapshotName / SnapshotArns on CreateReplicationGroup and CreateCacheCluster ----------


@dataclass(frozen=True)
class Seed:
    """What a new cluster is seeded from: a snapshot, or one RDB object in the import area."""

    snapshot: Snapshot | None = None
    object_key: str | None = None  # "bucket/key"


def restore_source(ctx: Context, params: dict[str, Any]) -> Seed | None:
    """The seed a create call asks for, checked; None when it asks for none."""
    validate.exclusive(params, "SnapshotName", "SnapshotArns")
    if params.get("SnapshotName"):
        snapshot = get_snapshot(ctx.store, params["SnapshotName"])
        lifecycle.require(SNAPSHOT, "Restore", snapshot.spec.name, snapshot.status.status)
        return Seed(snapshot=snapshot)
    arns = params.get("SnapshotArns") or []
    if not arns:
        return None
    if len(arns) != 1:
        raise InvalidParameterValue(
            "A cluster-mode-disabled cluster is seeded from exactly one RDB file: give one SnapshotArns element."
        )
    bucket, key = sn.parse_s3_arn(arns[0])
    return Seed(object_key=f"{bucket}/{key}")


def restore_engine(ctx: Context, params: dict[str, Any], seed: Seed | None) -> EngineBinary:
    """The engine binary of a new cluster: a snapshot's own engine and version by default, and
    never one older than the snapshot's (an older Redis cannot read a newer RDB)."""
    snapshot = seed.snapshot if seed else None
    if snapshot is None:
        return validate.engine_binary(ctx.engines, params.get("Engine", "redis"), params.get("EngineVersion"))
    engine = params.get("Engine", snapshot.spec.engine)
    version = params.get("EngineVersion")
    if version is None and any(
        e.engine == engine and e.version == snapshot.spec.engine_version for e in ctx.engines
    ):
        version = snapshot.spec.engine_version
    binary = validate.engine_binary(ctx.engines, engine, version)
    if _major_minor(binary.version) < _major_minor(snapshot.spec.engine_version):
        raise InvalidParameterCombination(
            f"Snapshot {snapshot.spec.name} was taken with {snapshot.spec.engine} {snapshot.spec.engine_version}; "
            f"it cannot be restored on the older {binary.engine} {binary.version}."
        )
    return binary


def restore_node_type(params: dict[str, Any], seed: Seed | None) -> str:
    """The node type asked for, else the snapshot's."""
    if seed is not None and seed.snapshot is not None and "CacheNodeType" not in params:
        return validate.node_type({"CacheNodeType": seed.snapshot.spec.node_type})
    return validate.node_type(params)


def mark_restoring(ctx: Context, seed: Seed | None) -> None:
    """Show the seed snapshot ``restoring`` (inside the create call's transaction)."""
    if seed is None or seed.snapshot is None:
        return
    statuses.change_from(ctx.store, SNAPSHOTS, seed.snapshot.spec.name, SnapshotState.AVAILABLE, Event.RESTORE)
    # Its worker follows the restore from now (no spec changed: it is told itself).
    ctx.store.wake(SNAPSHOTS.name, seed.snapshot.spec.name)


def automatic_snapshots(
    params: dict[str, Any], retention: int = 0, window: str | None = None
) -> tuple[int, str | None]:
    """``SnapshotRetentionLimit`` and ``SnapshotWindow`` as given (checked), else the current ones."""
    if "SnapshotRetentionLimit" in params:
        retention = sn.check_retention(int(params["SnapshotRetentionLimit"]))
    if params.get("SnapshotWindow"):
        sn.parse_window(params["SnapshotWindow"])
        window = params["SnapshotWindow"]
    return retention, window


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
