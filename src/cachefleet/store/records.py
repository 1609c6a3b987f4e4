"""Typed access to stored resources: records in, specs and statuses out (for the API and the reconciler)."""

from __future__ import annotations

from dataclasses import dataclass

from cachefleet.model import parameters
from cachefleet.model.errors import CacheClusterNotFound, CacheParameterGroupNotFound, ReplicationGroupNotFound
from cachefleet.model.specs import CacheClusterSpec, CacheParameterGroupSpec, ReplicationGroupSpec
from cachefleet.model.status import ClusterStatus, GroupStatus
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
