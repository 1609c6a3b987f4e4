"""The effect side of the failover follower: subscriptions to every Sentinel, probes, resyncs.

``SentinelWatch`` holds one pub/sub connection (``PSUBSCRIBE *``) per Sentinel and feeds what they
publish to a ``follower.Follower``; it carries out the effects the follower answers with: probes of
nodes (``ROLE``), resyncs (``SENTINEL get-master-addr-by-name`` on every Sentinel, all groups
pipelined on one connection each), and re-points, through the ``on_repoint`` callback the owner
gives (the DNAT table, a VIP, a record). It runs until cancelled.

A subscription that breaks is reopened with a capped exponential backoff, and every reopened one is
followed by a resync of every group (events published meanwhile are lost). A Sentinel on a host
that vanished does not close the connection: each subscription is pinged, and one that has been
silent for ``dead_after`` seconds is dropped and reopened. ``reachable()`` (the Sentinels whose
subscription is live) is what a host's ``fencing.Fence`` counts.

Nothing here retries a command behind the caller's back (no redis-py retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cachefleet.endpoints.base import Address
from cachefleet.endpoints.follower import Effect, Follower, Probe, Repoint, Resync

log = logging.getLogger(__name__)

ProbeFn = Callable[[Address], Awaitable[bool]]
RepointFn = Callable[[Repoint], Awaitable[None]]


@dataclass(frozen=True)
class Timing:
    connect_timeout: float = 0.5
    command_timeout: float = 0.5
    ping_interval: float = 0.25  # a live subscription answers within this
    dead_after: float = 1.0  # a subscription silent this long is reopened
    backoff_first: float = 0.05
    backoff_max: float = 2.0
    probe_interval: float = 0.005  # between two ROLE probes of a node that is not master yet
    resync_interval: float = 10.0  # the safety net: every group, every Sentinel


async def role_is_master(
    address: Address,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 0.3,  # noqa: ASYNC109 (connect and reply together)
) -> bool:
    """Whether the node at ``address`` answers ``ROLE`` with ``master``; False when it answers
    otherwise, refuses, or cannot be reached in ``timeout``. Raw RESP, one short connection."""
    commands = b""
    if password is not None:
        auth = [b"AUTH", *([username.encode()] if username else []), password.encode()]
        commands += b"*%d\r\n" % len(auth) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in auth)
    commands += b"*1\r\n$4\r\nROLE\r\n"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(commands)
            if password is not None and not (await reader.readline()).startswith(b"+"):
                return False  # AUTH refused
            header = await reader.readline()  # *3 for a master, *5 for a replica, -ERR/-NOPERM ...
            if not header.startswith(b"*"):
                return False
            await reader.readline()  # $6
            return (await reader.readline()).rstrip(b"\r\n") == b"master"
    except (OSError, TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def close_all(*closers: Callable[[], Awaitable[object]], each_within: float) -> None:
    """Await each closer in turn, each within ``each_within`` seconds, ignoring its connection errors,
    and carry them to the end even when the caller is cancelled meanwhile (the cancellation is raised
    once they are done). A close abandoned halfway leaves a connected socket behind: under load, a
    watch stopped while a resync was closing its clients did exactly that."""

    async def run() -> None:
        for close in closers:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(each_within):
                    await close()

    closing = asyncio.ensure_future(run())
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await asyncio.wait([closing])
        raise


class SentinelWatch:
    """Follows the groups it tracks through ``sentinels`` (id -> address); see the module doc."""

    def __init__(
        self,
        sentinels: Mapping[str, Address],
        on_repoint: RepointFn,
        *,
        probe: ProbeFn = role_is_master,
        timing: Timing | None = None,
        probe_patience: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        password: str | None = None,
    ) -> None:
        self.sentinels = dict(sentinels)
        self.password = password  # what the Sentinels require of clients (``requirepass``), if anything
        self.follower = Follower(self.sentinels, probe_patience=probe_patience)
        self.on_repoint = on_repoint
        self.probe = probe
        self.timing = timing or Timing()
        self.clock = clock
        self._last_heard: dict[str, float] = {}
        self._probing: dict[tuple[str, Address], asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._resync_now = asyncio.Event()
        self.repoints: list[tuple[float, Repoint]] = []  # every re-point made, with its time
        self.resyncs = 0  # resync rounds made (each asks every Sentinel about the groups given)

    # -- the caller's side ---------------------------------------------------------------------------

    def track(self, group: str, primary: Address | None = None) -> None:
        """Follow ``group`` (a Sentinel master name) whose endpoint leads to ``primary`` now (None:
        unknown; the next resync, at once once running, finds it)."""
        if self.follower.track(group, primary):  # only ever a Resync
            self._resync_now.set()

    def forget(self, group: str) -> None:
        self.follower.forget(group)
        self._locks.pop(group, None)

    def primary(self, group: str) -> Address | None:
        return self.follower.primary(group)

    def reachable(self) -> set[str]:
        """The Sentinels whose subscription answered within ``dead_after``."""
        now = self.clock()
        return {s for s, heard in self._last_heard.items() if now - heard <= self.timing.dead_after}

    async def run(self) -> None:
        """Subscribe to every Sentinel and follow, until cancelled (then every task it started ends)."""
        try:
            async with asyncio.TaskGroup() as group:
                for sentinel in self.sentinels:
                    group.create_task(self._subscription(sentinel))
                group.create_task(self._resyncs())
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- subscriptions ------------------------------------------------------------------------------

    def _client(self, address: Address, socket_timeout: float | None) -> Redis:
        return Redis(
            host=address.host,
            port=address.port,
            socket_connect_timeout=self.timing.connect_timeout,
            socket_timeout=socket_timeout,
            password=self.password,
            retry=RedisRetry(NoBackoff(), 0),
            decode_responses=True,
        )

    async def _subscription(self, sentinel: str) -> None:
        delay = self.timing.backoff_first
        while True:
            try:
                await self._subscribe_once(sentinel)
            except (RedisError, OSError, TimeoutError) as exc:
                log.info("sentinel %s: subscription lost or refused: %s", sentinel, exc)
            if self._last_heard.pop(sentinel, None) is not None:
                delay = self.timing.backoff_first  # it was live: the backoff starts again
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.timing.backoff_max)

    async def _subscribe_once(self, sentinel: str) -> None:
        client = self._client(self.sentinels[sentinel], socket_timeout=None)
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(self.timing.connect_timeout + self.timing.command_timeout):
                await pubsub.psubscribe("*")
            self._last_heard[sentinel] = self.clock()
            self._resync_now.set()  # what was published while we were away is lost: ask again
            next_ping = self.clock() + self.timing.ping_interval
            while True:
                message = await pubsub.get_message(timeout=self.timing.ping_interval)
                now = self.clock()
                if message is not None:
                    self._last_heard[sentinel] = now
                    if message.get("type") == "pmessage":
                        effects = self.follower.on_message(sentinel, str(message["channel"]), str(message["data"]))
                        await self._carry_out(effects)
                if now >= next_ping:
                    await pubsub.ping()
                    next_ping = now + self.timing.ping_interval
                if now - self._last_heard[sentinel] > self.timing.dead_after:
                    raise TimeoutError(f"silent for {now - self._last_heard[sentinel]:.2f} s")
        finally:
            await close_all(pubsub.aclose, client.aclose, each_within=self.timing.command_timeout)

    # -- resyncs -----------------------------------------------------------------------------------

    async def _resyncs(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.resync_interval):
                    await self._resync_now.wait()
            self._resync_now.clear()
            await self._resync(self.follower.groups())

    async def _resync(self, groups: list[str]) -> None:
        if not groups:
            return
        self.resyncs += 1
        names = list(self.sentinels)
        replies = await asyncio.gather(*(self._ask_primaries(self.sentinels[s], groups) for s in names))
        for group in groups:
            answers = {name: reply.get(group) for name, reply in zip(names, replies, strict=True)}
            await self._carry_out(self.follower.on_resync(group, answers))

    async def _ask_primaries(self, sentinel: Address, groups: list[str]) -> dict[str, Address | None]:
        client = self._client(sentinel, socket_timeout=self.timing.command_timeout)
        try:
            async with asyncio.timeout(self.timing.connect_timeout + self.timing.command_timeout):
                pipe = client.pipeline(transaction=False)
                for group in groups:
                    pipe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", group)
                replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError):
            return {}
        finally:
            await close_all(client.aclose, each_within=self.timing.command_timeout)
        found: dict[str, Address | None] = {}
        for group, reply in zip(groups, replies, strict=True):
            try:
                found[group] = Address(str(reply[0]), int(reply[1])) if isinstance(reply, list | tuple) else None
            except (ValueError, IndexError):
                found[group] = None
        return found

    # -- effects -----------------------------------------------------------------------------------

    async def _carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Repoint):
                await self._repoint(effect)
            elif isinstance(effect, Probe):
                key = (effect.group, effect.address)
                if key not in self._probing:
                    self._probing[key] = self._spawn(self._probe(effect))
            elif isinstance(effect, Resync):
                self._spawn(self._resync([effect.group]))

    async def _repoint(self, repoint: Repoint) -> None:
        self.repoints.append((self.clock(), repoint))
        lock = self._locks.setdefault(repoint.group, asyncio.Lock())
        async with lock:  # one group's re-points reach the callback in the order they were decided
            try:
                await self.on_repoint(repoint)
            except Exception:
                log.exception("re-pointing %s to %s failed", repoint.group, repoint.new)

    async def _probe(self, probe: Probe) -> None:
        key = (probe.group, probe.address)
        try:
            deadline = self.clock() + probe.patience
            while True:
                try:
                    is_master = await self.probe(probe.address)
                except Exception:
                    log.exception("probing %s failed", probe.address)
                    is_master = False
                if is_master or self.clock() >= deadline:
                    break
                await asyncio.sleep(self.timing.probe_interval)
        finally:
            self._probing.pop(key, None)
        await self._carry_out(self.follower.on_probe(probe.group, probe.address, is_master))

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
