"""The reconciler: for each resource, observe again, plan purely, execute, record status.

Level-triggered: a pass never asks what changed, only how reality differs from the spec. A pass that
took steps is followed at once by another, a pass still waiting (a replica syncing) comes back soon,
and a converged one comes back when something wakes it: a change through the API (``notify``), a
process exit (``control.exits``), a Sentinel event (``control.sentinel_watch``), or a time its plan
names (``Plan.revisit``: a certificate coming due). Every resource is also looked at again each
``resync_interval``, a slow safety net for whatever sends no signal or whose signal was missed; that
sweep is spread over the interval in slices (``resync_slices``), so its cost does not come at once.
The first sweep, at start, takes everything at once: the passes it starts adopt running processes and
watch their exits and Sentinels.

What a resource kind does is its registration's (``control.kinds``); this loop is the same for all:
a keyed queue (one pass per resource at a time), the order of a pass (load, observe, plan, execute,
record through ``store.statuses``) and what happens when a pass fails:

- ``Retry``: the step cannot be done yet; look again after the delay it names.
- ``Fatal`` while the resource is being created, where its lifecycle has a failed-creation status
  (``create-failed`` for a replication group): that status, with an event. A failed seed
  (``RestoreFailed``) is its kind's to record (``restore-failed``).
- ``Fatal`` otherwise (an ``available`` group whose node cannot be restarted, say): the status stays,
  an event says what failed (once per reason), and the pass is tried again with backoff
  (``RETRY_BACKOFF``). A plan ``blocked`` by something only time can change (a node's port held by
  another process) is treated alike: its events once, then backoff (``BLOCKED_BACKOFF``).
- any other exception is a bug or a passing fault: logged, and tried again with a short backoff.

A resource in backoff is left out of the periodic resync until its time comes; a change through
the API (``notify``) or any other wake ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cachefleet.control.actions import Action, Event, Plan, ResourceKey
from cachefleet.control.kinds.base import Generations, Kind, PlannedKind, WorkerKind
from cachefleet.control.queue import KeyedQueue
from cachefleet.model.errors import Fatal, RestoreFailed, Retry
from cachefleet.model.lifecycle import Event as Change
from cachefleet.store import statuses
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

# A converging resource is looked at again soon: after a quarter of the time it has waited so far,
# at least 10 ms (a fresh replica syncs in ~30 ms) and at most 200 ms (a Sentinel failover takes a
# second or two). Proportional, not by the number of looks: a creation's group is woken by many events
# that do not end its wait (each Sentinel's +slave, +sentinel), and counted as looks they had grown the
# delay to 160-200 ms by the time the last condition held (a creation's log: available 0.1-0.16 s
# after the last Sentinel event).
WAITING_DELAY = 0.01
MAX_WAITING_DELAY = 0.2
WAIT_FRACTION = 0.25


def waiting_delay(waited: float) -> float:
    """Pure: how long a resource that has waited ``waited`` seconds on something outside waits
    before its next look."""
    return min(max(WAITING_DELAY, waited * WAIT_FRACTION), MAX_WAITING_DELAY)


WORKERS = 4

# The resync queues its resources in slices, one slice at most every this many seconds.
MIN_SLICE_PAUSE = 0.1


def resync_slices(count: int, interval: float) -> tuple[int, float]:
    """Pure: in how many slices a sweep queues ``count`` resources over ``interval`` seconds, and the
    pause after each: one resource per slice while the pauses stay at least ``MIN_SLICE_PAUSE``,
    larger slices beyond that (none to queue: one empty slice, a whole interval)."""
    slices = max(1, min(count, int(interval / MIN_SLICE_PAUSE)))
    return slices, interval / slices


@dataclass(frozen=True)
class Backoff:
    first: float
    cap: float

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1`` (``attempt`` >= 1): doubling from ``first`` up to ``cap``."""
        return float(min(self.first * 2 ** max(0, attempt - 1), self.cap))


# A failure after creation: 1 s, 2 s, 4 s... up to a minute between attempts.
RETRY_BACKOFF = Backoff(1.0, 60.0)
# A blocked plan: sooner, since the whole resource waits with it (a group with one member whose
# port is held is still looked at every 10 s at least, and the member is back soon after the port frees).
BLOCKED_BACKOFF = Backoff(0.5, 10.0)
# An unexpected exception: 0.2 s up to 5 s.
ERROR_BACKOFF = Backoff(0.2, 5.0)


