"""Lifecycles as tables: which status follows which, on what event, and which API calls each allows.

Every kind with a status has one ``Lifecycle``: rows of (from, event, to). The first row of each has
no "from": it is the status a new resource is created in. ``store.statuses`` is the one writer of
statuses and consults these tables on every write, the API's immediate transitions (ElastiCache
answers ``deleting``, ``modifying``, ``snapshotting`` at once) and the reconciler's alike; a change
that no row allows is refused. ``require`` (further down) says which calls each status accepts.

A row's event names why the status moves. Two events of one table never join the same pair of
statuses, so a status the reconciler computed tells its own event (``Lifecycle.event_between``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from cachefleet.model.errors import (
    InvalidCacheClusterState,
    InvalidReplicationGroupState,
    InvalidSnapshotState,
    InvalidState,
    InvalidUserGroupState,
    InvalidUserState,
)
from cachefleet.model.status import ClusterState, GroupState, NodeState, SnapshotState, UserGroupState, UserState


class Event(StrEnum):
    """Why a status changes."""

    CREATE = "create"  # the API accepted a create call
    READY = "ready"  # the reconciler found in place everything the spec asks for
    MODIFY = "modify"  # the API accepted a change the reconciler carries out
    REBOOT = "reboot"  # RebootCacheCluster
    SNAPSHOT = "snapshot"  # a snapshot of the resource was asked for
    DELETE = "delete"  # the API accepted a delete call
    FAIL_CREATE = "fail-create"  # the creation cannot complete
    FAIL_RESTORE = "fail-restore"  # the seed (snapshot or RDB object) was refused
    DOWN = "down"  # a node's process is gone, or is being restarted
    SAVED = "saved"  # a snapshot's file is stored
    FAIL = "fail"  # a snapshot could not be taken
    COPY = "copy"  # a copy or an export reads a snapshot
    RESTORE = "restore"  # a new cluster is seeded from a snapshot
    RELEASE = "release"  # nothing reads a snapshot any more
    DRAIN = "drain"  # a host is asked to move its nodes off (or is back, still asked to)
    UNDRAIN = "undrain"  # a host takes new nodes again
    EMPTY = "empty"  # a drained host holds no node any more
    FILL = "fill"  # a drained host holds a node again
    UNREACHABLE = "unreachable"  # a host's agent does not answer
    LOSE = "lose"  # a host has not answered for longer than the installation waits


S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Row(Generic[S]):
    source: S | None  # None: a resource that does not exist yet
    event: Event
    target: S


class InvalidTransition(Exception):
    """A status change that no row of the kind's table allows: a bug, logged and refused."""


class Lifecycle(Generic[S]):
    def __init__(
        self,
        kind: str,
        noun: str,
        states: type[S],
        rows: Iterable[tuple[S | None, Event, S]],
        error: type[InvalidState] | None = None,
    ) -> None:
        self.kind = kind  # the store's kind name (``replication-group``...)
        self.noun = noun  # how messages name one ("Replication group")
        self.states = states
        self.rows = tuple(Row(source, event, target) for source, event, target in rows)
        self.error = error  # the fault a refused API call gets
        self._next = {(r.source, r.event): r.target for r in self.rows}
        self._events = {(r.source, r.target): r.event for r in self.rows}
        if len(self._next) != len(self.rows) or len(self._events) != len(self.rows):
            raise ValueError(f"{kind}: two rows share a (from, event) or a (from, to)")
        starts = [r.target for r in self.rows if r.source is None and r.event is Event.CREATE]
        if len(starts) != 1:
            raise ValueError(f"{kind}: exactly one row must create the resource")
        self.initial: S = starts[0]

    def fire(self, current: S | None, event: Event) -> S:
        """The status ``event`` leads to from ``current``; InvalidTransition when no row says so."""
        target = self._next.get((current, event))
        if target is None:
            raise InvalidTransition(f"{self.kind}: no {event} from {current}")
        return target

    def event_between(self, source: S | None, target: S) -> Event:
        """The event that moves ``source`` to ``target``; InvalidTransition when none does."""
        event = self._events.get((source, target))
        if event is None:
            raise InvalidTransition(f"{self.kind}: no transition from {source} to {target}")
        return event

    def allows(self, source: S | None, event: Event) -> bool:
        return (source, event) in self._next

    def sources(self, event: Event) -> frozenset[S]:
        """The statuses ``event`` may fire from."""
        return frozenset(r.source for r in self.rows if r.event is event and r.source is not None)


