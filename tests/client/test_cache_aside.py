from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cachefleet_client import Cache, CacheConnection, MsgpackCodec, RetryPolicy

from ._db import UserDB
from .conftest import RedisServer, options

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[UserDB]:
    database = UserDB(tmp_path / "app.db")
    database.add(1, "ada")
    database.add(2, "grace")
    yield database
    database.close()


def slow_loader(db: UserDB, user_id: int, delay: float = 0.2):  # type: ignore[no-untyped-def]
    async def load() -> dict[str, object] | None:
        await asyncio.sleep(delay)  # a slow query keeps the stampede window open
        return db.get(user_id)

    return load


async def test_hit_after_load(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
    assert db.queries == 1
    assert cache.stats.hits == 1
    assert cache.stats.loads == 1
    assert await connection.writer.exists("users:0:1") == 1


async def test_stampede_across_processes_loads_once(
    connection: CacheConnection, second_connection: CacheConnection, db: UserDB
) -> None:
    a = Cache(connection, namespace="users")
    b = Cache(second_connection, namespace="users")  # another process: its own client, its own memory
    loader = slow_loader(db, 1)
    results = await asyncio.gather(
        *[a.get_or_load("1", loader) for _ in range(50)],
        *[b.get_or_load("1", loader) for _ in range(10)],
    )
    assert db.queries == 1
    assert all(r == {"id": 1, "name": "ada"} for r in results)
    assert b.stats.lock_waits >= 1  # b found a's lock and waited for a's value


async def test_stampede_without_in_process_single_flight(connection: CacheConnection, db: UserDB) -> None:
    # Every caller goes to Redis for the lock: the lock alone must still allow one loader.
    cache = Cache(connection, namespace="users", single_flight=False, poll_interval=0.01)
    results = await asyncio.gather(*[cache.get_or_load("2", slow_loader(db, 2)) for _ in range(50)])
    assert db.queries == 1
    assert {r["name"] for r in results if r} == {"grace"}
    assert cache.stats.lock_waits == 49


async def test_stale_value_served_while_one_caller_reloads(
    connection: CacheConnection, second_connection: CacheConnection, db: UserDB
) -> None:
    clock = Clock()
    a = Cache(connection, namespace="users", ttl=10, ttl_jitter=0, stale_ttl=60, clock=clock)
    b = Cache(second_connection, namespace="users", ttl=10, ttl_jitter=0, stale_ttl=60, clock=clock)
    await a.get_or_load("1", lambda: db.get(1))
    db.rename(1, "ada lovelace")
    clock.now += 11  # past the soft expiry, within the hard TTL

    refreshing = asyncio.create_task(a.get_or_load("1", slow_loader(db, 1, delay=0.3)))
    await asyncio.sleep(0.1)  # a holds the lock now
    assert await b.get_or_load("1", pytest.fail) == {"id": 1, "name": "ada"}  # stale, at once
    assert b.stats.stale_hits == 1
    assert await refreshing == {"id": 1, "name": "ada lovelace"}
    assert await b.get_or_load("1", pytest.fail) == {"id": 1, "name": "ada lovelace"}
    assert db.queries == 2


async def test_hard_ttl_is_soft_ttl_plus_stale_window(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="n", ttl=100, ttl_jitter=0, stale_ttl=50)
    await cache.get_or_load("k", lambda: 1)
    assert 149_000 < await connection.writer.pttl("n:0:k") <= 150_000


@pytest.mark.parametrize(("rand", "low", "high"), [(0.0, 89_000, 90_000), (1.0, 109_000, 110_000)])
async def test_ttl_jitter(connection: CacheConnection, rand: float, low: int, high: int) -> None:
    cache = Cache(connection, namespace="n", ttl=100, ttl_jitter=0.1, stale_ttl=0, rand=lambda: rand)
    await cache.get_or_load("k", lambda: 1)
    assert low < await connection.writer.pttl("n:0:k") <= high


async def test_negative_caching(connection: CacheConnection, db: UserDB) -> None:
    clock = Clock()
    cache = Cache(connection, namespace="users", ttl=300, negative_ttl=5, stale_ttl=0, ttl_jitter=0, clock=clock)
    assert await cache.get_or_load("404", lambda: db.get(404)) is None
    assert await cache.get_or_load("404", lambda: db.get(404)) is None
    assert db.queries == 1
    assert cache.stats.negative_hits == 1
    assert await connection.writer.pttl("users:0:404") <= 5_000  # shorter than a real value's TTL
    clock.now += 6
    db.add(404, "late")
    assert await cache.get_or_load("404", lambda: db.get(404)) == {"id": 404, "name": "late"}
    assert db.queries == 2


async def test_namespaced_keys_and_version_bump(
    connection: CacheConnection, second_connection: CacheConnection, db: UserDB
) -> None:
    a = Cache(connection, namespace="users")
    b = Cache(second_connection, namespace="users", version_ttl=0)
    other = Cache(connection, namespace="orders")
    await a.get_or_load("1", lambda: db.get(1))
    await other.get_or_load("1", lambda: "order-1")
    assert await connection.writer.exists("users:0:1", "orders:0:1") == 2

    assert await a.bump_version() == 1
    db.rename(1, "ada v2")
    assert await a.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada v2"}
    assert await b.get_or_load("1", pytest.fail) == {"id": 1, "name": "ada v2"}  # b sees the bump
    assert await connection.writer.exists("users:1:1") == 1
    assert await other.get("1") == "order-1"  # other namespaces are untouched


async def test_decorator(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")

    @cache.cached(ttl=60, key="user:{user_id}", tags=["user:{user_id}"])
    async def get_user(user_id: int) -> dict[str, object] | None:
        return db.get(user_id)

    @cache.cached
    async def get_name(user_id: int, *, upper: bool = False) -> str:
        row = db.get(user_id)
        assert row is not None
        return str(row["name"]).upper() if upper else str(row["name"])

    assert await get_user(1) == {"id": 1, "name": "ada"}
    assert await get_user(user_id=1) == {"id": 1, "name": "ada"}
    assert db.queries == 1
    assert get_user.key_for(1) == "user:1"
    assert get_user.__name__ == "get_user"
    await get_user.invalidate(1)
    await get_user(1)
    assert db.queries == 2
    assert await cache.invalidate_tags("user:1") == 1

    assert await get_name(2, upper=True) == "GRACE"
    assert await get_name(2) == "grace"
    assert get_name.key_for(2, upper=True).endswith("get_name(2,upper=True)")


async def test_invalidation_during_a_load_is_not_overwritten(connection: CacheConnection, db: UserDB) -> None:
    cache = Cache(connection, namespace="users")
    started = asyncio.Event()
    release = asyncio.Event()

    async def loader() -> dict[str, object] | None:
        row = db.get(1)  # reads the old row...
        started.set()
        await release.wait()
        return row  # ...and tries to store it after the row changed and the key was invalidated

    load = asyncio.create_task(cache.get_or_load("1", loader))
    await started.wait()
    db.rename(1, "renamed")
    await cache.delete("1")
    release.set()
    assert await load == {"id": 1, "name": "ada"}  # the caller gets what it loaded
    assert cache.stats.fenced_stores == 1
    assert await cache.get("1") is None  # but the old row was not cached
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "renamed"}


async def test_loader_error_releases_the_lock(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="n")

    def broken() -> int:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        await cache.get_or_load("k", broken)
    assert await connection.writer.exists("{n:0:k}:lock") == 0
    assert await cache.get_or_load("k", lambda: 5) == 5


async def test_waiter_takes_over_when_lock_holder_vanishes(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="n", lock_ttl=0.3, poll_interval=0.01)
    # A holder that died without releasing: its lock only expires.
    await connection.writer.set("{n:0:k}:lock", "dead-token", px=300)
    assert await cache.get_or_load("k", lambda: "loaded") == "loaded"
    assert cache.stats.lock_waits == 1


async def test_tags_on_set_and_load(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="p", ttl=100, ttl_jitter=0, stale_ttl=0)
    await cache.set("a", 1, tags=["shop:1"])
    await cache.get_or_load("b", lambda: 2, tags=["shop:1", "color:red"])
    await cache.set("c", 3, tags=["shop:2"])
    assert set(await connection.writer.smembers("p:tag:shop:1")) == {b"p:0:a", b"p:0:b"}
    assert 99_000 < await connection.writer.pttl("p:tag:shop:1") <= 100_000
    assert await cache.invalidate_tags("shop:1") == 2
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    assert await cache.get("c") == 3
    assert await connection.writer.exists("p:tag:shop:1") == 0


async def test_msgpack_codec(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="m", codec=MsgpackCodec())
    value = {"bytes": b"\x00\xff", "n": [1, 2.5]}
    assert await cache.get_or_load("k", lambda: value) == value
    assert await cache.get_or_load("k", pytest.fail) == value


async def test_foreign_value_is_a_miss(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="f")
    await connection.writer.set("f:0:k", "not ours")
    assert await cache.get_or_load("k", lambda: 1) == 1


async def test_fail_open_serves_from_the_loader_when_redis_is_down(redis_server: RedisServer, db: UserDB) -> None:
    fragile = options(retry=RetryPolicy(retries=1, base=0.01, cap=0.01), socket_timeout=0.5)
    async with CacheConnection.from_endpoints(redis_server.address, options=fragile) as conn:
        cache = Cache(conn, namespace="users")
        strict = Cache(conn, namespace="users", fail_open=False)
        await cache.get_or_load("1", lambda: db.get(1))
        redis_server.kill()
        assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
        assert cache.stats.errors == 1
        assert db.queries == 2
        with pytest.raises(redis.ConnectionError):
            await strict.get_or_load("1", lambda: db.get(1))
