"""The demo's database layer against SQLite and a throwaway PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachefleet.demo.database import (
    Database,
    database_kind,
    drop_tables,
    open_database,
    seed_database,
    user_name,
)
from tests.client.test_invalidation import Postgres

pytestmark = pytest.mark.anyio


def test_database_kind() -> None:
    assert database_kind("sqlite:////tmp/x.db") == "sqlite"
    assert database_kind("postgresql://u@h/db") == "postgresql"
    assert database_kind("postgres://u@h/db") == "postgresql"
    with pytest.raises(ValueError, match="unsupported"):
        database_kind("mysql://u@h/db")


async def _exercise(database: Database) -> None:
    product = await database.product(3)
    assert product is not None
    assert product["id"] == 3
    assert product["version"] == 1
    assert await database.product(10_000) is None
    updated = await database.update_product(3, {"stock": 17, "price_cents": 999})
    assert updated is not None
    assert (updated["stock"], updated["price_cents"], updated["version"]) == (17, 999, 2)
    assert await database.product(3) == updated
    assert await database.update_product(10_000, {"stock": 1}) is None
    with pytest.raises(ValueError, match="not writable"):
        await database.update_product(3, {"name": 1})
    user = await database.user(user_name(2))
    assert user is not None
    assert user["id"] == 2
    assert await database.user("nobody") is None
    assert database.queries == 7  # the refused update never reached the database


async def test_sqlite(database_url: str) -> None:
    database = await open_database(database_url, query_cost=0.0)
    try:
        assert database.kind == "sqlite"
        await _exercise(database)
    finally:
        await database.aclose()


async def test_query_cost_holds_the_connection(database_url: str) -> None:
    database = await open_database(database_url, query_cost=0.02)
    try:
        started = time.monotonic()
        for pid in (1, 2, 3):
            await database.product(pid)
        assert time.monotonic() - started >= 0.06
    finally:
        await database.aclose()


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.mark.integration
async def test_postgresql(postgres: Postgres, tmp_path: Path) -> None:
    url = f"postgresql://postgres@/postgres?host={postgres.root}&port={postgres.port}"
    await seed_database(url, products=20, users=5)
    database = await open_database(url)
    try:
        assert database.kind == "postgresql"
        assert database.query_cost == 0.0
        await _exercise(database)
    finally:
        await database.aclose()
    await drop_tables(url)
    await seed_database(url, products=5, users=5)  # re-seeding replaces the demo's own tables
    database = await open_database(url)
    try:
        assert await database.product(6) is None
    finally:
        await database.aclose()
        await drop_tables(url)
