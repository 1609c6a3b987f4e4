"""Observed state as the reconciler records it: one owned status per resource, never derived at read time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Self

# Lifecycle values shared by replication groups and cache clusters (ElastiCache spells them so).
CREATING = "creating"
AVAILABLE = "available"
DELETING = "deleting"
CREATE_FAILED = "create-failed"  # replication groups
RESTORE_FAILED = "restore-failed"  # cache clusters
MODIFYING = "modifying"
REBOOTING = "rebooting"
REBOOTING_CLUSTER = "rebooting cluster nodes"  # a cache cluster during RebootCacheCluster
SNAPSHOTTING = "snapshotting"  # a group or cluster while a snapshot of it is being taken

# Snapshot statuses (the model lists creating | available | restoring | copying | deleting; a
# snapshot that could not be taken is "failed", as the console shows it).
RESTORING = "restoring"
COPYING = "copying"
FAILED = "failed"

PRIMARY = "primary"
REPLICA = "replica"


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    status: str  # creating | available | rebooting | deleting
    port: int | None = None
    role: str | None = None  # primary | replica for Redis nodes; None for memcached
    created_at: str | None = None  # ISO time the node first served
    parameter_status: str = "in-sync"  # ParameterGroupStatus: in-sync | applying | pending-reboot

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class ClusterStatus:
    status: str
    nodes: tuple[NodeStatus, ...] = ()
    message: str = ""
    parameter_apply_status: str = "in-sync"  # the worst of the nodes' parameter statuses
    # RebootCacheCluster progress: requests carried out, and of the current one the nodes restarted
    # and not yet serving again, and those back.
    reboots_done: int = 0
    restarting: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()

    def node(self, node_id: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            status=data["status"],
            nodes=tuple(NodeStatus.from_json(n) for n in data["nodes"]),
            message=data.get("message", ""),
            parameter_apply_status=data.get("parameter_apply_status", "in-sync"),
            reboots_done=data.get("reboots_done", 0),
            restarting=tuple(data.get("restarting", ())),
            restarted=tuple(data.get("restarted", ())),
        )


@dataclass(frozen=True)
class GroupStatus:
    status: str
    primary_cluster_id: str | None = None  # the member that currently holds the primary role
    message: str = ""
    failovers_done: int = 0  # how many of the spec's failover_requests have been carried out
    failover_active: bool = False  # Sentinels watch the group (automatic failover really in force)
    primary_endpoint_port: int | None = None  # the group's stable endpoints (its proxy's ports)
    reader_endpoint_port: int | None = None
    # Members replaced or demoted that are not yet back as synced replicas ("Recovering cache nodes").
    recovering: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**{**data, "recovering": tuple(data.get("recovering", ()))})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)



@dataclass(frozen=True)
class SnapshotStatus:
    """A snapshot's progress and, once ``available``, the stored RDB file that it is."""

    status: str
    message: str = ""
    requested_at: str | None = None  # ISO time (real clock) it was asked for: the deadline counts from here
    node_cluster_id: str | None = None  # the member (or standalone cluster) whose node was saved
    node_created_at: str | None = None  # ISO time that node first served
    snapshot_created_at: str | None = None  # ISO time the RDB was taken
    size: int | None = None  # bytes of the stored RDB file
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**data)
