"""Typed access to stored resources: records in, specs and statuses out (for the API and the reconciler)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cachefleet.model import lifecycle, parameters
from cachefleet.model import status as st
from cachefleet.model.errors import (
    CacheClusterNotFound,
    CacheParameterGroupNotFound,
    ReplicationGroupNotFound,
    SnapshotAlreadyExists,
    SnapshotNotFound,
)
from cachefleet.model.specs import CacheClusterSpec, CacheParameterGroupSpec, ReplicationGroupSpec, SnapshotSpec
from cachefleet.model.status import ClusterStatus, GroupStatus, SnapshotStatus
from cachefleet.store.sqlite import Record, Store

GROUP = "replication-group"
CLUSTER = "cache-cluster"


@dataclass(frozen=True)
class Group:
    spec: ReplicationGroupSpec
    status: GroupStatus
    generation: int


@dataclass(frozen=True)
class Cluster:
    spec: CacheClusterSpec
    status: ClusterStatus
    generation: int


def find_group(store: Store, group_id: str) -> Group | None:
    record = store.get(GROUP, group_id.lower())
    if record is None:
        return None
    return _group(record)


def get_group(store: Store, group_id: str) -> Group:
    group = find_group(store, group_id)
    if group is None:
        raise ReplicationGroupNotFound(f"Replication group {group_id} not found.")
    return group


def find_cluster(store: Store, cluster_id: str) -> Cluster | None:
    record = store.get(CLUSTER, cluster_id.lower())
    if record is None:
        return None
    return _cluster(record)


def get_cluster(store: Store, cluster_id: str) -> Cluster:
    cluster = find_cluster(store, cluster_id)
    if cluster is None:
        raise CacheClusterNotFound(f"Cache cluster {cluster_id} not found.")
    return cluster


def all_groups(store: Store) -> list[Group]:
    return [_group(r) for r in store.records(GROUP)]


def all_clusters(store: Store) -> list[Cluster]:
    return [_cluster(r) for r in store.records(CLUSTER)]


def _group(record: Record) -> Group:
    spec = ReplicationGroupSpec.from_json(record.spec)
    return Group(spec, GroupStatus.from_json(record.status), record.generation)


def _cluster(record: Record) -> Cluster:
    spec = CacheClusterSpec.from_json(record.spec)
    return Cluster(spec, ClusterStatus.from_json(record.status), record.generation)


# Cache parameter groups: customers' groups are records; the default groups exist implicitly.

PARAMETER_GROUP = "cache-parameter-group"


@dataclass(frozen=True)
class ParameterGroup:
    spec: CacheParameterGroupSpec
    generation: int  # 0 for a default group, which is never stored
    is_default: bool = False


def find_parameter_group(store: Store, name: str) -> ParameterGroup | None:
    lowered = name.lower()
    builtin = parameters.default_groups().get(lowered)
    if builtin is not None:
        family, values = builtin
        description = f"Default parameter group for {family}"
        if lowered.endswith(parameters.CLUSTER_ON_SUFFIX):
            description += " with cluster mode on"
        spec = CacheParameterGroupSpec(lowered, family, description).with_parameters(values)
        return ParameterGroup(spec, 0, is_default=True)
    record = store.get(PARAMETER_GROUP, lowered)
    if record is None:
        return None
    return ParameterGroup(CacheParameterGroupSpec.from_json(record.spec), record.generation)


def get_parameter_group(store: Store, name: str) -> ParameterGroup:
    group = find_parameter_group(store, name)
    if group is None:
        raise CacheParameterGroupNotFound(f"CacheParameterGroup {name} not found.")
    return group


def all_parameter_groups(store: Store) -> list[ParameterGroup]:
    """The default groups first, then the customer's in creation order."""
    builtin = [g for name in parameters.default_groups() if (g := find_parameter_group(store, name))]
    stored = [
        ParameterGroup(CacheParameterGroupSpec.from_json(r.spec), r.generation) for r in store.records(PARAMETER_GROUP)
    ]
    return builtin + stored


def parameter_group_name(engine: str, version: str, name: str | None) -> str:
    """The group a cluster or group uses: its own, or the default of its engine version's family."""
    return name or parameters.default_group_name(parameters.family_for(engine, version))


def effective_parameters(
    store: Store, engine: str, version: str, name: str | None
) -> tuple[ParameterGroup | None, dict[str, str]]:
    """A cluster's parameter group and its effective values (family defaults under the group's).

    A group that has gone missing (it cannot be deleted while in use) yields the family defaults.
    """
    family = parameters.family_for(engine, version)
    group = find_parameter_group(store, parameter_group_name(engine, version, name))
    return group, parameters.effective(family, group.spec.overrides if group else {})


