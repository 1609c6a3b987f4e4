"""The kinds of resource the CLI waits on, and waiting for one to reach a status, like ``aws elasticache wait``.

One table row per kind says how to describe one resource and read its status, which error code
means it is gone, and which statuses end a wait in failure; every verb waits through ``wait_status``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType

from cachefleet.cli.connection import ElastiCache
from cachefleet.cli.context import CliState, emit, print_result
from cachefleet.cli.waiting import until_gone, wait_showing

Item = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    label: str  # "Replication group", in progress lines and messages
    answer: str  # the member of a Create/Modify/Delete answer that holds the resource
    describe: Callable[[ElastiCache], Callable[..., dict[str, Any]]]
    id_param: str  # the Describe call's parameter naming one resource
    items: str  # the list in the Describe answer
    status: str  # the status member of one item
    not_found: str  # the wire code of the NotFound error (the model's shape names differ for some)
    failed: frozenset[str]  # statuses from which waiting for "available" cannot succeed
    extra: tuple[tuple[str, Any], ...] = ()  # more Describe parameters (node info for clusters)

    def one(self, client: ElastiCache, resource_id: str) -> Item:
        answer = self.describe(client)(**{self.id_param: resource_id}, **dict(self.extra))
        item: Item = answer[self.items][0]
        return item


GROUP = Kind(
    label="Replication group",
    answer="ReplicationGroup",
    describe=lambda client: client.describe_replication_groups,
    id_param="ReplicationGroupId",
    items="ReplicationGroups",
    status="Status",
    not_found="ReplicationGroupNotFoundFault",
    failed=frozenset({"create-failed"}),
)
CLUSTER = Kind(
    label="Cache cluster",
    answer="CacheCluster",
    describe=lambda client: client.describe_cache_clusters,
    id_param="CacheClusterId",
    items="CacheClusters",
    status="CacheClusterStatus",
    not_found="CacheClusterNotFound",
    failed=frozenset({"create-failed", "restore-failed", "incompatible-network"}),
    extra=(("ShowCacheNodeInfo", True),),
)
SNAPSHOT = Kind(
    label="Snapshot",
    answer="Snapshot",
    describe=lambda client: client.describe_snapshots,
    id_param="SnapshotName",
    items="Snapshots",
    status="SnapshotStatus",
    not_found="SnapshotNotFoundFault",
    failed=frozenset({"failed"}),
)


def primary_of(group: Item) -> str | None:
    """The member cluster of a replication group whose node is the primary, as its description says."""
    for node_group in group.get("NodeGroups") or []:
        for member in node_group.get("NodeGroupMembers") or []:
            if member.get("CurrentRole") == "primary":
                return str(member["CacheClusterId"])
    return None


def wait_status(
    state: CliState,
    client: ElastiCache,
    kind: Kind,
    resource_id: str,
    *,
    target: str | None,
    timeout: float,
    read: Callable[[Item], str] | None = None,
) -> None:
    """Poll until the resource is ``target`` (``None``: until it is gone), showing its status.

    ``read`` turns a described item into the status shown and compared (default: its status member).
    """

    def status() -> str:
        item = kind.one(client, resource_id)
        return read(item) if read is not None else str(item[kind.status])

    wait_showing(
        until_gone(status, kind.not_found),
        label=f"{kind.label} {resource_id}",
        target=target,
        failed=kind.failed,
        timeout=timeout,
        interval=state.poll_interval,
        quiet=state.json,
    )


def settle(
    state: CliState,
    client: ElastiCache,
    kind: Kind,
    resource_id: str,
    answer: dict[str, Any],
    *,
    wait: bool,
    timeout: float,
    show: Callable[[Item], RenderableType],
    read: Callable[[Item], str] | None = None,
) -> Item | None:
    """After a call that starts work on a resource: with ``--no-wait`` print the call's answer; else
    wait until the resource is available and print it as it is then. Returns what was waited for."""
    if not wait:
        summary = f"{kind.label} {resource_id} is {answer[kind.answer][kind.status]}."
        print_result(state, answer, summary)
        return None
    wait_status(state, client, kind, resource_id, target="available", timeout=timeout, read=read)
    item = kind.one(client, resource_id)
    emit(state, {kind.answer: item}, lambda: show(item))
    return item


def remove(
    state: CliState,
    client: ElastiCache,
    kind: Kind,
    resource_id: str,
    answer: dict[str, Any],
    *,
    wait: bool,
    timeout: float,
) -> None:
    """After a Delete call: wait until the resource is gone unless ``--no-wait``; print the answer."""
    if wait:
        wait_status(state, client, kind, resource_id, target=None, timeout=timeout)
        print_result(state, answer, f"{kind.label} {resource_id} is deleted.")
    else:
        print_result(state, answer, f"{kind.label} {resource_id} is {answer[kind.answer][kind.status]}.")
