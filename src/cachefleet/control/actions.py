"""The steps a planner may ask for. Plain values: the executor gives them effect, each idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field

from cachefleet.hosts.base import NodeKey
from cachefleet.model.status import ClusterStatus, GroupStatus

Address = tuple[str, int]


@dataclass(frozen=True)
class AllocatePort:
    node: NodeKey


@dataclass(frozen=True)
class StartNode:
    """Start the node's process; a Redis replica starts pointed at ``replicaof``, never as a stray master."""

    node: NodeKey
    replicaof: Address | None = None


@dataclass(frozen=True)
class ReplicaOf:
    node: NodeKey
    primary: Address | None  # None: REPLICAOF NO ONE


@dataclass(frozen=True)
class RemoveNode:
    node: NodeKey


@dataclass(frozen=True)
class DetachMember:
    """A retained primary leaves its deleted group and lives on as a standalone cluster."""

    cluster_id: str


@dataclass(frozen=True)
class DeleteRecord:
    kind: str
    id: str


Action = AllocatePort | StartNode | ReplicaOf | RemoveNode | DetachMember | DeleteRecord


@dataclass(frozen=True)
class Event:
    source_id: str
    source_type: str  # cache-cluster | replication-group
    message: str


@dataclass(frozen=True)
class Plan:
    """What one pass decided: steps to take now, or else the statuses to record."""

    actions: tuple[Action, ...] = ()
    group_statuses: dict[str, GroupStatus] = field(default_factory=dict)
    cluster_statuses: dict[str, ClusterStatus] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    converged: bool = False
