"""A group or cluster being snapshotted: what the planners see of it, and what is recorded.

While a snapshot is taken, its source shows ``snapshotting`` (the API wrote it at once). The
planners see that status as ``available`` (``unbusy``), so their rules stay as they are, and a pass
writes ``snapshotting`` back over what they decided (``snapshotting``) until the snapshot is stored.
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

from cachefleet.control.actions import Plan, Status
from cachefleet.model.status import ClusterState, ClusterStatus, GroupState, GroupStatus

GROUP = "replication-group"
CLUSTER = "cache-cluster"

_S = TypeVar("_S", ClusterStatus, GroupStatus)


def unbusy(status: _S) -> _S:
    """What the planners see of a source being snapshotted: ``available``."""
    if isinstance(status, GroupStatus):
        if status.status == GroupState.SNAPSHOTTING:
            return replace(status, status=GroupState.AVAILABLE)
    elif status.status == ClusterState.SNAPSHOTTING:
        return replace(status, status=ClusterState.AVAILABLE)
    return status


def snapshotting(plan: Plan, group_id: str | None, clusters: Iterable[str]) -> Plan:
    """The plan's statuses with ``snapshotting`` where they say ``available``: the group (or the
    standalone cluster) being saved, and the member whose node is."""
    statuses: dict[tuple[str, str], Status] = dict(plan.statuses)
    keys = [(CLUSTER, c) for c in clusters] + ([(GROUP, group_id)] if group_id is not None else [])
    for key in keys:
        status = statuses.get(key)
        if isinstance(status, GroupStatus) and status.status == GroupState.AVAILABLE:
            statuses[key] = replace(status, status=GroupState.SNAPSHOTTING)
        elif isinstance(status, ClusterStatus) and status.status == ClusterState.AVAILABLE:
            statuses[key] = replace(status, status=ClusterState.SNAPSHOTTING)
    return replace(plan, statuses=statuses)
