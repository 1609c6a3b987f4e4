"""What the patterns ask of a cache, whatever its engine: the `CacheStore` protocol, and Redis's.

`Cache` (cache-aside, write-through, invalidation) and `SessionStore` take a `CacheConnection`
(Redis) or any `CacheStore`; `cachefleet_client.memcached.MemcachedStore` is the Memcached one.
Each operation says what it means, not which command does it, so that each engine can do it its
own way: Redis with scripts and transactions, atomically; Memcached with `add`, `gets`/`cas` and
`append`, one key at a time (see `MemcachedStore` for what that leaves open).

TTLs are in milliseconds (`px`). Keys and values are the patterns' own (`str` keys, `bytes` values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

from redis.exceptions import RedisError

from .connection import CacheConnection

__all__ = ["CacheStore", "RedisStore", "store_for"]

# KEYS: value, lock. ARGV: token, payload, px. Store only while our token holds the lock.
_STORE_IF_LOCKED = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
# KEYS: value, lock. ARGV: payload, px. An unconditional write also fences in-flight loads.
_STORE_AND_UNLOCK = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: lock. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@runtime_checkable
class CacheStore(Protocol):
    """The operations of the patterns. ``errors``: what its calls raise when the cache fails."""

    errors: tuple[type[BaseException], ...]

    async def read(self, key: str) -> bytes | None:
        """A plain cache read (Redis: on a replica when read-from-replica is on)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """A read that must see this client's own writes (the primary)."""
        ...

    async def get_and_touch(self, key: str, px: int) -> bytes | None:
        """Read the value and restart its TTL (a sliding session)."""
        ...

    async def set(self, key: str, value: bytes, px: int) -> None: ...

    async def add(self, key: str, value: bytes, px: int) -> bool:
        """Store only if the key does not exist (a lock); True when stored."""
        ...

    async def delete(self, *keys: str) -> int:
        """Delete keys; how many existed."""
        ...

    async def incr(self, key: str) -> int:
        """Add one to a counter that starts at 0 and never expires; the new value."""
        ...

    async def store_if_locked(
        self, key: str, lock: str, *, token: str, payload: bytes, px: int, tag_keys: Sequence[str]
    ) -> bool:
        """Store ``payload`` (member of ``tag_keys``) and drop ``lock`` only while ``token`` holds it."""
        ...

    async def store_and_unlock(self, key: str, lock: str, *, payload: bytes, px: int, tag_keys: Sequence[str]) -> bool:
        """Store ``payload`` (member of ``tag_keys``) unconditionally and drop ``lock``."""
        ...

    async def release(self, lock: str, token: str) -> None:
        """Drop ``lock`` if ``token`` still holds it."""
        ...

    async def pop_members(self, tag_key: str, count: int) -> list[str]:
        """Remove and return up to ``count`` keys recorded under a tag (none left: empty)."""
        ...


class RedisStore:
    """`CacheStore` on Redis: the lock checks and the writes happen in one script (atomic)."""

    errors: tuple[type[BaseException], ...] = (RedisError,)

    def __init__(self, connection: CacheConnection) -> None:
        self.connection = connection
        writer = connection.writer
        self._store_if_locked = writer.register_script(_STORE_IF_LOCKED)
        self._store_and_unlock = writer.register_script(_STORE_AND_UNLOCK)
        self._release = writer.register_script(_RELEASE)

    async def read(self, key: str) -> bytes | None:
        return cast(bytes | None, await self.connection.reader.get(key))

    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self.connection.writer.get(key))

    async def get_and_touch(self, key: str, px: int) -> bytes | None:
        return cast(bytes | None, await self.connection.writer.getex(key, px=px))

    async def set(self, key: str, value: bytes, px: int) -> None:
        await self.connection.writer.set(key, value, px=px)

    async def add(self, key: str, value: bytes, px: int) -> bool:
        return bool(await self.connection.writer.set(key, value, nx=True, px=px))

    async def delete(self, *keys: str) -> int:
        return int(await self.connection.writer.delete(*keys)) if keys else 0

    async def incr(self, key: str) -> int:
        return int(await self.connection.writer.incr(key))

    async def store_if_locked(
        self, key: str, lock: str, *, token: str, payload: bytes, px: int, tag_keys: Sequence[str]
    ) -> bool:
        return await self._write(
            key, lock, tag_keys=tag_keys, px=px, script=self._store_if_locked, args=[token, payload, px]
        )

    async def store_and_unlock(self, key: str, lock: str, *, payload: bytes, px: int, tag_keys: Sequence[str]) -> bool:
        return await self._write(key, lock, tag_keys=tag_keys, px=px, script=self._store_and_unlock, args=[payload, px])

    async def release(self, lock: str, token: str) -> None:
        await self._release(keys=[lock], args=[token])

    async def pop_members(self, tag_key: str, count: int) -> list[str]:
        members = await self.connection.writer.spop(tag_key, count)
        return [m.decode() for m in cast(list[bytes], members or [])]

    async def _write(
        self, key: str, lock: str, *, tag_keys: Sequence[str], px: int, script: Any, args: list[Any]
    ) -> bool:
        """Record tag membership, then write the value with ``script``; returns the script's verdict.

        Membership goes first (in the same MULTI outside cluster mode), so a value never exists
        without its tags; a member whose write was then skipped costs a needless DEL later.
        """
        writer = self.connection.writer
        if not tag_keys:
            return bool(await script(keys=[key, lock], args=args))
        if self.connection.cluster:
            for tag_key in tag_keys:
                await writer.sadd(tag_key, key)
                await writer.pexpire(tag_key, px, nx=True)
                await writer.pexpire(tag_key, px, gt=True)
            return bool(await script(keys=[key, lock], args=args))
        async with writer.pipeline(transaction=True) as pipe:
            for tag_key in tag_keys:
                pipe.sadd(tag_key, key)
                pipe.pexpire(tag_key, px, nx=True)
                pipe.pexpire(tag_key, px, gt=True)
            await script(keys=[key, lock], args=args, client=pipe)
            results = await pipe.execute()
        return bool(results[-1])


def store_for(target: CacheConnection | CacheStore) -> CacheStore:
    """The store of a Redis connection, or the store given."""
    if isinstance(target, CacheConnection):
        return RedisStore(target)
    return target
