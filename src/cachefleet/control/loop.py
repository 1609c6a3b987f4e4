"""The reconciler: for each resource, observe again, plan purely, execute, record status.

Level-triggered: a pass never asks what changed, only how reality differs from the spec. A pass that
took steps is followed at once by another, a pass still waiting (a replica syncing) comes back soon,
and every resource is looked at again each ``resync_interval`` so that a killed node is restarted
even when nobody called the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from cachefleet.control import observe
from cachefleet.control.actions import Plan
from cachefleet.control.execute import Executor
from cachefleet.control.planners import cluster as cluster_planner
from cachefleet.control.planners import group as group_planner
from cachefleet.control.planners import params
from cachefleet.control.queue import KeyedQueue
from cachefleet.hosts.base import Host
from cachefleet.model.errors import Fatal, Retry
from cachefleet.model.status import CREATE_FAILED, ClusterStatus, GroupStatus
from cachefleet.store.records import (
    CLUSTER,
    GROUP,
    PARAMETER_GROUP,
    effective_parameters,
    find_cluster,
    find_group,
    parameter_group_users,
)
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (kind, id)
Generations = dict[Key, int]  # the spec generation each planned resource had when read

WAITING_DELAY = 0.05  # a converging resource is looked at this often (a sync takes ~0.1-0.5 s)
MAX_BACKOFF = 5.0
WORKERS = 4


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        host: Host,
        executor: Executor,
        credentials: observe.Credentials,
        address: str,
        clock: Callable[[], datetime],
        resync_interval: float,
    ) -> None:
        self._store = store
        self._host = host
        self._executor = executor
        self._credentials = credentials
        self._address = address
        self._clock = clock
        self._resync_interval = resync_interval
        self._queue: KeyedQueue[Key] = KeyedQueue()
        self._failures: dict[Key, int] = {}
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
        for kind in (GROUP, CLUSTER):
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
        planned = await (self._plan_group(resource_id) if kind == GROUP else self._plan_cluster(resource_id))
        if planned is None:
            return None
        plan, generations = planned
        if plan.actions:
            await self._executor.run(plan.actions)
        recorded = self._record(plan, generations)
        if plan.actions or not recorded:
            return 0.0  # look again at once: after steps, or when the spec changed while we looked
        return None if plan.converged else WAITING_DELAY

    async def _plan_cluster(self, cluster_id: str) -> tuple[Plan, Generations] | None:
        cluster = find_cluster(self._store, cluster_id)
        if cluster is None:
            return None
        if cluster.spec.replication_group_id:
            # Members are planned with their group, which knows the roles.
            self._queue.put((GROUP, cluster.spec.replication_group_id))
            return None
        keys = cluster_planner.node_keys(cluster.spec)
        observed = await observe.observe_nodes(
            self._host, keys, engine=cluster.spec.engine, address=self._address, credentials=self._credentials
        )
        spec = cluster.spec
        wanted, generations = self._wanted(spec.engine, spec.engine_version, spec.node_type, spec.parameter_group)
        plan = cluster_planner.plan(spec, cluster.status, observed, now=self._now(), wanted=wanted)
        generations[(CLUSTER, cluster_id)] = cluster.generation
        return plan, generations

    async def _plan_group(self, group_id: str) -> tuple[Plan, Generations] | None:
        group = find_group(self._store, group_id)
        if group is None:
            return None
        clusters = [c for m in group.spec.members if (c := find_cluster(self._store, m)) is not None]
        members = {c.spec.id: (c.spec, c.status) for c in clusters}
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
            spec, group.status, members, observed, address=self._address, now=self._now(), wanted=wanted
        )
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
