"""Typed access to stored resources: records in, specs and statuses out (for the API and the reconciler)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cachefleet.model import parameters
from cachefleet.model.errors import CacheParameterGroupNotFound, SnapshotAlreadyExists
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import MEMBER_NODE_ID
from cachefleet.model.specs import CacheClusterSpec, CacheParameterGroupSpec, Export, ReplicationGroupSpec, SnapshotSpec
from cachefleet.model.status import ClusterState, ClusterStatus, GroupStatus, NodeState, SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, EXPORTS, GROUPS, PARAMETER_GROUPS, SNAPSHOTS, Resource
from cachefleet.store.sqlite import Match, Store

__all__ = ["Export"]  # re-exported: the API builds exports with it

# Kind names, as the store and the reconciler's queue keys spell them.
GROUP = GROUPS.name
CLUSTER = CLUSTERS.name
PARAMETER_GROUP = PARAMETER_GROUPS.name
SNAPSHOT = SNAPSHOTS.name
EXPORT = EXPORTS.name

Group = Resource[ReplicationGroupSpec, GroupStatus]
Cluster = Resource[CacheClusterSpec, ClusterStatus]
Snapshot = Resource[SnapshotSpec, SnapshotStatus]

# The names the API handlers call; each is the kind's one generic accessor (``store.kinds``).
find_group, get_group, all_groups = GROUPS.find, GROUPS.get, GROUPS.all
find_cluster, get_cluster, all_clusters = CLUSTERS.find, CLUSTERS.get, CLUSTERS.all
find_snapshot, get_snapshot, all_snapshots = SNAPSHOTS.find, SNAPSHOTS.get, SNAPSHOTS.all
find_export, all_exports = EXPORTS.find, EXPORTS.all


# Cache parameter groups: customers' groups are records; the default groups exist implicitly.


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
    stored = PARAMETER_GROUPS.find(store, lowered)
    return ParameterGroup(stored.spec, stored.generation) if stored is not None else None


def get_parameter_group(store: Store, name: str) -> ParameterGroup:
    group = find_parameter_group(store, name)
    if group is None:
        raise CacheParameterGroupNotFound(f"CacheParameterGroup {name} not found.")
    return group


def all_parameter_groups(store: Store) -> list[ParameterGroup]:
    """The default groups first, then the customer's in creation order."""
    builtin = [g for name in parameters.default_groups() if (g := find_parameter_group(store, name))]
    return builtin + [ParameterGroup(g.spec, g.generation) for g in PARAMETER_GROUPS.all(store)]


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
    """Every cache cluster (replication group members included) that uses the group ``name``: those
    naming it, and for a default group those naming none (checked against their engine's family)."""
    named = [Match("spec", "parameter_group", name)]
    if name in parameters.default_groups():
        named.append(Match("spec", "parameter_group", None))
    return [
        c
        for c in CLUSTERS.matching(store, [named])
        if parameter_group_name(c.spec.engine, c.spec.engine_version, c.spec.parameter_group) == name
    ]


# Snapshots, and the exports of snapshots to a bucket (CopySnapshot with TargetBucket).


def snapshots_of(store: Store, source_id: str) -> list[Snapshot]:
    """The snapshots taken from the group or standalone cluster ``source_id`` (copies excluded).
    Every snapshot but a copy names its group or its cluster, so the indexes find them all."""
    by_source = [Match("spec", "replication_group_id", source_id), Match("spec", "cache_cluster_id", source_id)]
    return [
        s for s in SNAPSHOTS.matching(store, [by_source]) if s.spec.copy_of is None and s.spec.source_id == source_id
    ]


def pick_member(store: Store, group: Group, named: str | None = None) -> str:
    """The member to snapshot (``choose_member``), its members read in one query."""
    return choose_member(group, CLUSTERS.many(store, group.spec.members), named)


def choose_member(group: Group, members: Sequence[Cluster], named: str | None = None) -> str:
    """The member to snapshot: the one named, else a replica that serves, else the primary
    (ElastiCache takes a group's snapshot on a replica when there is one, to spare the primary)."""
    primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
    if named:
        return named
    by_id = {m.spec.id: m for m in members}
    for member in group.spec.members:
        cluster = by_id.get(member)
        node = cluster.status.node(MEMBER_NODE_ID) if cluster else None
        if member != primary and node is not None and node.status == NodeState.AVAILABLE:
            return member
    return primary


def request_snapshot(store: Store, spec: SnapshotSpec, status: SnapshotStatus) -> None:
    """Write a new snapshot for the reconciler to take, and show its source busy, in one transaction.

    The source group or cluster shows ``snapshotting`` (not a final snapshot's, which shows
    ``deleting``), and so does the member whose node is saved when it was available; its spec
    generation is bumped too, so that a reconcile pass that read it before this request cannot
    write its old status back. A copy's source snapshot shows ``copying`` when it was available.
    """
    with store.transaction():
        if not statuses.create(store, SNAPSHOTS, spec.name, spec, status):
            raise SnapshotAlreadyExists(f"Snapshot {spec.name} already exists.")
        if spec.copy_of is not None:
            statuses.change_from(store, SNAPSHOTS, spec.copy_of, SnapshotState.AVAILABLE, Event.COPY)
            return
        if spec.final:
            return
        if spec.replication_group_id:
            group = get_group(store, spec.replication_group_id)
            GROUPS.put_spec(store, group.spec.id, group.spec)
            # Refused here, in the transaction, unless available: the caller's look may be stale.
            statuses.change(store, GROUPS, group.spec.id, Event.SNAPSHOT)
        member = find_cluster(store, status.node_cluster_id or spec.cache_cluster_id or "")
        if member is None:
            return
        if member.spec.replication_group_id:
            statuses.change_from(store, CLUSTERS, member.spec.id, ClusterState.AVAILABLE, Event.SNAPSHOT)
        else:
            CLUSTERS.put_spec(store, member.spec.id, member.spec)
            statuses.change(store, CLUSTERS, member.spec.id, Event.SNAPSHOT)


def restores_from(store: Store, name: str) -> list[Cluster]:
    """Clusters still being created from snapshot ``name`` (a restore in progress)."""
    return [c for c in all_clusters(store) if c.spec.seed_snapshot == name and c.status.status == ClusterState.CREATING]
