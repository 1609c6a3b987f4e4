"""Desired state: one frozen spec per resource kind, built once at the API edge.

Specs are what the user asked for. Everything the reconciler learns (ports, roles, health) lives in
the statuses of ``model.status``, never here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Self

from cachefleet.model.encryption import AtRest
from cachefleet.model.ids import node_id
from cachefleet.model.node_count import PendingNodes
from cachefleet.model.security import NONE, Security

Tags = tuple[tuple[str, str], ...]

DEFAULT_MAINTENANCE_WINDOW = "sun:06:00-sun:07:00"  # right after the default snapshot window
ACTIVE = "active"


@dataclass(frozen=True)
class StoredSettings:
    """Settings ElastiCache keeps and shows that drive nothing on one host: stored and echoed, never
    acted on (docs/api-members.md lists every member's treatment)."""

    security_group_ids: tuple[str, ...] = ()
    maintenance_window: str | None = None  # ddd:hh24:mi-ddd:hh24:mi, lowercase; None: the default
    notification_topic_arn: str | None = None
    notification_topic_status: str = ACTIVE
    auto_minor_version_upgrade: bool = True

    @property
    def window(self) -> str:
        return self.maintenance_window or DEFAULT_MAINTENANCE_WINDOW

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Self:
        """Records written before these settings existed have none: the defaults."""
        data = data or {}
        return cls(**{**data, "security_group_ids": tuple(data.get("security_group_ids", ()))})


@dataclass(frozen=True)
class CacheClusterSpec:
    id: str
    engine: str  # "redis" | "valkey" | "memcached"
    engine_version: str  # the full version of an installed binary, e.g. "7.0.15"
    node_type: str
    node_azs: tuple[str, ...]  # one AZ per node, in node order; its length is the node count
    created_at: datetime
    az_mode: str = "single-az"
    port: int | None = None  # what the caller asked for; real node ports come from the host
    replication_group_id: str | None = None
    tags: Tags = ()
    deleting: bool = False
    # The cache parameter group; None (specs written before parameter groups) means the default one.
    parameter_group: str | None = None
    # RebootCacheCluster calls so far, and the nodes the latest one asked for; the reconciler
    # restarts those nodes, one at a time, once for each request it has not yet carried out.
    reboot_requests: int = 0
    reboot_nodes: tuple[str, ...] = ()
    # Automatic daily snapshots (standalone Redis clusters; a group's members follow their group).
    snapshot_retention_limit: int = 0
    snapshot_window: str | None = None
    # What the node is seeded with before its first start: a snapshot's name (SnapshotName), or an
    # RDB object "bucket/key" in the import area (SnapshotArns). Only on a group's first primary.
    seed_snapshot: str | None = None
    seed_object: str | None = None
    stored: StoredSettings = StoredSettings()
    # The cache subnet group its nodes run in (None: ``default``, every subnet).
    subnet_group: str | None = None
    # Memcached: the node ids, parallel to node_azs (empty: 0001 to N, as specs were written before
    # nodes could be removed), the highest node number ever given (ids are never reused), and a
    # node-count change waiting for ApplyImmediately (PendingModifiedValues).
    node_ids: tuple[str, ...] = ()
    last_node: int = 0
    pending_nodes: PendingNodes | None = None
    # TLS, AUTH token (hashes only) and user group of a standalone cluster (Redis or Memcached); a
    # group's member follows its group's (``ReplicationGroupSpec.security``) and keeps the default here.
    security: Security = NONE
    # Memcached with an AuthToken: the token sealed with the installation's key (``store.keys.Sealer``).
    # memcached checks a password against its own files as given, so a node started later needs the
    # token back; state.db holds it sealed only, never plain (Redis needs the hashes alone).
    sealed_token: str | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        return len(self.node_azs)

    @property
    def nodes(self) -> tuple[tuple[str, str], ...]:
        """(node id, AZ) of every node, in node order."""
        ids = self.node_ids or tuple(node_id(i) for i in range(1, len(self.node_azs) + 1))
        return tuple(zip(ids, self.node_azs, strict=True))

    @property
    def highest_node(self) -> int:
        return max(self.last_node, *(int(n) for n, _ in self.nodes)) if self.node_azs else self.last_node

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["security"] = self.security.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        pending = data.get("pending_nodes")
        return cls(
            **{
                **data,
                "node_azs": tuple(data["node_azs"]),
                "tags": tuple(tuple(t) for t in data["tags"]),
                "reboot_nodes": tuple(data.get("reboot_nodes", ())),
                "node_ids": tuple(data.get("node_ids", ())),
                "pending_nodes": None
                if pending is None
                else PendingNodes(pending["num_nodes"], tuple(pending["remove"]), tuple(pending["new_azs"])),
                "created_at": datetime.fromisoformat(data["created_at"]),
                "stored": StoredSettings.from_json(data.get("stored")),
                "security": Security.from_json(data.get("security")),
            }
        )

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)


