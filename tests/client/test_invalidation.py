from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cachefleet_client import Cache, CacheConnection, Invalidation, PostgresInvalidationListener, invalidate

from .conftest import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


async def test_invalidate_by_key_tag_and_version(connection: CacheConnection) -> None:
    cache = Cache(connection, namespace="inv")
    await cache.set("a", 1)
    await cache.set("b", 2, tags=["group"])
    await cache.set("c", 3)
    assert await invalidate(cache, Invalidation(keys=("a",), tags=("group",))) == 2
    assert [await cache.get(k) for k in "abc"] == [None, None, 3]
    assert await invalidate(cache, Invalidation(bump_version=True)) == 0
    assert await cache.get("c") is None
    assert await cache.version() == 1


class Postgres:
    """A throwaway PostgreSQL 15 cluster on a free port, its socket in its own directory.

    As root, it runs as the `postgres` user (initdb refuses root) in a directory that user owns
    (pytest's tmp_path is private to root).
    """

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            pytest.fail(f"PostgreSQL 15 binaries not found in {PG_BIN}: install postgresql-15 for this test")
        self.run_as: dict[str, Any] = {}
        self.root = Path(tempfile.mkdtemp(prefix="cf-client-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root and there is no 'postgres' user to run PostgreSQL as")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.data = self.root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def conninfo(self) -> str:
        return f"host={self.root} port={self.port} user=postgres dbname=postgres connect_timeout=5"

    def start(self) -> None:
        init = subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"],
            capture_output=True,
            check=False,
            **self.run_as,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed: {init.stderr.decode()[-2000:]}")
        log = self.root / "postgres.log"
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root)]
        argv += ["-c", "listen_addresses=", "-c", "fsync=off"]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                **self.run_as,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"postgres exited: {log.read_text()[-2000:]}")
            try:
                with psycopg.connect(self.conninfo):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        pytest.fail(f"postgres did not accept connections: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGQUIT)  # immediate shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


async def _eventually(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _applied(listener: PostgresInvalidationListener, count: int) -> bool:
    return listener.applied == count


def _mapper(payload: str) -> Invalidation | list[str] | None:
    kind, _, value = payload.partition(":")
    if kind == "user":
        return [value]
    if kind == "shop":
        return Invalidation(tags=(f"shop:{value}",))
    if kind == "bad":
        raise ValueError(payload)
    return None


async def test_listen_notify_invalidates(connection: CacheConnection, postgres: Postgres) -> None:
    cache = Cache(connection, namespace="users")
    await cache.set("1", {"name": "ada"})
    await cache.set("2", {"name": "grace"})
    await cache.set("item:9", 9, tags=["shop:3"])
    async with await psycopg.AsyncConnection.connect(postgres.conninfo, autocommit=True) as db:
        await db.execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
        await db.execute("INSERT INTO users VALUES (1, 'ada'), (2, 'grace')")
        await db.execute(
            """
            CREATE FUNCTION users_changed() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('cache', 'user:' || NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER users_changed AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_changed();
            """
        )
        listener = PostgresInvalidationListener(cache, postgres.conninfo, "cache", _mapper)
        async with listener:
            await db.execute("UPDATE users SET name = 'ada lovelace' WHERE id = 1")
            await _eventually(lambda: _is_gone(cache, "1"))
            assert await cache.get("2") == {"name": "grace"}

            await db.execute("SELECT pg_notify('cache', 'bad:payload')")  # logged, listener survives
            await db.execute("SELECT pg_notify('cache', 'shop:3')")
            await _eventually(lambda: _is_gone(cache, "item:9"))
            # The key goes before invalidate() returns (it drains the tag once more): count after it.
            await _eventually(lambda: _applied(listener, 2))


async def test_listener_bumps_version_after_reconnect(connection: CacheConnection, postgres: Postgres) -> None:
    cache = Cache(connection, namespace="users")
    await cache.set("1", "cached")
    listener = PostgresInvalidationListener(cache, postgres.conninfo, "cache", _mapper, backoff_base=0.05)
    async with listener, await psycopg.AsyncConnection.connect(postgres.conninfo, autocommit=True) as db:
        # Drop the listener's session: notifications sent meanwhile would be lost.
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
        await _eventually(lambda: _version_is(cache, 1))
        assert await cache.get("1") is None
        await _eventually(_ready(listener))
        await cache.set("2", "x")
        await db.execute("SELECT pg_notify('cache', 'user:2')")
        await _eventually(lambda: _is_gone(cache, "2"))


async def test_listener_start_times_out_when_postgres_is_down(connection: CacheConnection) -> None:
    conninfo = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres connect_timeout=1"
    listener = PostgresInvalidationListener(
        Cache(connection, namespace="n"), conninfo, "cache", _mapper, ready_timeout=0.5
    )
    with pytest.raises(TimeoutError, match="LISTEN cache"):
        async with listener:
            pass


async def _is_gone(cache: Cache, key: str) -> bool:
    return await cache.get(key) is None


async def _version_is(cache: Cache, version: int) -> bool:
    cache.version_ttl = 0
    return await cache.version() == version


def _ready(listener: PostgresInvalidationListener) -> Any:
    async def check() -> bool:
        return listener.ready.is_set()

    return check