def parameter_group_users(store: Store, name: str) -> list[Cluster]:
    """Every cache cluster (replication group members included) that uses the group ``name``."""
    return [
        c
        for c in all_clusters(store)
        if parameter_group_name(c.spec.engine, c.spec.engine_version, c.spec.parameter_group) == name
    ]


# Snapshots, and the exports of snapshots to a bucket (CopySnapshot with TargetBucket).

SNAPSHOT = "snapshot"
EXPORT = "snapshot-export"


@dataclass(frozen=True)
class Snapshot:
    spec: SnapshotSpec
    status: SnapshotStatus
    generation: int


def find_snapshot(store: Store, name: str) -> Snapshot | None:
    record = store.get(SNAPSHOT, name.lower())
    return _snapshot(record) if record else None


def get_snapshot(store: Store, name: str) -> Snapshot:
    snapshot = find_snapshot(store, name)
    if snapshot is None:
        raise SnapshotNotFound(f"Snapshot {name} not found.")
    return snapshot


def all_snapshots(store: Store) -> list[Snapshot]:
    return [_snapshot(r) for r in store.records(SNAPSHOT)]


def snapshots_of(store: Store, source_id: str) -> list[Snapshot]:
    """The snapshots taken from the group or standalone cluster ``source_id`` (copies excluded)."""
    return [s for s in all_snapshots(store) if s.spec.copy_of is None and s.spec.source_id == source_id]


def _snapshot(record: Record) -> Snapshot:
    return Snapshot(SnapshotSpec.from_json(record.spec), SnapshotStatus.from_json(record.status), record.generation)


@dataclass(frozen=True)
class Export:
    """One RDB export: snapshot ``source`` to ``bucket``/``key`` in the export area."""

    source: str
    bucket: str
    key: str
    requested_at: str

    @property
    def id(self) -> str:
        return f"{self.bucket}/{self.key}"

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "bucket": self.bucket, "key": self.key, "requested_at": self.requested_at}


def all_exports(store: Store) -> list[Export]:
    return [Export(**r.spec) for r in store.records(EXPORT)]


def find_export(store: Store, export_id: str) -> Export | None:
    record = store.get(EXPORT, export_id)
    return Export(**record.spec) if record else None


def pick_member(store: Store, group: Group, named: str | None = None) -> str:
    """The member to snapshot: the one named, else a replica that serves, else the primary
    (ElastiCache takes a group's snapshot on a replica when there is one, to spare the primary)."""
    primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
    if named:
        return named
    for member in group.spec.members:
        cluster = find_cluster(store, member)
        node = cluster.status.node("0001") if cluster else None
        if member != primary and node is not None and node.status == st.AVAILABLE:
            return member
    return primary


def request_snapshot(store: Store, spec: SnapshotSpec, status: SnapshotStatus) -> None:
    """Write a new snapshot for the reconciler to take, and show its source busy, in one transaction.

    The source group or cluster shows ``snapshotting`` (not a final snapshot's, which shows
    ``deleting``), and so does the member whose node is saved; its spec generation is bumped too,
    so that a reconcile pass that read it before this request cannot write its old status back. A
    copy's source snapshot shows ``copying``.
    """
    with store.transaction():
        if not store.create(SNAPSHOT, spec.name, spec.to_json(), status.to_json()):
            raise SnapshotAlreadyExists(f"Snapshot {spec.name} already exists.")
        if spec.copy_of is not None:
            source = get_snapshot(store, spec.copy_of)
            if source.status.status == st.AVAILABLE:
                store.put_status(SNAPSHOT, source.spec.name, replace(source.status, status=st.COPYING).to_json())
            return
        if spec.final:
            return
        if spec.replication_group_id:
            group = get_group(store, spec.replication_group_id)
            # Checked again here, in the transaction: the caller's look may be stale.
            lifecycle.require(GROUP, "CreateSnapshot", group.spec.id, group.status.status)
            store.put_spec(GROUP, group.spec.id, group.spec.to_json())
            store.put_status(GROUP, group.spec.id, replace(group.status, status=st.SNAPSHOTTING).to_json())
        member = find_cluster(store, status.node_cluster_id or spec.cache_cluster_id or "")
        if member is not None:
            if not member.spec.replication_group_id:
                lifecycle.require(CLUSTER, "CreateSnapshot", member.spec.id, member.status.status)
                store.put_spec(CLUSTER, member.spec.id, member.spec.to_json())
            store.put_status(CLUSTER, member.spec.id, replace(member.status, status=st.SNAPSHOTTING).to_json())


def restores_from(store: Store, name: str) -> list[Cluster]:
    """Clusters still being created from snapshot ``name`` (a restore in progress)."""
    return [c for c in all_clusters(store) if c.spec.seed_snapshot == name and c.status.status == st.CREATING]