@dataclass(frozen=True)
class ReplicationGroupSpec:
    id: str
    description: str
    engine: str
    engine_version: str
    node_type: str
    members: tuple[str, ...]  # member cache cluster ids; the primary first at creation
    primary_cluster_id: str
    created_at: datetime
    port: int | None = None
    automatic_failover: bool = False
    multi_az: bool = False
    tags: Tags = ()
    deleting: bool = False
    retain_primary_cluster: bool = False
    snapshot_retention_limit: int = 0
    snapshot_window: str | None = None
    # TestFailover calls so far; the reconciler runs one Sentinel failover for each it has not yet run.
    failover_requests: int = 0
    # The cache parameter group of every member (each member's spec carries the same name).
    parameter_group: str | None = None
    # The member automatic snapshots are taken on (SnapshottingClusterId); None: the default choice.
    snapshotting_cluster_id: str | None = None
    # What the members show (each member's spec carries a copy, as with the parameter group).
    stored: StoredSettings = StoredSettings()
    # The cache subnet group of every member (None: ``default``); its Sentinels run there too.
    subnet_group: str | None = None
    # AtRestEncryptionEnabled and KmsKeyId, fixed at creation.
    encryption: AtRest = field(default_factory=AtRest)
    # TLS, AUTH token (hashes only) and user group; every member's nodes follow it.
    security: Security = NONE

    @property
    def snapshotting_member(self) -> str | None:
        """The member SnapshottingClusterId chose, while it is still a member."""
        return self.snapshotting_cluster_id if self.snapshotting_cluster_id in self.members else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["security"] = self.security.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "members": tuple(data["members"]),
                "tags": tuple(tuple(t) for t in data["tags"]),
                "created_at": datetime.fromisoformat(data["created_at"]),
                "stored": StoredSettings.from_json(data.get("stored")),
                "encryption": AtRest.from_json(data.get("encryption")),
                "security": Security.from_json(data.get("security")),
            }
        )

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)


@dataclass(frozen=True)
class CacheParameterGroupSpec:
    """A customer's parameter group: its family and the values set in it (defaults are never stored)."""

    name: str
    family: str
    description: str
    parameters: tuple[tuple[str, str], ...] = ()  # (name, value) set by the user, sorted by name
    tags: Tags = ()

    @property
    def id(self) -> str:
        return self.name

    @property
    def overrides(self) -> dict[str, str]:
        return dict(self.parameters)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "parameters": tuple(tuple(p) for p in data["parameters"]),
                "tags": tuple(tuple(t) for t in data["tags"]),
            }
        )

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)

    def with_parameters(self, values: dict[str, str]) -> Self:
        return replace(self, parameters=tuple(sorted(values.items())))


MANUAL = "manual"
AUTOMATED = "automated"


@dataclass(frozen=True)
class SnapshotSpec:
    """A snapshot as asked for, with what ElastiCache copies from its source at creation.

    The source's settings are copied here because a snapshot outlives its source (a final snapshot,
    a manual one): ``DescribeSnapshots`` and a restore read them from the snapshot alone.
    """

    name: str
    source: str  # MANUAL | AUTOMATED (SnapshotSource)
    engine: str
    engine_version: str
    node_type: str
    created_at: datetime  # when it was asked for (for an automatic one: the scheduler's time)
    replication_group_id: str | None = None  # a replication group's snapshot
    replication_group_description: str | None = None
    cache_cluster_id: str | None = None  # a standalone cluster's, or the member CreateSnapshot named
    final: bool = False  # FinalSnapshotIdentifier: taken from the primary before the source goes
    copy_of: str | None = None  # CopySnapshot: the source snapshot, whose file is copied
    port: int | None = None
    parameter_group: str | None = None
    preferred_az: str | None = None
    cluster_created_at: datetime | None = None
    snapshot_retention_limit: int = 0
    snapshot_window: str | None = None
    automatic_failover: bool = False
    num_cache_nodes: int = 1
    # The source group's shard at creation: its replica count and AZs (ShowNodeGroupConfig).
    primary_az: str | None = None
    replica_azs: tuple[str, ...] = ()
    tags: Tags = ()
    deleting: bool = False
    # The source's maintenance window, topic and minor-upgrade setting, shown as the source showed them.
    stored: StoredSettings = StoredSettings()
    # The source's at-rest encryption; kms_key_id is the key that wraps this snapshot's data key.
    encryption: AtRest = field(default_factory=AtRest)

    @property
    def id(self) -> str:
        return self.name

    @property
    def source_id(self) -> str:
        """The group or cluster the snapshot was taken from (its events are that resource's)."""
        return self.replication_group_id or self.cache_cluster_id or self.name

    @property
    def source_type(self) -> str:
        return "replication-group" if self.replication_group_id else "cache-cluster"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["cluster_created_at"] = self.cluster_created_at.isoformat() if self.cluster_created_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        created = data.get("cluster_created_at")
        return cls(
            **{
                **data,
                "replica_azs": tuple(data.get("replica_azs", ())),
                "tags": tuple(tuple(t) for t in data["tags"]),
                "stored": StoredSettings.from_json(data.get("stored")),
                "encryption": AtRest.from_json(data.get("encryption")),
                "created_at": datetime.fromisoformat(data["created_at"]),
                "cluster_created_at": datetime.fromisoformat(created) if created else None,
            }
        )

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)


def merge_tags(current: Tags, added: Tags) -> Tags:
    """Tags with the same key are replaced, as AddTagsToResource does."""
    merged = dict(current)
    merged.update(added)
    return tuple(merged.items())


def remove_tags(current: Tags, keys: set[str]) -> Tags:
    return tuple((k, v) for k, v in current if k not in keys)


@dataclass(frozen=True)
class Export:
    """One RDB export (CopySnapshot with TargetBucket): snapshot ``source`` to ``bucket``/``key``."""

    source: str
    bucket: str
    key: str
    requested_at: str

    @property
    def id(self) -> str:
        return f"{self.bucket}/{self.key}"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "bucket": self.bucket, "key": self.key, "requested_at": self.requested_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**data)
