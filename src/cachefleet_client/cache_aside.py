"""Lazy loading (cache-aside): read the cache, and on a miss load from the database and store.

`Cache` owns one key namespace. Keys are `namespace:version:key`; bumping the namespace version
(an integer in Redis at `namespace:__version__`) makes every old key unreachable at once, and the
old keys then age out by TTL. Each process caches the version for `version_ttl` seconds, so a
bump made elsewhere is seen within that bound (at once in the process that made it).

Flow of `get_or_load(key, loader)`:

1. GET on the reader. A fresh entry is returned (`None` for a negative entry).
2. Otherwise one caller per key, across processes, takes the lock `SET <lock> <token> NX PX`.
   Inside one process, concurrent callers share a single in-flight fill first, so only one of
   them even asks Redis for the lock.
3. The lock holder checks the writer again, calls the loader, and stores the result with a
   script that writes only while its token still holds the lock, then deletes the lock. An
   invalidation (`delete`, tag, write-through) deletes the lock too, so a load that started
   before the invalidation cannot write its now-old result afterwards.
4. Callers that lose the race return the stale value if one exists (the soft expiry has passed
   but the hard TTL has not), else poll the writer until the holder stores, the lock goes away
   (they then try to take it), or `lock_wait` passes (they then call the loader themselves and
   return its result without storing it).

When Redis fails (after the connection's retries), `get_or_load` calls the loader directly and
returns its result (`fail_open=True`, the default: the database serves while the cache is down);
with `fail_open=False` the Redis error propagates. The plain operations always propagate.

A loader that returns `None` stores a negative entry for `negative_ttl`. Every TTL gets a random
spread of +/- `ttl_jitter` so keys filled together do not expire together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from . import _envelope
from .codecs import Codec, JsonCodec
from .connection import CacheConnection
from .stores import CacheStore, store_for

log = logging.getLogger(__name__)

__all__ = ["Cache", "CacheStats", "CachedFunction"]

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(slots=True)
class CacheStats:
    """Counters for one `Cache` object (this process only)."""

    hits: int = 0
    negative_hits: int = 0
    stale_hits: int = 0
    misses: int = 0
    loads: int = 0
    lock_waits: int = 0
    fenced_stores: int = 0
    errors: int = 0  # cache operations that failed (fail-open: served by the loader)

    @property
    def hit_rate(self) -> float:
        served = self.hits + self.negative_hits + self.stale_hits
        total = served + self.misses
        return served / total if total else 0.0


class Cache:
    """Cache-aside over one namespace. TTLs are in seconds; `clock` (wall time, shared by processes)
    decides soft expiry, and `rand` in [0, 1) spreads TTLs; both are injectable for tests.
    """

    def __init__(
        self,
        connection: CacheConnection | CacheStore,
        *,
        namespace: str,
        codec: Codec | None = None,
        ttl: float = 300.0,
        ttl_jitter: float = 0.1,
        negative_ttl: float = 30.0,
        stale_ttl: float = 60.0,
        lock_ttl: float = 10.0,
        lock_wait: float | None = None,
        poll_interval: float = 0.02,
        version_ttl: float = 1.0,
        single_flight: bool = True,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if ":" in namespace:
            raise ValueError("a namespace may not contain ':'")
        if not 0.0 <= ttl_jitter < 1.0:
            raise ValueError("ttl_jitter is a fraction in [0, 1)")
        self.connection = connection
        self.store = store_for(connection)
        self.namespace = namespace
        self.codec: Codec = codec if codec is not None else JsonCodec()
        self.ttl = ttl
        self.ttl_jitter = ttl_jitter
        self.negative_ttl = negative_ttl
        self.stale_ttl = stale_ttl
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_ttl if lock_wait is None else lock_wait
        self.poll_interval = poll_interval
        self.version_ttl = version_ttl
        self.single_flight = single_flight
        self.fail_open = fail_open
        self.stats = CacheStats()
        self._clock = clock
        self._rand = rand
        self._version: int | None = None
        self._version_read_at = 0.0
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    # Keys and versions

    @property
    def version_key(self) -> str:
        return f"{self.namespace}:__version__"

    def tag_key(self, tag: str) -> str:
        return f"{self.namespace}:tag:{tag}"

    async def version(self) -> int:
        now = time.monotonic()
        if self._version is None or now - self._version_read_at >= self.version_ttl:
            raw = await self.store.get(self.version_key)
            self._version = int(raw) if raw is not None else 0
            self._version_read_at = now
        return self._version

    async def full_key(self, key: str) -> str:
        return f"{self.namespace}:{await self.version()}:{key}"

    async def bump_version(self) -> int:
        """Invalidate every key of the namespace at once; returns the new version."""
        self._version = await self.store.incr(self.version_key)
        self._version_read_at = time.monotonic()
        return self._version

    # Plain operations

    async def get(self, key: str, default: Any = None) -> Any:
        """The cached value (even if stale), or `default` on a miss or a negative entry."""
        raw = await self.store.read(await self.full_key(key))
        entry = None if raw is None else _envelope.unpack(self.codec, raw)
        if entry is None or entry.negative:
            return default
        return entry.value

    async def set(self, key: str, value: Any, *, ttl: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store a value unconditionally (and cancel any in-flight load of the key)."""
        full = await self.full_key(key)
        payload, px = self._payload(value, ttl)
        await self.store.store_and_unlock(
            full, _envelope.lock_key(full), payload=payload, px=px, tag_keys=self._tag_keys(tags)
        )

    async def delete(self, *keys: str) -> int:
        """Delete keys (and their locks, fencing loads in flight); returns how many values existed."""
        if not keys:
            return 0
        names: list[str] = []
        for key in keys:
            full = await self.full_key(key)
            names += [full, _envelope.lock_key(full)]
        return await self.store.delete(*names)

    async def invalidate_tags(self, *tags: str) -> int:
        """Delete every key stored with any of `tags`; returns how many keys were deleted."""
        deleted = 0
        for tag in tags:
            while True:
                # Drained a batch at a time: a member added meanwhile is popped too (a needless
                # miss at worst), and no member is removed without its key.
                members = await self.store.pop_members(self.tag_key(tag), 500)
                if not members:
                    break
                names: list[str] = []
                for full in members:
                    names += [full, _envelope.lock_key(full)]
                deleted += await self.store.delete(*names)
        return deleted

    def _tag_keys(self, tags: Iterable[str]) -> list[str]:
        return [self.tag_key(tag) for tag in tags]

    # Lazy loading

    async def get_or_load(
        self,
        key: str,
        loader: Callable[[], Awaitable[T] | T],
        *,
        ttl: float | None = None,
        negative_ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> T:
        try:
            full = await self.full_key(key)
            raw = await self.store.read(full)
        except self.store.errors as exc:
            return cast(T, await self._bypass(loader, exc))
        stale = None if raw is None else _envelope.unpack(self.codec, raw)
        if stale is not None and stale.fresh(self._clock()):
            if stale.negative:
                self.stats.negative_hits += 1
            else:
                self.stats.hits += 1
            return cast(T, stale.value)
        fill = functools.partial(
            self._fill, full, loader=loader, ttl=ttl, negative_ttl=negative_ttl, tags=tuple(tags), stale=stale
        )
        if not self.single_flight:
            return cast(T, await fill())
        future = self._inflight.get(full)
        if future is None:
            future = asyncio.ensure_future(fill())
            self._inflight[full] = future
            future.add_done_callback(functools.partial(self._forget, full))
        elif stale is not None:
            self.stats.stale_hits += 1
            return cast(T, stale.value)
        else:
            self.stats.lock_waits += 1
        return cast(T, await asyncio.shield(future))

    def _forget(self, full: str, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(full) is future:
            del self._inflight[full]
        if not future.cancelled():
            future.exception()  # mark retrieved: every awaiter may have been cancelled

    async def _bypass(self, loader: Callable[[], Any], exc: BaseException) -> Any:
        """The cache failed (after the connection's retries): load without it, or raise."""
        if not self.fail_open:
            raise exc
        self.stats.errors += 1
        self.stats.misses += 1
        self.stats.loads += 1
        log.warning("cache %s unavailable (%r); loading without it", self.namespace, exc)
        return await _call(loader)

    async def _fill(
        self,
        full: str,
        *,
        loader: Callable[[], Any],
        ttl: float | None,
        negative_ttl: float | None,
        tags: Sequence[str],
        stale: _envelope.Entry | None,
    ) -> Any:
        store = self.store
        lock = _envelope.lock_key(full)
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.lock_wait
        waited = False
        while True:
            try:
                acquired = await store.add(lock, token.encode(), max(1, int(self.lock_ttl * 1000)))
            except store.errors as exc:
                return await self._bypass(loader, exc)
            if acquired:
                return await self._load_locked(
                    full, lock=lock, token=token, loader=loader, ttl=ttl, negative_ttl=negative_ttl, tags=tags
                )
            if stale is not None:
                self.stats.stale_hits += 1
                return stale.value
            if not waited:
                waited = True
                self.stats.lock_waits += 1
            if time.monotonic() >= deadline:
                self.stats.misses += 1
                self.stats.loads += 1
                return await _call(loader)
            await asyncio.sleep(self.poll_interval)
            try:
                raw = await store.get(full)
            except store.errors as exc:
                return await self._bypass(loader, exc)
            entry = None if raw is None else _envelope.unpack(self.codec, raw)
            if entry is not None and entry.fresh(self._clock()):
                self.stats.hits += 1
                return entry.value

    async def _load_locked(
        self,
        full: str,
        *,
        lock: str,
        token: str,
        loader: Callable[[], Any],
        ttl: float | None,
        negative_ttl: float | None,
        tags: Sequence[str],
    ) -> Any:
        try:
            # Someone may have stored between our read and our lock.
            raw = await self.store.get(full)
        except self.store.errors as exc:
            return await self._bypass(loader, exc)  # the lock's PX expiry frees it
        entry = None if raw is None else _envelope.unpack(self.codec, raw)
        try:
            if entry is not None and entry.fresh(self._clock()):
                await self.store.release(lock, token)
                self.stats.hits += 1
                return entry.value
            self.stats.misses += 1
            self.stats.loads += 1
            value = await _call(loader)
        except BaseException:
            with contextlib.suppress(*self.store.errors):  # on failure the lock's PX expiry frees it
                await self.store.release(lock, token)
            raise
        payload, px = self._payload(value, negative_ttl if value is None else ttl, negative=value is None)
        try:
            stored = await self.store.store_if_locked(
                full, lock, token=token, payload=payload, px=px, tag_keys=self._tag_keys(tags)
            )
            if not stored:
                self.stats.fenced_stores += 1
        except self.store.errors as exc:
            if not self.fail_open:
                raise
            self.stats.errors += 1
            log.warning("cache %s: storing %r failed (%r)", self.namespace, full, exc)
        return value

    # Writing

    def _payload(self, value: Any, ttl: float | None, *, negative: bool = False) -> tuple[bytes, int]:
        base = ttl if ttl is not None else (self.negative_ttl if negative else self.ttl)
        soft = base * (1.0 + self.ttl_jitter * (2.0 * self._rand() - 1.0))
        px = max(1, int((soft + self.stale_ttl) * 1000))
        return _envelope.pack(self.codec, value, self._clock() + soft), px

    # Decorator

    @overload
    def cached(
        self,
        fn: None = None,
        *,
        ttl: float | None = None,
        key: str | Callable[..., str] | None = None,
        negative_ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[Callable[P, Awaitable[T]]], CachedFunction[P, T]]: ...

    @overload
    def cached(
        self,
        fn: Callable[P, Awaitable[T]],
        *,
        ttl: float | None = None,
        key: str | Callable[..., str] | None = None,
        negative_ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> CachedFunction[P, T]: ...

    def cached(
        self,
        fn: Callable[P, Awaitable[T]] | None = None,
        *,
        ttl: float | None = None,
        key: str | Callable[..., str] | None = None,
        negative_ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> CachedFunction[P, T] | Callable[[Callable[P, Awaitable[T]]], CachedFunction[P, T]]:
        """Cache an async function's results with `get_or_load`.

        `key` is a `str.format` template over the call's arguments (`"user:{user_id}"`), a
        function taking the same arguments, or None for `module.qualname(repr(args)...)`. `tags`
        are templates like `key`. The returned object has `invalidate(*args)` and `key_for(*args)`.
        """

        def decorate(function: Callable[P, Awaitable[T]]) -> CachedFunction[P, T]:
            return CachedFunction(self, function, ttl=ttl, key=key, negative_ttl=negative_ttl, tags=tags)

        return decorate if fn is None else decorate(fn)


class CachedFunction(Generic[P, T]):
    """An async function wrapped by `Cache.cached`."""

    def __init__(
        self,
        cache: Cache,
        fn: Callable[P, Awaitable[T]],
        *,
        ttl: float | None,
        key: str | Callable[..., str] | None,
        negative_ttl: float | None,
        tags: Sequence[str],
    ) -> None:
        self.cache = cache
        self.fn = fn
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._key = key
        self._tags = tuple(tags)
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def key_for(self, *args: P.args, **kwargs: P.kwargs) -> str:
        if callable(self._key):
            return self._key(*args, **kwargs)
        if isinstance(self._key, str):
            return self._key.format(**self._arguments(args, kwargs))
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
        return f"{self.fn.__module__}.{self.fn.__qualname__}({','.join(parts)})"

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        arguments = self._arguments(args, kwargs) if self._tags else {}
        return await self.cache.get_or_load(
            self.key_for(*args, **kwargs),
            lambda: self.fn(*args, **kwargs),
            ttl=self.ttl,
            negative_ttl=self.negative_ttl,
            tags=[tag.format(**arguments) for tag in self._tags],
        )

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        await self.cache.delete(self.key_for(*args, **kwargs))


async def _call(loader: Callable[[], Any]) -> Any:
    result = loader()
    if inspect.isawaitable(result):
        return await result
    return result
