"""Typed access to stored resources: records in, specs and statuses out (for the API and the reconciler)."""

from __future__ import annotations

from dataclasses import dataclass

from cachefleet.model.errors import CacheClusterNotFound, ReplicationGroupNotFound
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
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