G, C, N, P = GroupState, ClusterState, NodeState, SnapshotState

GROUP = Lifecycle(
    "replication-group",
    "Replication group",
    GroupState,
    [
        (None, Event.CREATE, G.CREATING),
        (G.CREATING, Event.READY, G.AVAILABLE),
        (G.CREATING, Event.FAIL_CREATE, G.CREATE_FAILED),
        (G.AVAILABLE, Event.MODIFY, G.MODIFYING),
        (G.MODIFYING, Event.READY, G.AVAILABLE),
        (G.AVAILABLE, Event.SNAPSHOT, G.SNAPSHOTTING),
        (G.SNAPSHOTTING, Event.READY, G.AVAILABLE),  # the snapshot is stored (or failed)
        (G.AVAILABLE, Event.DELETE, G.DELETING),
        (G.CREATE_FAILED, Event.DELETE, G.DELETING),
    ],
    InvalidReplicationGroupState,
)

CLUSTER = Lifecycle(
    "cache-cluster",
    "Cache cluster",
    ClusterState,
    [
        (None, Event.CREATE, C.CREATING),
        (C.CREATING, Event.READY, C.AVAILABLE),
        (C.CREATING, Event.FAIL_RESTORE, C.RESTORE_FAILED),
        (C.AVAILABLE, Event.MODIFY, C.MODIFYING),
        (C.MODIFYING, Event.READY, C.AVAILABLE),
        (C.AVAILABLE, Event.REBOOT, C.REBOOTING),
        (C.REBOOTING, Event.READY, C.AVAILABLE),  # every asked node restarted and serves again
        (C.AVAILABLE, Event.SNAPSHOT, C.SNAPSHOTTING),
        (C.SNAPSHOTTING, Event.READY, C.AVAILABLE),
        (C.AVAILABLE, Event.DELETE, C.DELETING),
        (C.RESTORE_FAILED, Event.DELETE, C.DELETING),
        # Members go with their group, whatever they are doing: one still being created (the group's
        # creation failed), or one being rebooted when the group is deleted or the replica removed.
        (C.CREATING, Event.DELETE, C.DELETING),
        (C.REBOOTING, Event.DELETE, C.DELETING),
    ],
    InvalidCacheClusterState,
)

NODE = Lifecycle(
    "cache-node",
    "Cache node",
    NodeState,
    [
        (None, Event.CREATE, N.CREATING),
        (None, Event.READY, N.AVAILABLE),  # first seen already serving (an adopted process)
        (N.CREATING, Event.READY, N.AVAILABLE),
        (N.AVAILABLE, Event.DOWN, N.REBOOTING),
        (N.REBOOTING, Event.READY, N.AVAILABLE),
    ],
)

SNAPSHOT = Lifecycle(
    "snapshot",
    "Snapshot",
    SnapshotState,
    [
        (None, Event.CREATE, P.CREATING),
        (P.CREATING, Event.SAVED, P.AVAILABLE),
        (P.CREATING, Event.FAIL, P.FAILED),
        (P.AVAILABLE, Event.COPY, P.COPYING),
        (P.AVAILABLE, Event.RESTORE, P.RESTORING),
        (P.COPYING, Event.RESTORE, P.RESTORING),  # the copy is done, a restore still reads it
        (P.RESTORING, Event.COPY, P.COPYING),
        (P.COPYING, Event.RELEASE, P.AVAILABLE),
        (P.RESTORING, Event.RELEASE, P.AVAILABLE),
        (P.AVAILABLE, Event.DELETE, P.DELETING),
        (P.FAILED, Event.DELETE, P.DELETING),
    ],
    InvalidSnapshotState,
)

U, UG = UserState, UserGroupState

# A user is usable at once; changes and deletions are carried to the engines by the reconciler.
USER = Lifecycle(
    "user",
    "User",
    UserState,
    [
        (None, Event.CREATE, U.ACTIVE),
        (U.ACTIVE, Event.MODIFY, U.MODIFYING),
        (U.MODIFYING, Event.READY, U.ACTIVE),
        (U.ACTIVE, Event.DELETE, U.DELETING),
    ],
    InvalidUserState,
)

