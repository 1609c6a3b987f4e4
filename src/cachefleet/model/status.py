"""Observed state as the reconciler records it: one owned status per resource, never derived at read time.

Each kind's lifecycle values are a ``StrEnum`` spelled as ElastiCache spells them on the wire; which
value may follow which is ``model.lifecycle``'s business, and ``store.statuses`` is the one place
that writes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Self

from cachefleet.model.nodes import Placement


class GroupState(StrEnum):
    """ReplicationGroup ``Status``."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    CREATE_FAILED = "create-failed"
    SNAPSHOTTING = "snapshotting"  # a snapshot of it is being taken


class ClusterState(StrEnum):
    """CacheCluster ``CacheClusterStatus`` (a standalone cluster, or a replication group's member).

    The model also lists ``incompatible-network`` and ``deleted``, which nothing here produces: a
    deleted cluster is not found, as on ElastiCache once the deletion has finished.
    """

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"
    REBOOTING = "rebooting cluster nodes"  # during RebootCacheCluster
    RESTORE_FAILED = "restore-failed"  # its seed (snapshot or RDB object) was refused
    SNAPSHOTTING = "snapshotting"  # a snapshot of it (or of its node, for a member) is being taken


class NodeState(StrEnum):
    """CacheNode ``CacheNodeStatus``."""

    CREATING = "creating"
    AVAILABLE = "available"
    REBOOTING = "rebooting"  # its process is gone or being restarted, until it serves again
    DELETING = "deleting"  # a model value nothing here shows: a node goes with its cluster's record


class SnapshotState(StrEnum):
    """Snapshot ``SnapshotStatus``; ``failed`` is not a model value (the console shows it)."""

    CREATING = "creating"
    AVAILABLE = "available"
    RESTORING = "restoring"  # a new cluster is being seeded from it
    COPYING = "copying"  # a copy or an export reads it
    DELETING = "deleting"
    FAILED = "failed"  # it could not be taken


PRIMARY = "primary"
REPLICA = "replica"

# Written by earlier versions for a cache cluster whose creation failed; the model has no such
# value for clusters, so it reads as ``creating``: the reconciler tries again (docs/decisions.md).
_LEGACY_CLUSTER_STATES = {"create-failed": ClusterState.CREATING}


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    status: NodeState
    port: int | None = None
    role: str | None = None  # primary | replica for Redis nodes; None for memcached
    created_at: str | None = None  # ISO time the node first served
    parameter_status: str = "in-sync"  # ParameterGroupStatus: in-sync | applying | pending-reboot
    # Where it runs (None: not placed yet, or recorded by a version before hosts: the embedded host).
    placement: Placement | None = None
    # Where it is moving to (its host is drained): a second process of the same node syncs there,
    # then takes over and the one on ``placement`` goes.
    moving_to: Placement | None = None
    # The host it ran on before it was placed again because that host was lost (its data stayed
    # there); cleared once it serves.
    replaced_from: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "status": NodeState(data["status"]),
                "placement": _placement(data.get("placement")),
                "moving_to": _placement(data.get("moving_to")),
            }
        )


def _placement(data: dict[str, str] | None) -> Placement | None:
    return Placement.from_json(data) if data else None


@dataclass(frozen=True)
class ClusterStatus:
    status: ClusterState
    nodes: tuple[NodeStatus, ...] = ()
    message: str = ""
    parameter_apply_status: str = "in-sync"  # the worst of the nodes' parameter statuses
    # RebootCacheCluster progress: requests carried out, and of the current one the nodes restarted
    # and not yet serving again, and those back.
    reboots_done: int = 0
    restarting: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    # Memcached auto discovery: the nodes the configuration endpoint lists, the version it serves
    # (one more on every change of that list), and the endpoint's port.
    discovery: tuple[str, ...] = ()
    config_version: int = 0
    configuration_port: int | None = None
    resize_from: int | None = None  # the node count a ModifyCacheCluster of NumCacheNodes started from
    # A standalone Redis cluster's security (``model.security``): the spec version every node has,
    # and the digest of the ACL users they all run (``engines.acl.fingerprint``).
    security_done: int = 0
    acl_fingerprint: str | None = None

    def node(self, node_id: str) -> NodeStatus | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        stored = data["status"]
        return cls(
            status=_LEGACY_CLUSTER_STATES.get(stored) or ClusterState(stored),
            nodes=tuple(NodeStatus.from_json(n) for n in data["nodes"]),
            message=data.get("message", ""),
            parameter_apply_status=data.get("parameter_apply_status", "in-sync"),
            reboots_done=data.get("reboots_done", 0),
            restarting=tuple(data.get("restarting", ())),
            restarted=tuple(data.get("restarted", ())),
            discovery=tuple(data.get("discovery", ())),
            config_version=data.get("config_version", 0),
            configuration_port=data.get("configuration_port"),
            resize_from=data.get("resize_from"),
            security_done=data.get("security_done", 0),
            acl_fingerprint=data.get("acl_fingerprint"),
        )


@dataclass(frozen=True)
class GroupStatus:
    status: GroupState
    primary_cluster_id: str | None = None  # the member that currently holds the primary role
    message: str = ""
    failovers_done: int = 0  # how many of the spec's failover_requests have been carried out
    failover_active: bool = False  # Sentinels watch the group (automatic failover really in force)
    primary_endpoint_port: int | None = None  # the group's stable endpoints (its proxy's ports)
    reader_endpoint_port: int | None = None
    # Members replaced or demoted that are not yet back as synced replicas ("Recovering cache nodes").
    recovering: tuple[str, ...] = ()
    # Where each of the group's Sentinels runs, by node id (``sentinel-1``...).
    sentinels: dict[str, Placement] = field(default_factory=dict)
    # Security as every node has it (``model.security``): the spec version carried out, the TLS mode
    # ("" without TLS) and user groups in force, and the digest of the ACL users all nodes run.
    security_done: int = 0
    transit_mode: str = ""
    user_group_ids: tuple[str, ...] = ()
    acl_fingerprint: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "status": GroupState(data["status"]),
                "recovering": tuple(data.get("recovering", ())),
                "sentinels": {k: Placement.from_json(v) for k, v in data.get("sentinels", {}).items()},
                "user_group_ids": tuple(data.get("user_group_ids", ())),
            }
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SnapshotStatus:
    """A snapshot's progress and, once ``available``, the stored RDB file that it is."""

    status: SnapshotState
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
        return cls(**{**data, "status": SnapshotState(data["status"])})


class UserState(StrEnum):
    """User ``Status``."""

    ACTIVE = "active"
    MODIFYING = "modifying"
    DELETING = "deleting"


class UserGroupState(StrEnum):
    """UserGroup ``Status``."""

    CREATING = "creating"
    ACTIVE = "active"
    MODIFYING = "modifying"
    DELETING = "deleting"


@dataclass(frozen=True)
class UserStatus:
    status: UserState
    # The spec generation the engines have: every node of every group using the user runs it.
    applied_generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**{**data, "status": UserState(data["status"])})


@dataclass(frozen=True)
class UserGroupStatus:
    status: UserGroupState
    # The members the engines have (the spec's user_ids once applied): while they differ, Describe
    # shows the difference as PendingChanges.
    applied_user_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(status=UserGroupState(data["status"]), applied_user_ids=tuple(data.get("applied_user_ids", ())))


@dataclass(frozen=True)
class NoStatus:
    """The status of a kind that has none (parameter groups, exports): stored as ``{}``."""

    def to_json(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls()
