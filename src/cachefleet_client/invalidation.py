"""Invalidation: by key, by tag, by version bump, and from PostgreSQL change notifications.

The primitives live on `Cache` (it owns the key layout): `delete(*keys)`, `invalidate_tags(*tags)`
and `bump_version()`. This module adds `Invalidation`, a value naming what to drop, and a
listener that turns `NOTIFY` payloads into invalidations:

    CREATE FUNCTION notify_user() RETURNS trigger AS $$
    BEGIN PERFORM pg_notify('cache', 'user:' || NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql;

    listener = PostgresInvalidationListener(cache, dsn, "cache", lambda p: Invalidation(keys=(p,)))
    async with listener:   # LISTEN is active once this returns
        ...

Notifications sent while the listener is disconnected are lost (PostgreSQL does not queue them
for absent listeners), so after a reconnect the listener bumps the namespace version unless told
not to: everything reloads once instead of some keys staying stale. The listener needs the
optional `psycopg` (v3) package, imported only when it runs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from .cache_aside import Cache

__all__ = ["Invalidation", "PostgresInvalidationListener", "invalidate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Invalidation:
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    bump_version: bool = False


async def invalidate(cache: Cache, what: Invalidation) -> int:
    """Apply an invalidation; returns how many cached values were deleted (0 for a version bump)."""
    deleted = 0
    if what.keys:
        deleted += await cache.delete(*what.keys)
    if what.tags:
        deleted += await cache.invalidate_tags(*what.tags)
    if what.bump_version:
        await cache.bump_version()
    return deleted


Mapper = Callable[[str], "Invalidation | Iterable[str] | None"]


class PostgresInvalidationListener:
    """`LISTEN channel` and apply `mapper(payload)` to the cache for each notification.

    `mapper` returns an `Invalidation`, an iterable of keys, or None (ignore the payload).
    """

    def __init__(
        self,
        cache: Cache,
        conninfo: str,
        channel: str,
        mapper: Mapper,
        *,
        bump_on_reconnect: bool = True,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
        ready_timeout: float = 10.0,
    ) -> None:
        self.cache = cache
        self.conninfo = conninfo
        self.channel = channel
        self.mapper = mapper
        self.bump_on_reconnect = bump_on_reconnect
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.ready_timeout = ready_timeout
        self.ready = asyncio.Event()
        self.applied = 0
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with jittered backoff."""
        # psycopg is an optional dependency: imported only by applications that listen.
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        failures = 0
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    if connected_before and self.bump_on_reconnect:
                        await self.cache.bump_version()
                    connected_before = True
                    failures = 0
                    self.ready.set()
                    async for notify in conn.notifies():
                        await self._apply(notify.payload)
            except psycopg.OperationalError as exc:
                self.ready.clear()
                failures += 1
                delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**failures))
                log.warning("invalidation listener lost PostgreSQL (%r); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)

    async def _apply(self, payload: str) -> None:
        try:
            mapped = self.mapper(payload)
            if mapped is None:
                return
            what = mapped if isinstance(mapped, Invalidation) else Invalidation(keys=tuple(mapped))
            await invalidate(self.cache, what)
            self.applied += 1
        except Exception:
            # One bad payload or a cache outage must not stop the listener; the TTL bounds staleness.
            log.exception("invalidation listener could not apply %r", payload)

    async def __aenter__(self) -> PostgresInvalidationListener:
        self._task = asyncio.create_task(self.run(), name=f"pg-invalidation:{self.channel}")
        ready = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait([ready, self._task], timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            return self
        ready.cancel()
        if self._task.done():
            self._task.result()  # run() ended early: raise its error
        await self.__aexit__(None, None, None)
        raise TimeoutError(f"LISTEN {self.channel} not established within {self.ready_timeout}s")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
