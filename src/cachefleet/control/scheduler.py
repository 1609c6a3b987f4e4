"""Automatic snapshots: one a day per group or standalone Redis cluster, within its SnapshotWindow.

The scheduler is a client of the desired state, like the API: each tick it asks for the snapshots
that are due (``automatic.<id>-YYYY-MM-DD-HH-MM``, taken by the reconciler like any other) and marks
for deletion the automatic snapshots that outlived their source's ``SnapshotRetentionLimit`` (all
of them once the source is gone, as ElastiCache deletes a cluster's automatic backups with it).

Its clock is injected: the composition root passes the real one, or one a test moves forward. Only
schedule decisions (which window, which name, which age) use it; deadlines use real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from cachefleet.model import snapshots as sn
from cachefleet.model.errors import CacheFleetError
from cachefleet.model.lifecycle import Event
from cachefleet.model.specs import AUTOMATED, SnapshotSpec
from cachefleet.model.status import ClusterState, GroupState, SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS, SNAPSHOTS
from cachefleet.store.records import (
    all_snapshots,
    find_cluster,
    find_group,
    find_snapshot,
    pick_member,
    request_snapshot,
    snapshots_of,
)
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks at the schedule


class SnapshotScheduler:
    def __init__(
        self,
        store: Store,
        *,
        schedule_clock: Callable[[], datetime],
        clock: Callable[[], datetime],
        interval: float = TICK,
    ) -> None:
        self._store = store
        self._schedule_clock = schedule_clock
        self._clock = clock
        self._interval = interval

    async def run(self) -> None:
        # A tick decodes every group, cluster and snapshot. What it decides depends on them and on the
        # minute only (windows, names and retention are in minutes or coarser), so it is skipped
        # while neither changed: at 200 idle groups the ticks were a tenth of the server's CPU.
        last: tuple[object, ...] | None = None
        while True:
            seen = (self._store.version(), self._schedule_clock().replace(second=0, microsecond=0))
            if seen != last:
                try:
                    await asyncio.to_thread(self.tick)
                    last = seen  # its own writes change the version: the next tick looks again
                except Exception:
                    log.exception("automatic snapshot scheduling failed")
            await asyncio.sleep(self._interval)

    def tick(self) -> None:
        now = self._schedule_clock()
        for group in GROUPS.many(self._store, _keeping_snapshots(self._store, GROUPS.name)):
            spec = group.spec
            if spec.snapshot_retention_limit == 0 or spec.deleting or group.status.status != GroupState.AVAILABLE:
                continue
            name = self._due(spec.id, spec.snapshot_window, now)
            if name is not None:
                members = [c.spec for m in spec.members if (c := find_cluster(self._store, m))]
                primary = group.status.primary_cluster_id or spec.primary_cluster_id
                wanted = sn.of_group(name, spec, members, primary, source=AUTOMATED, created_at=now)
                self._request(wanted, pick_member(self._store, group, spec.snapshotting_member))
        for cluster in CLUSTERS.many(self._store, _keeping_snapshots(self._store, CLUSTERS.name)):
            spec_c = cluster.spec
            if (
                spec_c.engine == "memcached"
                or spec_c.replication_group_id
                or spec_c.snapshot_retention_limit == 0
                or spec_c.deleting
                or cluster.status.status != ClusterState.AVAILABLE
            ):
                continue
            name = self._due(spec_c.id, spec_c.snapshot_window, now)
            if name is not None:
                self._request(sn.of_cluster(name, spec_c, source=AUTOMATED, created_at=now), spec_c.id)
        self._prune(now)

    def _due(self, source_id: str, window: str | None, now: datetime) -> str | None:
        """The name of the automatic snapshot of ``source_id`` due now, if one is."""
        taken = [s.spec.created_at for s in snapshots_of(self._store, source_id) if s.spec.source == AUTOMATED]
        if sn.due(window, now, taken) is None:
            return None
        name = sn.automatic_name(source_id, now)
        return None if find_snapshot(self._store, name) is not None else name

    def _request(self, spec: SnapshotSpec, node: str) -> None:
        status = SnapshotStatus(SnapshotState.CREATING, requested_at=self._clock().isoformat(), node_cluster_id=node)
        try:
            request_snapshot(self._store, spec, status)
        except CacheFleetError as exc:  # the source changed meanwhile: the next tick looks again
            log.info("automatic snapshot %s not taken: %s", spec.name, exc.message)
            return
        log.info("automatic snapshot %s requested", spec.name)

    def _prune(self, now: datetime) -> None:
        for snapshot in all_snapshots(self._store):
            spec = snapshot.spec
            done = snapshot.status.status in (SnapshotState.AVAILABLE, SnapshotState.FAILED)
            if spec.source != AUTOMATED or spec.deleting or not done:
                continue
            if spec.replication_group_id:
                group = find_group(self._store, spec.replication_group_id)
                retention = group.spec.snapshot_retention_limit if group and not group.spec.deleting else None
            else:
                cluster = find_cluster(self._store, spec.cache_cluster_id or "")
                retention = cluster.spec.snapshot_retention_limit if cluster and not cluster.spec.deleting else None
            if retention is not None and not sn.expired(spec.created_at, retention, now):
                continue
            with self._store.transaction():
                SNAPSHOTS.put_spec(self._store, spec.name, replace(spec, deleting=True))
                statuses.change(self._store, SNAPSHOTS, spec.name, Event.DELETE)
                self._store.add_event(
                    spec.source_id,
                    spec.source_type,
                    f"Automatic snapshot {spec.name} deleted: older than the retention limit"
                    if retention is not None
                    else f"Automatic snapshot {spec.name} deleted with its source",
                    self._clock(),
                )


def _keeping_snapshots(store: Store, kind: str) -> list[str]:
    """The ids of the groups or clusters that keep automatic snapshots (``SnapshotRetentionLimit``
    above 0), chosen by SQLite: most keep none, and decoding every one on each tick slowed creations
    at 200 groups in proportion to the fleet."""
    return store.ids_with(kind, "spec", "snapshot_retention_limit")
