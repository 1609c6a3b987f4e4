"""The reconciler: for each resource, observe again, plan purely, execute, record status.

Level-triggered: a pass never asks what changed, only how reality differs from the spec. A pass that
took steps is followed at once by another, a pass still waiting (a replica syncing) comes back soon,
and every resource is looked at again each ``resync_interval`` so that a killed node is restarted
even when nobody called the API.

Snapshots are resources too (``control.snapshots`` does their work). While one is being taken, its
source shows ``snapshotting``: the planners see that status as ``available`` and a pass writes it
back on top of what they decide, so their rules stay as they are. A group or cluster being deleted
waits for its final snapshot, and one whose restore failed is left alone until it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from cachefleet.control import observe
from cachefleet.control.actions import Plan
from cachefleet.control.execute import Executor
from cachefleet.control.planners import cluster as cluster_planner
from cachefleet.control.planners import group as group_planner
from cachefleet.control.planners import params
from cachefleet.control.queue import KeyedQueue
from cachefleet.control.snapshots import SnapshotWorker
from cachefleet.hosts.base import Host
from cachefleet.model import status as st
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, RestoreFailed, Retry
from cachefleet.model.status import CREATE_FAILED, ClusterStatus, GroupStatus, SnapshotStatus
from cachefleet.store.records import (
    CLUSTER,
    EXPORT,
    GROUP,
    PARAMETER_GROUP,
    SNAPSHOT,
    Cluster,
    Snapshot,
    effective_parameters,
    find_cluster,
    find_export,
    find_group,
    find_snapshot,
    parameter_group_users,
    snapshots_of,
)
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (kind, id)
_S = TypeVar("_S", ClusterStatus, GroupStatus)
Generations = dict[Key, int]  # the spec generation each planned resource had when read

# A converging resource is looked at again soon: 10 ms at first (a fresh replica syncs in ~30 ms),
# backing off to 200 ms while it keeps waiting (for a Sentinel failover, say), to spare the CPU.
WAITING_DELAY = 0.01
MAX_WAITING_DELAY = 0.2
FAST_WAITS = 5  # looks at the shortest delay before backing off
MAX_BACKOFF = 5.0
WORKERS = 4
# A snapshot that no node could be saved for in this long is failed rather than left in creating.
SNAPSHOT_DEADLINE = timedelta(hours=1)


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        host: Host,
        executor: Executor,
        credentials: Credentials,
        address: str,
        clock: Callable[[], datetime],
        resync_interval: float,
        snapshots: SnapshotWorker | None = None,
    ) -> None:
        self._store = store
        self._host = host
        self._executor = executor
        self._credentials = credentials
        self._address = address
        self._clock = clock
        self._resync_interval = resync_interval
        self._snapshots = snapshots
        self._queue: KeyedQueue[Key] = KeyedQueue()
        self._failures: dict[Key, int] = {}
        self._waits: dict[Key, int] = {}  # consecutive passes that found the resource still converging
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self, kind: str, resource_id: str) -> None:
        """Store listener: may be called from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put, (kind, resource_id))

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
        try:
            while True:
                self._enqueue_all()
                await asyncio.sleep(self._resync_interval)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _enqueue_all(self) -> None:
        for kind in (GROUP, CLUSTER, SNAPSHOT, EXPORT):
            for record in self._store.records(kind):
                self._queue.put((kind, record.id))

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                delay = await self._pass(key)
                self._failures.pop(key, None)
            except Retry as exc:
                delay = exc.delay
                log.info("%s %s: %s", *key, exc.reason)
            except RestoreFailed as exc:
                delay = None
                self._restore_failed(key, exc)
            except Fatal as exc:
                delay = None
                self._fail(key, exc.reason)
            except Exception:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(0.1 * 2**failures, MAX_BACKOFF)
                log.exception("reconciling %s %s failed (attempt %d)", *key, failures)
            finally:
                self._queue.done(key)
            if delay is not None:
                self._queue.put_later(key, delay)

    async def _pass(self, key: Key) -> float | None:
        kind, resource_id = key
        if kind == PARAMETER_GROUP:
            # A changed parameter group: every cluster and group using it looks at its nodes again.
            for cluster in parameter_group_users(self._store, resource_id):
                group_id = cluster.spec.replication_group_id
                self._queue.put((GROUP, group_id) if group_id else (CLUSTER, cluster.spec.id))
            return None
        if kind == SNAPSHOT:
            return await self._snapshot_pass(resource_id)
        if kind == EXPORT:
            return await self._export_pass(resource_id)
        planned = await (self._plan_group(resource_id) if kind == GROUP else self._plan_cluster(resource_id))
        if planned is None:
            return None
        plan, generations = planned
        if plan.actions:
            log.debug("%s %s: %s", kind, resource_id, ", ".join(type(a).__name__ for a in plan.actions))
            await self._executor.run(plan.actions)
        recorded = self._record(plan, generations)
        if plan.actions or not recorded:
            self._waits.pop(key, None)
            return 0.0  # look again at once: after steps, or when the spec changed while we looked
        if plan.converged:
            self._waits.pop(key, None)
            return None
        waits = self._waits[key] = self._waits.get(key, 0) + 1
        delay: float = min(WAITING_DELAY * 2 ** max(0, waits - FAST_WAITS), MAX_WAITING_DELAY)
        return delay

    async def _plan_cluster(self, cluster_id: str) -> tuple[Plan, Generations] | None:
        cluster = find_cluster(self._store, cluster_id)
        if cluster is None:
            return None
        if cluster.spec.replication_group_id:
            # Members are planned with their group, which knows the roles.
            self._queue.put((GROUP, cluster.spec.replication_group_id))
            return None
        taking = self._taking(cluster_id)
        if cluster.spec.deleting and taking:
            return Plan(), {}  # the final snapshot first, then the nodes go
        if not cluster.spec.deleting and cluster.status.status == st.RESTORE_FAILED:
            return None  # nothing to run: the seed was refused; DeleteCacheCluster cleans up
        keys = cluster_planner.node_keys(cluster.spec)
        observed = await observe.observe_nodes(
            self._host, keys, engine=cluster.spec.engine, address=self._address, credentials=self._credentials
        )
        spec = cluster.spec
        wanted, generations = self._wanted(spec.engine, spec.engine_version, spec.node_type, spec.parameter_group)
        plan = cluster_planner.plan(spec, _unbusy(cluster.status), observed, now=self._now(), wanted=wanted)
        if taking:
            plan = _snapshotting(plan, None, [cluster_id])
        generations[(CLUSTER, cluster_id)] = cluster.generation
        return plan, generations

    async def _plan_group(self, group_id: str) -> tuple[Plan, Generations] | None:
        group = find_group(self._store, group_id)
        if group is None:
            return None
        taking = self._taking(group_id)
        if group.spec.deleting and taking:
            return Plan(), {}  # the final snapshot first, then the nodes go
        clusters = [c for m in group.spec.members if (c := find_cluster(self._store, m)) is not None]
        if not group.spec.deleting and _seed_refused(group.status.status, clusters):
            return None  # nothing to run: the seed was refused; DeleteReplicationGroup cleans up
        members = {c.spec.id: (c.spec, _unbusy(c.status)) for c in clusters}
        observed = await observe.observe_group(
            self._host,
            group_id,
            list(members),
            engine=group.spec.engine,
            address=self._address,
            credentials=self._credentials,
        )
        spec = group.spec
        wanted, generations = self._wanted(spec.engine, spec.engine_version, spec.node_type, spec.parameter_group)
        plan = group_planner.plan(
            spec, _unbusy(group.status), members, observed, address=self._address, now=self._now(), wanted=wanted
        )
        if taking:
            plan = _snapshotting(plan, group_id, [s.status.node_cluster_id or "" for s in taking])
        generations[(GROUP, group_id)] = group.generation
        generations.update({(CLUSTER, c.spec.id): c.generation for c in clusters})
        return plan, generations

    def _wanted(
        self, engine: str, version: str, node_type: str, group_name: str | None
    ) -> tuple[params.Wanted, Generations]:
        """What the parameter group asks of the nodes, and its generation when it is a stored group."""
        group, values = effective_parameters(self._store, engine, version, group_name)
        generations: Generations = {}
        if group is not None and not group.is_default:
            generations[(PARAMETER_GROUP, group.spec.name)] = group.generation
        return params.wanted(engine, version, node_type, values), generations

    def _record(self, plan: Plan, generations: Generations) -> bool:
        """Write the statuses that changed, and the plan's events, in one transaction.

        Statuses are written only if no spec moved on since the pass read it (False otherwise). Events
        of a plan that took steps are written either way: they tell what was done (a deletion among
        them, after which there is no record left to compare).
        """
        with self._store.transaction():
            records = {key: self._store.get(*key) for key in generations}
            fresh = all(r is not None and r.generation == generations[key] for key, r in records.items())
            if fresh:
                for kind, statuses in ((CLUSTER, plan.cluster_statuses), (GROUP, plan.group_statuses)):
                    for resource_id, status in statuses.items():
                        record = records.get((kind, resource_id))
                        if record is not None and record.status != status.to_json():
                            self._store.put_status(kind, resource_id, status.to_json())
            if fresh or plan.actions:
                self._executor.record(plan.events)
        return fresh

    def _fail(self, key: Key, reason: str) -> None:
        kind, resource_id = key
        log.error("%s %s cannot converge: %s", kind, resource_id, reason)
        failed = (
            GroupStatus(CREATE_FAILED, message=reason)
            if kind == GROUP
            else ClusterStatus(CREATE_FAILED, message=reason)
        )
        self._store.put_status(kind, resource_id, failed.to_json())

    def _now(self) -> str:
        return self._clock().isoformat()

    # -- snapshots ---------------------------------------------------------------------------

    def _taking(self, source_id: str) -> list[Snapshot]:
        return [s for s in snapshots_of(self._store, source_id) if s.status.status == st.CREATING]

    def _event(self, source_id: str, source_type: str, message: str) -> None:
        self._store.add_event(source_id, source_type, message, self._clock())

    def _wake(self, keys: Iterable[tuple[str, str | None]]) -> None:
        for kind, resource_id in keys:
            if resource_id:
                self._queue.put((kind, resource_id))

    async def _snapshot_pass(self, name: str) -> float | None:
        snapshot = find_snapshot(self._store, name)
        if snapshot is None or self._snapshots is None:
            return None
        spec, status = snapshot.spec, snapshot.status
        sources = [(GROUP, spec.replication_group_id), (CLUSTER, spec.cache_cluster_id), (SNAPSHOT, spec.copy_of)]
        if spec.deleting:
            await asyncio.to_thread(self._snapshots.files.delete, name)
            with self._store.transaction():
                self._store.delete(SNAPSHOT, name)
                self._event(spec.source_id, spec.source_type, f"Snapshot {name} deleted")
            return None
        if status.status == st.CREATING:
            try:
                done = await self._snapshots.take(snapshot)
            except Retry as exc:
                requested = datetime.fromisoformat(status.requested_at) if status.requested_at else self._clock()
                if self._clock() - requested < SNAPSHOT_DEADLINE:
                    raise
                done = replace(status, status=st.FAILED, message=f"timed out: {exc.reason}")
            except Fatal as exc:
                done = replace(status, status=st.FAILED, message=exc.reason)
            with self._store.transaction():
                if find_snapshot(self._store, name) is None:
                    return None
                self._store.put_status(SNAPSHOT, name, done.to_json())
                self._event(spec.source_id, spec.source_type, _outcome(snapshot, done))
            self._wake(sources)
            return None
        if status.status in (st.AVAILABLE, st.COPYING, st.RESTORING):
            usage = self._snapshots.usage(name)
            if usage != status.status:
                self._store.put_status(SNAPSHOT, name, replace(status, status=usage).to_json())
        return None

    async def _export_pass(self, export_id: str) -> float | None:
        export = find_export(self._store, export_id)
        if export is None or self._snapshots is None:
            return None
        snapshot = find_snapshot(self._store, export.source)
        target = f"s3://{export.bucket}/{export.key}"
        try:
            stored = await self._snapshots.export(export)
            message = f"Snapshot {export.source} exported to {target} ({stored.size} bytes, sha256 {stored.sha256})"
        except Fatal as exc:
            message = f"Export of snapshot {export.source} to {target} failed: {exc.reason}"
        with self._store.transaction():
            self._store.delete(EXPORT, export_id)
            if snapshot is not None:
                self._event(snapshot.spec.source_id, snapshot.spec.source_type, message)
        self._wake([(SNAPSHOT, export.source)])
        return None

    def _restore_failed(self, key: Key, exc: RestoreFailed) -> None:
        """A refused seed: the new cluster ends in restore-failed (its group in create-failed)."""
        kind, resource_id = key
        log.error("%s %s: restore failed: %s", kind, resource_id, exc.reason)
        cluster = find_cluster(self._store, exc.cluster_id)
        seed = cluster.spec.seed_snapshot or cluster.spec.seed_object if cluster else None
        message = f"Restore from {seed} failed: {exc.reason}"
        with self._store.transaction():
            if kind == GROUP:
                group = find_group(self._store, resource_id)
                if group is None:
                    return
                failed_group = replace(group.status, status=CREATE_FAILED, message=message)
                self._store.put_status(GROUP, resource_id, failed_group.to_json())
                for member in group.spec.members:
                    found = find_cluster(self._store, member)
                    if found is not None:
                        failed = replace(found.status, status=st.RESTORE_FAILED, message=message)
                        self._store.put_status(CLUSTER, member, failed.to_json())
                self._event(exc.cluster_id, CLUSTER, _restore_message(exc.cluster_id, exc.reason))
                self._event(resource_id, GROUP, f"Failed to create replication group {resource_id}: {message}")
            elif cluster is not None:
                failed_cluster = ClusterStatus(st.RESTORE_FAILED, message=message)
                self._store.put_status(CLUSTER, resource_id, failed_cluster.to_json())
                self._event(resource_id, CLUSTER, _restore_message(resource_id, exc.reason))
        if cluster is not None:
            self._wake([(SNAPSHOT, cluster.spec.seed_snapshot)])


