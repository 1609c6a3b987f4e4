"""Snapshots and their exports as reconciled kinds: the work itself is ``control.snapshots``' (files, BGSAVE).

A snapshot in ``creating`` is taken (or copied); one whose node cannot be saved for an hour fails.
A usable one shows ``copying`` or ``restoring`` while others read it. Each outcome is an event of
the snapshot's source, and wakes the source so that it leaves ``snapshotting``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from cachefleet.control.actions import ResourceKey
from cachefleet.control.kinds.base import Services, WorkerKind
from cachefleet.control.snapshots import SnapshotWorker
from cachefleet.model.errors import Fatal, Retry
from cachefleet.model.status import SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import EXPORTS, SNAPSHOTS
from cachefleet.store.records import CLUSTER, GROUP, SNAPSHOT, Snapshot

# A snapshot that no node could be saved for in this long is failed rather than left in creating.
SNAPSHOT_DEADLINE = timedelta(hours=1)
USABLE = (SnapshotState.AVAILABLE, SnapshotState.COPYING, SnapshotState.RESTORING)
# A snapshot others read is looked at again this often until they are done: nothing wakes it when a
# cluster seeded from it ends ``creating`` (a copy or an export that ends wakes it itself).
IN_USE_LOOK = 0.5


class SnapshotKind(WorkerKind):
    records = SNAPSHOTS

    def __init__(self, services: Services, worker: SnapshotWorker) -> None:
        self._services = services
        self._store = services.store
        self._worker = worker

    async def work(self, resource_id: str) -> float | None:
        snapshot = SNAPSHOTS.find(self._store, resource_id)
        if snapshot is None:
            return None
        spec, status = snapshot.spec, snapshot.status
        if spec.deleting:
            await asyncio.to_thread(self._worker.files.delete, spec.name)
            with self._store.transaction():
                self._store.delete(SNAPSHOT, spec.name)
                self._services.event(spec.source_id, spec.source_type, f"Snapshot {spec.name} deleted")
            return None
        if status.status == SnapshotState.CREATING:
            await self._take(snapshot)
        elif status.status in USABLE:
            usage = self._worker.usage(spec.name)
            if usage != status.status:
                statuses.write(self._store, SNAPSHOTS, spec.name, replace(status, status=usage))
            return None if usage == SnapshotState.AVAILABLE else IN_USE_LOOK
        return None

    async def _take(self, snapshot: Snapshot) -> None:
        spec, status = snapshot.spec, snapshot.status
        clock = self._services.clock
        try:
            done = await self._worker.take(snapshot)
        except Retry as exc:
            requested = datetime.fromisoformat(status.requested_at) if status.requested_at else clock()
            if clock() - requested < SNAPSHOT_DEADLINE:
                raise
            done = replace(status, status=SnapshotState.FAILED, message=f"timed out: {exc.reason}")
        except Fatal as exc:
            done = replace(status, status=SnapshotState.FAILED, message=exc.reason)
        with self._store.transaction():
            if not statuses.write(self._store, SNAPSHOTS, spec.name, done):
                return  # deleted meanwhile
            self._services.event(spec.source_id, spec.source_type, _outcome(snapshot, done))
        sources: list[tuple[str, str | None]] = [
            (GROUP, spec.replication_group_id),
            (CLUSTER, spec.cache_cluster_id),
            (SNAPSHOT, spec.copy_of),
        ]
        for kind, source_id in sources:
            if source_id:
                self._services.wake((kind, source_id))


class ExportKind(WorkerKind):
    """CopySnapshot with TargetBucket: the snapshot's file written to the export area, then the record goes."""

    records = EXPORTS

    def __init__(self, services: Services, worker: SnapshotWorker) -> None:
        self._services = services
        self._store = services.store
        self._worker = worker

    async def work(self, resource_id: str) -> float | None:
        export = EXPORTS.find(self._store, resource_id)
        if export is None:
            return None
        spec = export.spec
        snapshot = SNAPSHOTS.find(self._store, spec.source)
        target = f"s3://{spec.bucket}/{spec.key}"
        try:
            stored = await self._worker.export(spec)
            message = f"Snapshot {spec.source} exported to {target} ({stored.size} bytes, sha256 {stored.sha256})"
        except Fatal as exc:
            message = f"Export of snapshot {spec.source} to {target} failed: {exc.reason}"
        with self._store.transaction():
            self._store.delete(EXPORTS.name, resource_id)
            if snapshot is not None:
                self._services.event(snapshot.spec.source_id, snapshot.spec.source_type, message)
        source: ResourceKey = (SNAPSHOT, spec.source)
        self._services.wake(source)
        return None


def _outcome(snapshot: Snapshot, done: SnapshotStatus) -> str:
    spec = snapshot.spec
    of = (
        f"replication group with ID '{spec.replication_group_id}'"
        if spec.replication_group_id
        else f"cache cluster with ID '{spec.cache_cluster_id}'"
    )
    if spec.copy_of is not None:
        if done.status == SnapshotState.AVAILABLE:
            return f"Snapshot {spec.name} copied from snapshot {spec.copy_of}"
        return f"Copy of snapshot {spec.copy_of} to {spec.name} failed: {done.message}"
    if done.status == SnapshotState.AVAILABLE:
        return f"Snapshot succeeded for snapshot with ID '{spec.name}' of {of}"
    return f"Snapshot failed for snapshot with ID '{spec.name}' of {of}: {done.message}"
