"""Resource kinds as the store knows them: one ``RecordKind`` each, the only typed access to records.

A kind names its records (``replication-group``...), how its spec and status are read from JSON,
the fault a missing id gets, the status a new resource starts in, and the lifecycle table its
status follows. ``find``/``get``/``all`` give typed ``Resource``s; statuses are written only by
``store.statuses``, which checks every write against the kind's lifecycle.

Adding a kind here is one ``RecordKind`` in ``KINDS`` (docs/architecture.md, "Adding a kind").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from cachefleet.model.errors import (
    CacheClusterNotFound,
    CacheParameterGroupNotFound,
    CacheSubnetGroupNotFound,
    ClientError,
    HostNotFound,
    ReplicationGroupNotFound,
    SnapshotNotFound,
    UserGroupNotFound,
    UserNotFound,
)
from cachefleet.model.hosts import HOST, CacheSubnetGroupSpec, HostSpec, HostState, HostStatus
from cachefleet.model.lifecycle import CLUSTER, GROUP, NODE, SNAPSHOT, USER, USER_GROUP, Lifecycle
from cachefleet.model.specs import CacheClusterSpec, CacheParameterGroupSpec, Export, ReplicationGroupSpec, SnapshotSpec
from cachefleet.model.status import (
    ClusterState,
    ClusterStatus,
    GroupState,
    GroupStatus,
    NoStatus,
    SnapshotState,
    SnapshotStatus,
    UserGroupState,
    UserGroupStatus,
    UserState,
    UserStatus,
)
from cachefleet.model.users import User, UserGroup
from cachefleet.store.sqlite import Filter, Record, Store


class Stored(Protocol):
    def to_json(self) -> dict[str, Any]: ...


SpecT = TypeVar("SpecT", bound=Stored)
StatusT = TypeVar("StatusT", bound=Stored)


@dataclass(frozen=True)
class Resource(Generic[SpecT, StatusT]):
    spec: SpecT
    status: StatusT
    generation: int  # bumped by every spec write; a status computed from an older one is stale
    seq: int = 0  # creation order, which pages follow


@dataclass(frozen=True)
class Page(Generic[SpecT, StatusT]):
    items: list[Resource[SpecT, StatusT]]
    next_seq: int | None  # where the next page starts; None: this is the last


@dataclass(frozen=True)
class RecordKind(Generic[SpecT, StatusT]):
    name: str  # the store's kind column, and the first half of the reconciler's queue keys
    read_spec: Callable[[dict[str, Any]], SpecT]
    read_status: Callable[[dict[str, Any]], StatusT]
    new_status: Callable[[], StatusT]  # what a new resource starts with
    not_found: Callable[[str], ClientError]
    lifecycle: Lifecycle[Any] | None = None  # None: a kind without a status (NoStatus)
    # The statuses of the parts a status carries (a cluster's nodes), checked against ``parts_lifecycle``.
    parts: Callable[[StatusT], dict[str, StrEnum]] | None = None
    parts_lifecycle: Lifecycle[Any] | None = None
    lowercase_ids: bool = True  # ElastiCache names are case-insensitive and stored lowercase

    def key(self, resource_id: str) -> str:
        return resource_id.lower() if self.lowercase_ids else resource_id

    def load(self, record: Record) -> Resource[SpecT, StatusT]:
        return Resource(self.read_spec(record.spec), self.read_status(record.status), record.generation, record.seq)

    def find(self, store: Store, resource_id: str) -> Resource[SpecT, StatusT] | None:
        record = store.get(self.name, self.key(resource_id))
        return self.load(record) if record is not None else None

    def get(self, store: Store, resource_id: str) -> Resource[SpecT, StatusT]:
        found = self.find(store, resource_id)
        if found is None:
            raise self.not_found(resource_id)
        return found

    def many(self, store: Store, ids: Sequence[str]) -> list[Resource[SpecT, StatusT]]:
        """The resources named (in that order; missing ones left out), in one query."""
        return [self.load(r) for r in store.many(self.name, [self.key(i) for i in ids])]

    def page(self, store: Store, *, start: int = 0, limit: int, where: Filter = ()) -> Page[SpecT, StatusT]:
        """A page of the kind in creation order from ``start`` (a ``seq``), filtered on indexed fields."""
        records = store.page(self.name, start=start, limit=limit + 1, where=where)
        following = records[limit].seq if len(records) > limit else None
        return Page([self.load(r) for r in records[:limit]], following)

    def matching(self, store: Store, where: Filter) -> list[Resource[SpecT, StatusT]]:
        """Every resource of the kind that ``where`` matches, in creation order, found through indexes."""
        return [self.load(r) for r in store.page(self.name, limit=None, where=where)]

    def all(self, store: Store) -> list[Resource[SpecT, StatusT]]:
        """Every resource of the kind, in creation order: for the reconciler's sweeps, not for requests."""
        return [self.load(r) for r in store.records(self.name)]

    def ids(self, store: Store) -> list[str]:
        return store.ids(self.name)

    def put_spec(self, store: Store, resource_id: str, spec: SpecT) -> None:
        """Write a new desired state (bumping the generation): the reconciler looks again at once."""
        store.put_spec(self.name, self.key(resource_id), spec.to_json())