def _unbusy(status: _S) -> _S:
    """What the planners see of a source being snapshotted: ``available``."""
    return replace(status, status=st.AVAILABLE) if status.status == st.SNAPSHOTTING else status


def _snapshotting(plan: Plan, group_id: str | None, clusters: Iterable[str]) -> Plan:
    """The plan's statuses with ``snapshotting`` where they say ``available``: the group (or the
    standalone cluster) being saved, and the member whose node is."""
    groups = dict(plan.group_statuses)
    if group_id is not None and group_id in groups and groups[group_id].status == st.AVAILABLE:
        groups[group_id] = replace(groups[group_id], status=st.SNAPSHOTTING)
    statuses = dict(plan.cluster_statuses)
    for cluster_id in clusters:
        if cluster_id in statuses and statuses[cluster_id].status == st.AVAILABLE:
            statuses[cluster_id] = replace(statuses[cluster_id], status=st.SNAPSHOTTING)
    return replace(plan, group_statuses=groups, cluster_statuses=statuses)


def _seed_refused(group_status: str, members: list[Cluster]) -> bool:
    return group_status == CREATE_FAILED and any(m.status.status == st.RESTORE_FAILED for m in members)


def _restore_message(cluster_id: str, reason: str) -> str:
    return f"Restore from snapshot failed for cache cluster {cluster_id}: {reason}"


def _outcome(snapshot: Snapshot, done: SnapshotStatus) -> str:
    spec = snapshot.spec
    of = (
        f"replication group with ID '{spec.replication_group_id}'"
        if spec.replication_group_id
        else f"cache cluster with ID '{spec.cache_cluster_id}'"
    )
    if spec.copy_of is not None:
        if done.status == st.AVAILABLE:
            return f"Snapshot {spec.name} copied from snapshot {spec.copy_of}"
        return f"Copy of snapshot {spec.copy_of} to {spec.name} failed: {done.message}"
    if done.status == st.AVAILABLE:
        return f"Snapshot succeeded for snapshot with ID '{spec.name}' of {of}"
    return f"Snapshot failed for snapshot with ID '{spec.name}' of {of}: {done.message}"
