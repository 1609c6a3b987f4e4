from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachefleet_client import Cache, CacheConnection, CacheOutcome, RetryPolicy, WriteThrough

from ._db import UserDB
from .conftest import RedisServer, options

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[UserDB]:
    database = UserDB(tmp_path / "app.db")
    database.add(1, "ada")
    database.add(2, "grace")
    yield database
    database.close()


async def warm(cache: Cache, db: UserDB) -> None:
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}


async def test_database_then_cache(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    await warm(cache, db)
    wt = WriteThrough(cache)
    result = await wt.write("1", lambda: db.rename(1, "ada lovelace"))
    assert result.cache is CacheOutcome.UPDATED
    assert result.result == {"id": 1, "name": "ada lovelace"}
    assert db.get(1) == {"id": 1, "name": "ada lovelace"}
    queries = db.queries
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada lovelace"}
    assert db.queries == queries  # served by the cache


async def test_cache_value_mapping_and_tags(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    wt = WriteThrough(cache)
    await wt.write("name:1", lambda: db.rename(1, "a"), cache_value=lambda row: row["name"], tags=["user:1"])
    assert await cache.get("name:1") == "a"
    assert await cache.invalidate_tags("user:1") == 1


async def test_database_failure_leaves_cache_untouched(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    await warm(cache, db)
    wt = WriteThrough(cache)
    with pytest.raises(sqlite3.IntegrityError):
        await wt.write("1", lambda: db.rename(1, "grace"))  # UNIQUE(name) violated
    with pytest.raises(sqlite3.IntegrityError):
        await wt.delete_on_write("1", lambda: db.rename(1, "grace"))
    assert db.get(1) == {"id": 1, "name": "ada"}
    assert await cache.get("1") == {"id": 1, "name": "ada"}  # still the committed value


async def test_cache_write_failure_deletes_the_key(
    connection: CacheConnection, redis_server: RedisServer, db: UserDB
) -> None:
    cache = Cache(connection, namespace="users")
    await warm(cache, db)
    wt = WriteThrough(cache)
    with redis_server.client() as admin:
        # Out of memory: Redis refuses SET (OOM) but still allows DEL.
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        try:
            result = await wt.write("1", lambda: db.rename(1, "ada lovelace"))
        finally:
            admin.config_set("maxmemory", 0)
    assert result.cache is CacheOutcome.DELETED
    assert await cache.get("1") is None  # no stale value left behind
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada lovelace"}


async def test_unencodable_value_deletes_the_key(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    await warm(cache, db)
    wt = WriteThrough(cache)
    result = await wt.write("1", lambda: db.rename(1, "x"), cache_value=lambda row: {"set": {1, 2}})
    assert result.cache is CacheOutcome.DELETED
    assert await cache.get("1") is None


async def test_cache_unreachable_records_pending_then_flushes(redis_server: RedisServer, db: UserDB) -> None:
    fragile = options(retry=RetryPolicy(retries=1, base=0.01, cap=0.01), socket_timeout=0.2)
    async with CacheConnection.from_endpoints(redis_server.address, options=fragile) as conn:
        cache = Cache(conn, namespace="users")
        await warm(cache, db)
        stale: list[str] = []
        wt = WriteThrough(cache, on_stale=lambda key, exc: stale.append(key))
        with redis_server.client() as admin:
            admin.client_pause(1500)  # every client stalls: SET and the fallback DEL both time out
        result = await wt.write("1", lambda: db.rename(1, "ada lovelace"))
        assert result.cache is CacheOutcome.PENDING
        assert result.result == {"id": 1, "name": "ada lovelace"}  # the database write stands
        assert stale == ["1"]
        assert wt.pending == {"1"}
        await asyncio.sleep(1.6)
        assert await wt.flush_pending() == 1
        assert wt.pending == set()
        assert await cache.get("1") is None


async def test_delete_on_write(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    await warm(cache, db)
    await cache.get_or_load("2", lambda: db.get(2))
    wt = WriteThrough(cache)
    result = await wt.delete_on_write(["1", "2"], lambda: db.rename(1, "ada lovelace"))
    assert result.cache is CacheOutcome.DELETED
    assert await cache.get("1") is None
    assert await cache.get("2") is None
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada lovelace"}


async def test_async_database_write(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="n")

    async def db_write() -> int:
        await asyncio.sleep(0)
        return 42

    result = await WriteThrough(cache).write("k", db_write)
    assert result.result == 42
    assert await cache.get("k") == 42