def _cluster_nodes(status: ClusterStatus) -> dict[str, StrEnum]:
    return {n.node_id: n.status for n in status.nodes}


GROUPS = RecordKind(
    "replication-group",
    ReplicationGroupSpec.from_json,
    GroupStatus.from_json,
    lambda: GroupStatus(GroupState.CREATING),
    lambda i: ReplicationGroupNotFound(f"Replication group {i} not found."),
    GROUP,
)
CLUSTERS = RecordKind(
    "cache-cluster",
    CacheClusterSpec.from_json,
    ClusterStatus.from_json,
    lambda: ClusterStatus(ClusterState.CREATING),
    lambda i: CacheClusterNotFound(f"Cache cluster {i} not found."),
    CLUSTER,
    parts=_cluster_nodes,
    parts_lifecycle=NODE,
)
SNAPSHOTS = RecordKind(
    "snapshot",
    SnapshotSpec.from_json,
    SnapshotStatus.from_json,
    lambda: SnapshotStatus(SnapshotState.CREATING),
    lambda i: SnapshotNotFound(f"Snapshot {i} not found."),
    SNAPSHOT,
)
# Customers' parameter groups; the default groups are never stored (``records.find_parameter_group``).
PARAMETER_GROUPS = RecordKind(
    "cache-parameter-group",
    CacheParameterGroupSpec.from_json,
    NoStatus.from_json,
    NoStatus,
    lambda i: CacheParameterGroupNotFound(f"CacheParameterGroup {i} not found."),
)
EXPORTS = RecordKind(
    "snapshot-export",
    Export.from_json,
    NoStatus.from_json,
    NoStatus,
    lambda i: SnapshotNotFound(f"Export {i} not found."),
    lowercase_ids=False,  # "bucket/key", as the object is named
)

# RBAC users (password hashes only, never a password) and user groups; the built-in ``default`` user
# is never stored (``api/handlers/users.py`` adds it).
USERS = RecordKind(
    "user",
    User.from_json,
    UserStatus.from_json,
    lambda: UserStatus(UserState.ACTIVE),
    lambda i: UserNotFound(f"User {i} not found."),
    USER,
)
USER_GROUPS = RecordKind(
    "user-group",
    UserGroup.from_json,
    UserGroupStatus.from_json,
    lambda: UserGroupStatus(UserGroupState.CREATING),
    lambda i: UserGroupNotFound(f"User group {i} not found."),
    USER_GROUP,
)

# Machines that run nodes (the embedded host's record is made when first drained); reconciled by
# control.kinds.host.
HOSTS = RecordKind(
    "host",
    HostSpec.from_json,
    HostStatus.from_json,
    lambda: HostStatus(HostState.JOINING),
    lambda i: HostNotFound(f"Host {i} not found."),
    HOST,
)
# Customers' cache subnet groups; the default group is never stored (``records.find_subnet_group``).
SUBNET_GROUPS = RecordKind(
    "cache-subnet-group",
    CacheSubnetGroupSpec.from_json,
    NoStatus.from_json,
    NoStatus,
    lambda i: CacheSubnetGroupNotFound(f"Cache subnet group {i} not found."),
)

KINDS: dict[str, RecordKind[Any, Any]] = {
    k.name: k
    for k in (GROUPS, CLUSTERS, SNAPSHOTS, PARAMETER_GROUPS, EXPORTS, USERS, USER_GROUPS, HOSTS, SUBNET_GROUPS)
}