USER_GROUP = Lifecycle(
    "user-group",
    "User group",
    UserGroupState,
    [
        (None, Event.CREATE, UG.CREATING),
        (UG.CREATING, Event.READY, UG.ACTIVE),
        (UG.ACTIVE, Event.MODIFY, UG.MODIFYING),
        (UG.MODIFYING, Event.READY, UG.ACTIVE),
        (UG.ACTIVE, Event.DELETE, UG.DELETING),
    ],
    InvalidUserGroupState,
)

LIFECYCLES: dict[
    str,
    Lifecycle[GroupState]
    | Lifecycle[ClusterState]
    | Lifecycle[SnapshotState]
    | Lifecycle[UserState]
    | Lifecycle[UserGroupState],
] = {lc.kind: lc for lc in (GROUP, CLUSTER, SNAPSHOT, USER, USER_GROUP)}


# -- which API calls each status accepts ----------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    allowed: frozenset[StrEnum]  # the statuses in which the call is accepted
    event: Event | None = None  # the status change it makes at once, when it makes one in every case


def _op(allowed: Iterable[StrEnum], event: Event | None = None) -> Operation:
    return Operation(frozenset(allowed), event)


# (resource kind, operation) -> what the operation needs and does
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("replication-group", "DeleteReplicationGroup"): _op({G.AVAILABLE, G.CREATE_FAILED}, Event.DELETE),
    # Modifying only when the change needs the reconciler (a description alone does not).
    ("replication-group", "ModifyReplicationGroup"): _op({G.AVAILABLE}),
    ("replication-group", "TestFailover"): _op({G.AVAILABLE}),
    ("replication-group", "IncreaseReplicaCount"): _op({G.AVAILABLE}, Event.MODIFY),
    ("replication-group", "DecreaseReplicaCount"): _op({G.AVAILABLE}, Event.MODIFY),
    ("replication-group", "CreateCacheCluster.ReplicationGroupId"): _op({G.AVAILABLE}, Event.MODIFY),
    ("replication-group", "CreateSnapshot"): _op({G.AVAILABLE}, Event.SNAPSHOT),
    ("cache-cluster", "DeleteCacheCluster"): _op({C.AVAILABLE, C.RESTORE_FAILED}, Event.DELETE),
    ("cache-cluster", "CreateReplicationGroup.PrimaryClusterId"): _op({C.AVAILABLE}),
    ("cache-cluster", "ModifyCacheCluster"): _op({C.AVAILABLE}),
    ("cache-cluster", "RebootCacheCluster"): _op({C.AVAILABLE}, Event.REBOOT),
    ("cache-cluster", "CreateSnapshot"): _op({C.AVAILABLE}, Event.SNAPSHOT),
    # A snapshot is usable (copied, exported, restored) while others use it too; it shows copying
    # or restoring only when it was available.
    ("snapshot", "CopySnapshot"): _op({P.AVAILABLE, P.COPYING, P.RESTORING}),
    ("snapshot", "Restore"): _op({P.AVAILABLE, P.COPYING, P.RESTORING}),
    ("snapshot", "DeleteSnapshot"): _op({P.AVAILABLE, P.FAILED}, Event.DELETE),
    ("user", "ModifyUser"): _op({U.ACTIVE}, Event.MODIFY),
    ("user", "DeleteUser"): _op({U.ACTIVE}, Event.DELETE),
    ("user-group", "ModifyUserGroup"): _op({UG.ACTIVE}, Event.MODIFY),
    ("user-group", "DeleteUserGroup"): _op({UG.ACTIVE}, Event.DELETE),
}


def require(kind: str, operation: str, resource_id: str, status: str) -> None:
    """Raise the kind's InvalidState fault unless ``operation`` is allowed in ``status``."""
    if status in OPERATIONS[(kind, operation)].allowed:
        return
    raise refusal(LIFECYCLES[kind], resource_id, status)


def refusal(lifecycle: Lifecycle[Any], resource_id: str, status: str) -> InvalidState:
    """The fault an API call gets for a resource in the wrong status."""
    error = lifecycle.error or InvalidState
    return error(f"{lifecycle.noun} {resource_id} is not in available state (current status: {status}).")