class Effects(Protocol):
    """What gives a plan's actions effect (``control.execute.Executor``)."""

    async def run(self, actions: Sequence[Action]) -> None: ...


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        executor: Effects,
        kinds: Iterable[Kind],
        queue: KeyedQueue[ResourceKey],
        clock: Callable[[], datetime],
        resync_interval: float,
        retry_backoff: Backoff = RETRY_BACKOFF,
        blocked_backoff: Backoff = BLOCKED_BACKOFF,
        error_backoff: Backoff = ERROR_BACKOFF,
    ) -> None:
        self._store = store
        self._executor = executor
        self._kinds: dict[str, Kind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"kind {kind.name} registered twice")
            self._kinds[kind.name] = kind
        self._records = {name: kind.records for name, kind in self._kinds.items()}
        self._queue = queue
        self._clock = clock
        self._resync_interval = resync_interval
        self._retry_backoff = retry_backoff
        self._blocked_backoff = blocked_backoff
        self._error_backoff = error_backoff
        self._errors: dict[ResourceKey, int] = {}  # consecutive passes that raised unexpectedly
        self._retries: dict[ResourceKey, int] = {}  # consecutive passes that failed (Fatal) or were blocked
        self._reported: dict[ResourceKey, tuple[str, ...]] = {}  # the failure last told in an event
        self._held: dict[ResourceKey, float] = {}  # in backoff until this loop time: no resync before
        self._waiting: dict[ResourceKey, float] = {}  # since when (loop time) passes find it still converging
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self, kind: str, resource_id: str) -> None:
        """Store listener (a spec changed): may be called from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.wake, (kind, resource_id))

    def wake(self, key: ResourceKey) -> None:
        """Queue the resource now, ending its backoff: something about it changed."""
        self._held.pop(key, None)
        self._queue.put(key)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
        try:
            self.resync()  # at start, everything at once
            await asyncio.sleep(self._resync_interval)
            while True:
                await self._sweep()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def resync(self) -> None:
        """Queue every resource of every kind that resyncs, except those waiting out a backoff."""
        self._put_unheld(self._resyncing())

    async def _sweep(self) -> None:
        """One resync spread over the interval: the resources listed now, queued slice by slice."""
        keys = self._resyncing()
        slices, pause = resync_slices(len(keys), self._resync_interval)
        for i in range(slices):
            self._put_unheld(keys[i * len(keys) // slices : (i + 1) * len(keys) // slices])
            await asyncio.sleep(pause)

    def _resyncing(self) -> list[ResourceKey]:
        return [(name, key) for name, kind in self._kinds.items() for key in kind.resync_ids(self._store)]

    def _put_unheld(self, keys: Iterable[ResourceKey]) -> None:
        now = asyncio.get_running_loop().time()
        for key in keys:
            if self._held.get(key, 0.0) <= now:
                self._queue.put(key)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                delay = await self.reconcile(key)
            finally:
                self._queue.done(key)
            if delay is not None:
                self._queue.put_later(key, delay)

    async def reconcile(self, key: ResourceKey) -> float | None:
        """One pass over one resource, with its failures handled: the delay before the next, or None."""
        self._held.pop(key, None)
        try:
            delay = await self._pass(key)
            self._errors.pop(key, None)
        except Retry as exc:
            delay = exc.delay
            log.info("%s %s: %s", *key, exc.reason)
        except RestoreFailed as exc:
            delay = None
            log.error("%s %s: restore failed: %s", *key, exc.reason)
            self._restore_failed(key, exc)
        except Fatal as exc:
            delay = self._failed(key, exc.reason)
        except Exception:
            errors = self._errors[key] = self._errors.get(key, 0) + 1
            delay = self._error_backoff.delay(errors)
            log.exception("reconciling %s %s failed (attempt %d)", *key, errors)
        return delay

    async def _pass(self, key: ResourceKey) -> float | None:
        kind = self._kinds.get(key[0])
        if isinstance(kind, WorkerKind):
            return await kind.work(key[1])
        if isinstance(kind, PlannedKind):
            return await self._planned(kind, key)
        return None  # a kind nobody reconciles here (snapshots without a snapshot worker)

    async def _planned(self, kind: PlannedKind[Any, Any], key: ResourceKey) -> float | None:
        loaded = kind.load(key[1])
        if loaded is None:
            # Gone, or nothing to run: what the loop kept about it goes too (a resource created again
            # under the same id starts afresh, and a deleted one leaves no entry behind).
            for kept in (self._waiting, self._retries, self._reported):
                kept.pop(key, None)
            return None
        if isinstance(loaded, Plan):
            plan, generations = loaded, {}
        else:
            plan = kind.plan(loaded, await kind.observe(loaded))
            generations = loaded.generations
        if plan.actions:
            log.debug("%s %s: %s", *key, ", ".join(type(a).__name__ for a in plan.actions))
            await self._executor.run(plan.actions)
        recorded = self._record(plan, generations)
        if not plan.blocked:
            self._retries.pop(key, None)
            self._reported.pop(key, None)
        if plan.actions or not recorded:
            self._waiting.pop(key, None)
            return 0.0  # look again at once: after steps, or when the spec changed while we looked
        if plan.blocked:
            return self._blocked(key, plan.blocked)
        if plan.converged:
            self._waiting.pop(key, None)
            return plan.revisit
        now = asyncio.get_running_loop().time()
        return waiting_delay(now - self._waiting.setdefault(key, now))

    def _record(self, plan: Plan, generations: Generations) -> bool:
        """Write the plan's statuses (through the one writer) and its events, in one transaction.

        Statuses are written only if no spec moved on since the pass read it (False otherwise). Events
        of a plan that took steps are written either way: they tell what was done (a deletion among
        them, after which there is no record left to compare).
        """
        with self._store.transaction():
            fresh = statuses.record(self._store, plan.statuses, generations, self._records)
            if fresh or plan.actions:
                self._events(plan.events)
        return fresh

    def _events(self, events: Iterable[Event]) -> None:
        for event in events:
            self._store.add_event(event.source_id, event.source_type, event.message, self._clock())

    # -- failures ----------------------------------------------------------------------------

    def _blocked(self, key: ResourceKey, events: tuple[Event, ...]) -> float:
        """A plan waiting on something only time changes: its events once, then backoff."""
        messages = tuple(e.message for e in events)
        told = self._reported.get(key, ())
        if messages != told:
            self._events(e for e in events if e.message not in told)
            self._reported[key] = messages
        return self._backoff(key, self._blocked_backoff)

    def _failed(self, key: ResourceKey, reason: str) -> float | None:
        """A ``Fatal`` pass: a failed creation where the lifecycle has a status for it, else an event
        (once per reason) and another attempt with backoff, the status left as it is."""
        name, resource_id = key
        kind = self._kinds[name]
        resource = kind.records.find(self._store, resource_id)
        if resource is None:
            return None
        lifecycle = kind.records.lifecycle
        noun = lifecycle.noun.lower() if lifecycle is not None else name
        state = getattr(resource.status, "status", None)
        if lifecycle is not None and lifecycle.allows(state, Change.FAIL_CREATE):
            log.error("%s %s cannot be created: %s", name, resource_id, reason)
            with self._store.transaction():
                statuses.change(self._store, kind.records, resource_id, Change.FAIL_CREATE, message=reason)
                self._events([Event(resource_id, name, f"Failed to create {noun} {resource_id}: {reason}")])
            return None
        delay = self._backoff(key, self._retry_backoff)
        log.warning("%s %s: %s (attempt %d, again in %.0f s)", name, resource_id, reason, self._retries[key], delay)
        if self._reported.get(key) != (reason,):
            creating = lifecycle is not None and state == lifecycle.initial
            what = "create" if creating else "apply changes to"
            self._events([Event(resource_id, name, f"Failed to {what} {noun} {resource_id}: {reason}. Retrying")])
            self._reported[key] = (reason,)
        return delay

    def _backoff(self, key: ResourceKey, policy: Backoff) -> float:
        attempt = self._retries[key] = self._retries.get(key, 0) + 1
        delay = policy.delay(attempt)
        loop = asyncio.get_running_loop()
        self._held[key] = loop.time() + delay
        return delay

    def _restore_failed(self, key: ResourceKey, error: RestoreFailed) -> None:
        kind = self._kinds.get(key[0])
        if isinstance(kind, PlannedKind):
            kind.restore_failed(key[1], error)
