"""The agent's supervision of its nodes: started on request, restarted on its own when they die.

Processes are run by a ``LocalHost`` underneath (node directories, pidfiles, adoption checks, signals
through pidfds): the agent adds what the control plane's reconciler does for local nodes, so that a
host keeps its nodes running while the control plane is down or cut off.

Each node that should run has a keeper task on the event loop, level-triggered: while the node
should run, if it is not running, restart it (after ``restart.backoff`` and as ``restart.decide``
says), then wait for it to exit. The wait is a pidfd registered with the event loop: it wakes at the
exit (about a millisecond after a ``kill -9``), costs nothing while the node runs, and works for a
process that is not the agent's child (one adopted after the agent itself restarted).

What should run is persisted (``agent.records``) before anything is started, so an agent that
restarts re-adopts its running nodes (``LocalHost.pid`` checks that a pidfile's PID is still the
node's) and restarts the others. Requests (start, stop, remove) and keepers meet in LocalHost's
per-node lock; a stop first marks the node as not wanted and ends its keeper, so the exit it causes
is never taken for a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from cachefleet.agent import restart
from cachefleet.agent.events import EventLog
from cachefleet.agent.records import Record, Records
from cachefleet.hosts.agent_api import EventKind
from cachefleet.hosts.base import ProcessSpec, RestartPolicy
from cachefleet.hosts.local import LocalHost
from cachefleet.model.nodes import NodeKey

log = logging.getLogger(__name__)

AskSentinels = Callable[[RestartPolicy], Awaitable[list[restart.Answer]]]


class Supervisor:
    def __init__(
        self,
        local: LocalHost,
        records: Records,
        events: EventLog,
        ask: AskSentinels,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = local
        self.events = events
        self._records = records
        self._ask = ask
        self._clock = clock
        self._wanted: dict[NodeKey, Record] = {}
        self._keepers: dict[NodeKey, asyncio.Task[None]] = {}

    # -- the agent's life ---------------------------------------------------------------------

    def boot(self) -> None:
        """Take up what the records say should run: adopt the live nodes, restart the others."""
        present = set(self.local.nodes())
        for key, record in self._records.load().items():
            if key not in present:
                # The node directory is gone (removed behind the agent's back): nothing to start from.
                log.warning("node %s has a record but no directory; forgetting it", key)
                self._records.delete(key)
                continue
            if record.run:
                self._wanted[key] = record
                self._keep(key, adopting=True)

    async def close(self) -> None:
        """Stop supervising (the agent exits); the nodes keep running in their own sessions."""
        keepers = list(self._keepers.values())
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        self._keepers.clear()

    def supervised(self, key: NodeKey) -> Record | None:
        return self._wanted.get(key)

    # -- requests -----------------------------------------------------------------------------

    async def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        record = Record(argv=spec.argv, restart=spec.restart, run=True)
        previous = self._wanted.get(key)
        # Recorded first: an agent that dies right after the spawn still knows the node should run.
        await asyncio.to_thread(self._records.put, key, record)
        self._wanted[key] = record
        before = self.local.pid(key)
        try:
            pid = await asyncio.to_thread(self.local.start, key, spec)
        except ValueError:  # a spec the host refuses (a bad file name): as if never asked
            await self._forget_start(key, previous)
            raise
        if pid != before:
            names = sorted([*spec.files, *spec.scripts])
            if names:
                self.events.emit(EventKind.FILES, key, names=names)
            self.events.emit(EventKind.STARTED, key, pid=pid)
        self._keep(key)
        return pid

    async def _forget_start(self, key: NodeKey, previous: Record | None) -> None:
        if previous is None:
            self._wanted.pop(key, None)
            await asyncio.to_thread(self._records.delete, key)
        else:
            self._wanted[key] = previous
            await asyncio.to_thread(self._records.put, key, previous)

    async def stop(self, key: NodeKey, timeout: float) -> None:  # noqa: ASYNC109 (the node's SIGTERM grace)
        record = self._wanted.pop(key, None)
        if record is not None:
            await asyncio.to_thread(self._records.put, key, replace(record, run=False))
        await self._unkeep(key)
        pid = self.local.pid(key)
        await asyncio.to_thread(self.local.stop, key, timeout)
        if pid is not None:
            self.events.emit(EventKind.EXITED, key, pid=pid, expected=True)

    async def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        """Write the spec's files and signal the node; its record takes the spec's argv and policy."""
        record = self._wanted.get(key)
        if record is not None:
            record = Record(argv=spec.argv, restart=spec.restart, run=True)
            await asyncio.to_thread(self._records.put, key, record)
            self._wanted[key] = record
        await asyncio.to_thread(self.local.reload, key, spec, signum)
        names = sorted([*spec.files, *spec.scripts])
        if names:
            self.events.emit(EventKind.FILES, key, names=names)

    async def remove(self, key: NodeKey) -> None:
        self._wanted.pop(key, None)
        await self._unkeep(key)
        await asyncio.to_thread(self._records.delete, key)
        pid = self.local.pid(key)
        await asyncio.to_thread(self.local.remove, key)
        if pid is not None:
            self.events.emit(EventKind.EXITED, key, pid=pid, expected=True)
        self.events.emit(EventKind.REMOVED, key)

    # -- keepers ------------------------------------------------------------------------------

    def _keep(self, key: NodeKey, *, adopting: bool = False) -> None:
        task = self._keepers.get(key)
        if task is None or task.done():
            self._keepers[key] = asyncio.get_running_loop().create_task(self._keeper(key, adopting))

    async def _unkeep(self, key: NodeKey) -> None:
        task = self._keepers.pop(key, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keeper(self, key: NodeKey, adopting: bool) -> None:
        quick_exits = 0  # exits in a row, each soon after its start
        delay = 0.0
        down_since: float | None = None
        try:
            while key in self._wanted:
                pid = self.local.pid(key)
                if pid is None:
                    down_since = down_since if down_since is not None else self._clock()
                    pid = await self._restart(key, down_since, delay)
                    if pid is None:
                        return
                elif adopting:
                    self.events.emit(EventKind.STARTED, key, pid=pid, adopted=True)
                adopting = False
                running_since = self._clock()
                await self._exit_of(key, pid)
                if key not in self._wanted:
                    return  # stopped on request: the stop reports the exit
                self.events.emit(EventKind.EXITED, key, pid=pid, expected=False)
                down_since = self._clock()
                # The first exit after a good run restarts at once; each quick one after it waits longer.
                quick_exits = quick_exits + 1 if down_since - running_since < restart.STABLE_RUN else 0
                delay = restart.backoff(quick_exits - 1)
        except asyncio.CancelledError:
            raise
        except Exception:  # a keeper must never die silently: the node would stay down unnoticed
            log.exception("supervising node %s failed", key)
            self.events.emit(EventKind.RESTART_FAILED, key, reason="the agent's supervision failed; see its log")

    async def _restart(self, key: NodeKey, down_since: float, delay: float) -> int | None:
        """Start the node again as ``restart.decide`` says; None once it is no longer wanted."""
        if delay > 0:
            self.events.emit(EventKind.WAITING, key, reason=f"it exited soon after its last start; backoff {delay:g} s")
            await asyncio.sleep(delay)
        failures = 0
        said = ""
        while (record := self._wanted.get(key)) is not None:
            running = self.local.pid(key)
            if running is not None:
                return running  # started meanwhile, by a request
            policy = record.restart
            answers = await self._ask(policy) if policy is not None and policy.sentinels else []
            me = (policy.address if policy is not None else "", self.local.port_of(key) or 0)
            decision = restart.decide(policy, me, answers, self._clock() - down_since)
            if isinstance(decision, restart.Wait):
                if decision.reason != said:
                    self.events.emit(EventKind.WAITING, key, reason=decision.reason)
                    said = decision.reason
                await asyncio.sleep(decision.delay)
                continue
            extra: tuple[str, ...] = ()
            replicaof = None
            if isinstance(decision, restart.StartAsReplica):
                host, port = decision.primary
                extra = ("--replicaof", host, str(port))
                replicaof = f"{host}:{port}"
            if key not in self._wanted:
                return None
            try:
                pid = await asyncio.to_thread(self.local.start, key, ProcessSpec(argv=record.argv + extra))
            except (OSError, ValueError, RuntimeError) as exc:
                failures += 1
                self.events.emit(EventKind.RESTART_FAILED, key, reason=str(exc))
                await asyncio.sleep(restart.backoff(failures))
                continue
            self.events.emit(EventKind.RESTARTED, key, pid=pid, replicaof=replicaof, reason=decision.reason)
            return pid
        return None

    async def _exit_of(self, key: NodeKey, pid: int) -> None:
        """Return once process ``pid`` (the node's) has exited."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            # The pidfd pins the process: make sure it is still the node's, not a reused PID.
            if self.local.pid(key) != pid:
                return
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)
