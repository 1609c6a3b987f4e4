"""Desired state: one frozen spec per resource kind, built once at the API edge.

Specs are what the user asked for. Everything the reconciler learns (ports, roles, health) lives in
the statuses of ``model.status``, never here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Self

Tags = tuple[tuple[str, str], ...]


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

    @property
    def num_nodes(self) -> int:
        return len(self.node_azs)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "node_azs": tuple(data["node_azs"]),
                "tags": tuple(tuple(t) for t in data["tags"]),
                "created_at": datetime.fromisoformat(data["created_at"]),
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "members": tuple(data["members"]),
                "tags": tuple(tuple(t) for t in data["tags"]),
                "created_at": datetime.fromisoformat(data["created_at"]),
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
