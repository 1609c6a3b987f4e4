"""Write-through and delete-on-write: change the database and the cache together.

Order: **the database first, then the cache.** The database is the source of truth; writing the
cache first would leave a value that never committed whenever the database write fails.

| step fails                         | what happens                                                     |
|------------------------------------|------------------------------------------------------------------|
| database write raises              | the error propagates; the cache is not touched                   |
| cache write (SET) fails            | the key is deleted instead, so readers reload from the database  |
| that delete fails too              | the key is recorded in `pending` and `on_stale` is called;       |
|                                    | `flush_pending()` retries, and the hard TTL bounds the staleness |

A cache failure never fails the call: the database committed, so the result is returned with a
`CacheOutcome` saying what happened to the cache. Redis errors are retried first by the
connection (`RetryPolicy`), so "fails" means the retry budget was spent.

Both cache writes also delete the key's load lock (see `cache_aside`), so a lazy load that read
the database before this write cannot store its older result afterwards.

Concurrent writers of one key can still finish their cache writes out of order (A commits, B
commits, B sets, A sets: A's older value stays until its TTL). Use `delete_on_write` for keys
written concurrently: a delete is correct in any order, at the cost of one miss.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from .cache_aside import Cache

__all__ = ["CacheOutcome", "WriteResult", "WriteThrough"]

R = TypeVar("R")

log = logging.getLogger(__name__)


class CacheOutcome(enum.Enum):
    UPDATED = "updated"
    DELETED = "deleted"
    PENDING = "pending"  # neither write nor delete succeeded: may be stale until flushed or expired


@dataclass(frozen=True, slots=True)
class WriteResult(Generic[R]):
    result: R
    cache: CacheOutcome


class WriteThrough:
    """Database-then-cache writes for one `Cache`.

    `on_stale(key, error)` is called when a key could be neither updated nor deleted (for
    metrics or a durable retry queue); the key also stays in `pending` until `flush_pending()`.
    """

    def __init__(self, cache: Cache, *, on_stale: Callable[[str, BaseException], None] | None = None) -> None:
        # A value the codec cannot encode fails like a cache write: the key is deleted instead.
        self._write_errors: tuple[type[BaseException], ...] = (*cache.store.errors, TypeError, ValueError)
        self.cache = cache
        self.on_stale = on_stale
        self.pending: set[str] = set()

    async def write(
        self,
        key: str,
        db_write: Callable[[], Awaitable[R] | R],
        *,
        cache_value: Callable[[R], Any] | None = None,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> WriteResult[R]:
        """Run `db_write`, then cache `cache_value(result)` (default: the result itself)."""
        result = await _call(db_write)
        value = cache_value(result) if cache_value is not None else result
        try:
            await self.cache.set(key, value, ttl=ttl, tags=tags)
        except self._write_errors as exc:
            # TypeError/ValueError: the codec could not encode the value; same remedy.
            log.warning("write-through: caching %r failed (%r); deleting it", key, exc)
            return WriteResult(result, await self._delete(key))
        self.pending.discard(key)
        return WriteResult(result, CacheOutcome.UPDATED)

    async def delete_on_write(
        self, keys: str | Iterable[str], db_write: Callable[[], Awaitable[R] | R]
    ) -> WriteResult[R]:
        """Run `db_write`, then delete `keys` from the cache; the next read reloads them."""
        result = await _call(db_write)
        outcome = CacheOutcome.DELETED
        for key in [keys] if isinstance(keys, str) else list(keys):
            if await self._delete(key) is CacheOutcome.PENDING:
                outcome = CacheOutcome.PENDING
        return WriteResult(result, outcome)

    async def flush_pending(self) -> int:
        """Retry the deletes that failed; returns how many keys were cleared."""
        cleared = 0
        for key in sorted(self.pending):
            try:
                await self.cache.delete(key)
            except self.cache.store.errors as exc:
                log.warning("write-through: pending delete of %r failed again (%r)", key, exc)
                continue
            self.pending.discard(key)
            cleared += 1
        return cleared

    async def _delete(self, key: str) -> CacheOutcome:
        try:
            await self.cache.delete(key)
        except self.cache.store.errors as exc:
            log.error("write-through: could not delete %r (%r); stale until flushed or expired", key, exc)
            self.pending.add(key)
            if self.on_stale is not None:
                self.on_stale(key, exc)
            return CacheOutcome.PENDING
        self.pending.discard(key)
        return CacheOutcome.DELETED


async def _call(fn: Callable[[], Awaitable[R] | R]) -> R:
    result = fn()
    if inspect.isawaitable(result):
        return cast(R, await result)
    return result
