"""Cache-aside, write-through, tag invalidation and sessions on a Memcached cluster, as on Redis.

Three real memcached nodes behind a configuration endpoint process (module-scoped; every test
uses its own namespace); each "application process" is a MemcachedClient of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from cachefleet.engines import config_endpoint as ce
from cachefleet_client import Cache, CacheOutcome, SessionFormat, SessionStore, WriteThrough
from cachefleet_client.memcached import MemcachedClient, MemcachedStore
from tests.support.memcached import BIND, Processes, free_port

from ._db import UserDB
from .test_sessions import Balancer, Browser, make_app

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    processes = Processes(tmp_path_factory.mktemp("mc-patterns"))
    try:
        ports = [processes.memcached(threads=1, memory_mb=16) for _ in range(3)]
        config = ce.Endpoint("mc", BIND, free_port(), 1, tuple(ce.Member(BIND, BIND, p) for p in ports))
        processes.endpoint(ce.ServerConfig((config,)))
        yield f"{BIND}:{config.port}"
    finally:
        processes.stop_all()


def _store(endpoint: str) -> MemcachedStore:
    return MemcachedStore(MemcachedClient(endpoint, use_pooling=True))


@pytest.fixture
async def store(endpoint: str) -> AsyncIterator[MemcachedStore]:
    s = _store(endpoint)
    yield s
    s.close()
    s.client.close()


@pytest.fixture
async def second_store(endpoint: str) -> AsyncIterator[MemcachedStore]:
    s = _store(endpoint)
    yield s
    s.close()
    s.client.close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[UserDB]:
    database = UserDB(tmp_path / "app.db")
    database.add(1, "ada")
    database.add(2, "grace")
    yield database
    database.close()


def _slow(db: UserDB, user_id: int):  # type: ignore[no-untyped-def]
    async def load() -> dict[str, object] | None:
        await asyncio.sleep(0.2)
        return db.get(user_id)

    return load


async def test_cache_aside_hit_after_load(store: MemcachedStore, db: UserDB) -> None:
    cache = Cache(store, namespace="users-hit")
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
    assert (db.queries, cache.stats.hits, cache.stats.loads) == (1, 1, 1)
    assert await store.get("users-hit:0:1") is not None  # the key layout is Redis's


async def test_stampede_across_processes_loads_once(
    store: MemcachedStore, second_store: MemcachedStore, db: UserDB
) -> None:
    a, b = Cache(store, namespace="users-stampede"), Cache(second_store, namespace="users-stampede")
    loader = _slow(db, 1)
    results = await asyncio.gather(*[a.get_or_load("1", loader) for _ in range(20)], b.get_or_load("1", loader))
    assert db.queries == 1
    assert all(r == {"id": 1, "name": "ada"} for r in results)
    assert a.stats.loads + b.stats.loads == 1  # one process loaded; the other waited for its lock


async def test_negative_entries_and_version_bump(store: MemcachedStore, db: UserDB) -> None:
    cache = Cache(store, namespace="users-version", version_ttl=0)
    assert await cache.get_or_load("9", lambda: db.get(9)) is None
    assert await cache.get_or_load("9", lambda: db.get(9)) is None
    assert cache.stats.negative_hits == 1
    await cache.set("1", {"name": "old"})
    assert await cache.bump_version() == 1
    assert await cache.get("1") is None
    assert await cache.full_key("1") == "users-version:1:1"


async def test_invalidation_during_a_load_is_not_overwritten(store: MemcachedStore, db: UserDB) -> None:
    cache = Cache(store, namespace="users-fence")
    started = asyncio.Event()

    async def load() -> dict[str, object] | None:
        row = db.get(1)  # read before the write below commits
        started.set()
        await asyncio.sleep(0.2)
        return row

    pending = asyncio.create_task(cache.get_or_load("1", load))
    await started.wait()
    db.rename(1, "ada lovelace")
    await cache.delete("1")  # the writer's invalidation, after its commit
    assert await pending == {"id": 1, "name": "ada"}  # the caller gets what it loaded...
    assert cache.stats.fenced_stores == 1  # ...but it was not stored over the invalidation
    assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada lovelace"}


async def test_tags_and_write_through(store: MemcachedStore, db: UserDB) -> None:
    cache = Cache(store, namespace="users-tags")
    await cache.set("1", {"name": "ada"}, tags=["team:a"])
    await cache.get_or_load("2", lambda: db.get(2), tags=["team:a"])
    await cache.set("3", {"name": "other"}, tags=["team:b"])
    assert await cache.invalidate_tags("team:a") == 2
    assert await cache.get("1") is None
    assert await cache.get("2") is None
    assert await cache.get("3") == {"name": "other"}
    assert await cache.invalidate_tags("team:a") == 0
    writes = WriteThrough(cache)
    result = await writes.write("1", lambda: db.rename(1, "countess"), cache_value=lambda _: {"name": "countess"})
    assert result.cache is CacheOutcome.UPDATED
    assert await cache.get("1") == {"name": "countess"}


async def test_long_and_spaced_keys_are_stored_under_a_hash(store: MemcachedStore) -> None:
    cache = Cache(store, namespace="odd-keys")
    odd = "a key with spaces and ünïcode " + "x" * 300
    await cache.set(odd, 42, tags=["odd tag"])
    assert await cache.get(odd) == 42
    assert await cache.invalidate_tags("odd tag") == 1
    assert await cache.get(odd) is None


async def test_fail_open_when_the_cluster_is_unreachable(db: UserDB) -> None:
    client = MemcachedClient(servers=[(BIND, free_port())], connect_timeout=0.2, dead_timeout=0.1)
    store = MemcachedStore(client)
    try:
        cache = Cache(store, namespace="down")
        assert await cache.get_or_load("1", lambda: db.get(1)) == {"id": 1, "name": "ada"}
        assert cache.stats.errors == 1
    finally:
        store.close()
        client.close()


async def test_sessions_move_between_instances_and_slide(store: MemcachedStore, second_store: MemcachedStore) -> None:
    balancer = Balancer(make_app(store), make_app(second_store))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=balancer, base_url="http://testserver") as client:
        browser = Browser(client, balancer)
        await browser.get("a", "/login", user="ada")
        assert (await browser.get("b", "/get")).json() == {"user": "ada"}
        await browser.get("b", "/put", cart="3")
        assert (await browser.get("a", "/get")).json() == {"user": "ada", "cart": "3"}
        await browser.get("a", "/logout")
        assert (await browser.get("b", "/get")).json() == {}
    sessions = SessionStore(store, fmt=SessionFormat(ttl=1000.0))
    sid = "s" * 20
    await sessions.save(sid, {"n": 1})
    assert 990 <= _ttl(store, "session:" + sid) <= 1000
    store.client.touch("session:" + sid, 5, noreply=False)  # as if it had been idle for a long time
    assert _ttl(store, "session:" + sid) <= 5
    assert await sessions.load(sid) == {"n": 1}
    assert 990 <= _ttl(store, "session:" + sid) <= 1000  # a read restarts the TTL (sliding)
    await sessions.delete(sid)
    assert await sessions.load(sid) is None


def _ttl(store: MemcachedStore, key: str) -> int:
    """The seconds ``key`` has left, as its node says (meta get with the t flag)."""
    node = store.client.node_for(key)
    assert node is not None
    with MemcachedClient(servers=[node]) as direct:
        (client,) = direct._clients.values()
        answer = client.raw_command(f"mg {key} t".encode(), b"\r\n")
    return int(answer.split()[1].removeprefix(b"t"))
