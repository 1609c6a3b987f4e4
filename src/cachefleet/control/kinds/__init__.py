"""The resource kinds the reconciler runs, one registration each (``control.kinds.base``)."""

from __future__ import annotations

from collections.abc import Sequence

from cachefleet.control.hosts import Drivers
from cachefleet.control.kinds.base import Kind, Services
from cachefleet.control.kinds.cluster import ClusterKind
from cachefleet.control.kinds.group import GroupKind
from cachefleet.control.kinds.host import HostKind
from cachefleet.control.kinds.parameter_group import ParameterGroupKind
from cachefleet.control.kinds.snapshot import ExportKind, SnapshotKind
from cachefleet.control.kinds.users import UserGroupKind, UserKind
from cachefleet.control.snapshots import SnapshotWorker

DEFAULT_LOST_AFTER = 30.0  # seconds a host may not answer before its nodes are replaced elsewhere


def standard(
    services: Services,
    snapshots: SnapshotWorker | None,
    drivers: Drivers | None = None,
    *,
    lost_after: float = DEFAULT_LOST_AFTER,
) -> Sequence[Kind]:
    """Every kind the server reconciles; snapshots and exports only with a snapshot worker, hosts
    only with the drivers that reach them."""
    kinds: list[Kind] = [GroupKind(services), ClusterKind(services), ParameterGroupKind(services)]
    kinds += [UserKind(services), UserGroupKind(services)]
    if drivers is not None:
        kinds.append(HostKind(services, drivers, lost_after=lost_after))
    if snapshots is not None:
        kinds += [SnapshotKind(services, snapshots), ExportKind(services, snapshots)]
    return kinds
