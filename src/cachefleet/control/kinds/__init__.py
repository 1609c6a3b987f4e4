"""The resource kinds the reconciler runs, one registration each (``control.kinds.base``)."""

from __future__ import annotations

from collections.abc import Sequence

from cachefleet.control.kinds.base import Kind, Services
from cachefleet.control.kinds.cluster import ClusterKind
from cachefleet.control.kinds.group import GroupKind
from cachefleet.control.kinds.parameter_group import ParameterGroupKind
from cachefleet.control.kinds.snapshot import ExportKind, SnapshotKind
from cachefleet.control.kinds.users import UserGroupKind, UserKind
from cachefleet.control.snapshots import SnapshotWorker


def standard(services: Services, snapshots: SnapshotWorker | None) -> Sequence[Kind]:
    """Every kind the server reconciles; snapshots and exports only with a snapshot worker."""
    kinds: list[Kind] = [GroupKind(services), ClusterKind(services), ParameterGroupKind(services)]
    kinds += [UserKind(services), UserGroupKind(services)]
    if snapshots is not None:
        kinds += [SnapshotKind(services, snapshots), ExportKind(services, snapshots)]
    return kinds
