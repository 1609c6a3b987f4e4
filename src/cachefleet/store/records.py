"""Typed access to stored resources: records in, specs and statuses out (for the API and the reconciler)."""

from __future__ import annotations

from dataclasses import dataclass

from cachefleet.model.errors import CacheClusterNotFound, ReplicationGroupNotFound
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import ClusterStatus, GroupStatus
from cachefleet.store.sqlite import Store

GROUP = "replication-group"
CLUSTER = "cache-cluster"


@dataclass(frozen=True)
class Group:
    spec: ReplicationGroupSpec
    status: GroupStatus


@dataclass(frozen=True)
class Cluster:
    spec: CacheClusterSpec
    status: ClusterStatus


def find_group(store: Store, group_id: str) -> Group | None:
    record = store.get(GROUP, group_id.lower())
    if record is None:
        return None
    return Group(ReplicationGroupSpec.from_json(record.spec), GroupStatus.from_json(record.status))


def get_group(store: Store, group_id: str) -> Group:
    group = find_group(store, group_id)
    if group is None:
        raise ReplicationGroupNotFound(f"Replication group {group_id} not found.")
    return group


def find_cluster(store: Store, cluster_id: str) -> Cluster | None:
    record = store.get(CLUSTER, cluster_id.lower())
    if record is None:
        return None
    return Cluster(CacheClusterSpec.from_json(record.spec), ClusterStatus.from_json(record.status))


def get_cluster(store: Store, cluster_id: str) -> Cluster:
    cluster = find_cluster(store, cluster_id)
    if cluster is None:
        raise CacheClusterNotFound(f"Cache cluster {cluster_id} not found.")
    return cluster


def all_groups(store: Store) -> list[Group]:
    return [
        Group(ReplicationGroupSpec.from_json(r.spec), GroupStatus.from_json(r.status))
        for r in store.records(GROUP)
    ]


def all_clusters(store: Store) -> list[Cluster]:
    return [
        Cluster(CacheClusterSpec.from_json(r.spec), ClusterStatus.from_json(r.status))
        for r in store.records(CLUSTER)
    ]
