"""The demo's relational database: products and users, in SQLite (default) or PostgreSQL.

Each app instance opens its own `Database` and every query goes through `Database._query`, which
counts it (the figure `/stats` reports) and runs it on the instance's one connection, one query at
a time. `query_cost` seconds are then spent holding that connection: an artificial per-query cost.
SQLite answers a primary-key lookup in tens of microseconds, far below what an HTTP request costs
anyway, so without it a cache would have nothing to save; with it (10 ms by default on SQLite, none
on PostgreSQL) the database is the bottleneck that a busy real one is, and queries queue behind
each other. The report states the cost in force.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_SQLITE_COST",
    "Database",
    "PostgresDatabase",
    "SqliteDatabase",
    "database_kind",
    "default_query_cost",
    "drop_tables",
    "open_database",
    "seed_database",
]

T = TypeVar("T")

DEFAULT_SQLITE_COST = 0.010
# Prefixed so that pointing the demo at an existing PostgreSQL database cannot clash with its tables.
PRODUCTS = "cachefleet_demo_products"
USERS = "cachefleet_demo_users"
PRODUCT_COLUMNS = ("id", "name", "category", "price_cents", "stock", "description", "version", "updated_at")
USER_COLUMNS = ("id", "name", "email")
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "tools", "toys")
# Only these columns may change through PUT /product/{id}.
WRITABLE = ("price_cents", "stock")


def database_kind(url: str) -> str:
    """The kind of database a URL names ("sqlite" or "postgresql"); ValueError for anything else."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


def sqlite_path(url: str) -> Path:
    path = urlsplit(url).path
    if not path:
        raise ValueError(f"no file in {url!r}: use sqlite:///absolute/path")
    return Path(path)


class Database:
    """One connection, one query at a time, each counted and followed by `query_cost` seconds."""

    kind = "database"

    def __init__(self, *, query_cost: float = 0.0) -> None:
        self.query_cost = query_cost
        self.queries = 0
        self._lock = asyncio.Lock()

    async def _query(self, run: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            self.queries += 1
            result = await run()
            if self.query_cost > 0:
                await asyncio.sleep(self.query_cost)
            return result

    async def product(self, product_id: int) -> dict[str, Any] | None:
        raise NotImplementedError

    async def update_product(self, product_id: int, changes: Mapping[str, int]) -> dict[str, Any] | None:
        """Apply `changes` (columns of WRITABLE), bump `version`; the new row, or None if no such id."""
        raise NotImplementedError

    async def user(self, name: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


def _assignments(changes: Mapping[str, int], placeholder: str) -> tuple[str, list[Any]]:
    unknown = set(changes) - set(WRITABLE)
    if unknown:
        raise ValueError(f"not writable: {', '.join(sorted(unknown))}")
    columns = [c for c in WRITABLE if c in changes]
    sets = [f"{c} = {placeholder}" for c in columns] + ["version = version + 1", f"updated_at = {placeholder}"]
    return ", ".join(sets), [int(changes[c]) for c in columns] + [time.time()]


def _row(columns: tuple[str, ...], row: Any) -> dict[str, Any] | None:
    return None if row is None else dict(zip(columns, row, strict=True))


class SqliteDatabase(Database):
    """sqlite3 in a worker thread (it blocks); WAL so that two instances read while one writes."""

    kind = "sqlite"

    def __init__(self, path: Path, *, query_cost: float = DEFAULT_SQLITE_COST) -> None:
        super().__init__(query_cost=query_cost)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._conn.execute("PRAGMA journal_mode=WAL")

    def _one(self, sql: str, params: tuple[Any, ...] | list[Any]) -> Any:
        return self._conn.execute(sql, params).fetchone()

    async def product(self, product_id: int) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM {PRODUCTS} WHERE id = ?"
        row = await self._query(lambda: asyncio.to_thread(self._one, sql, (product_id,)))
        return _row(PRODUCT_COLUMNS, row)

    async def update_product(self, product_id: int, changes: Mapping[str, int]) -> dict[str, Any] | None:
        sets, params = _assignments(changes, "?")
        sql = f"UPDATE {PRODUCTS} SET {sets} WHERE id = ? RETURNING {', '.join(PRODUCT_COLUMNS)}"
        row = await self._query(lambda: asyncio.to_thread(self._one, sql, [*params, product_id]))
        return _row(PRODUCT_COLUMNS, row)

    async def user(self, name: str) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(USER_COLUMNS)} FROM {USERS} WHERE name = ?"
        row = await self._query(lambda: asyncio.to_thread(self._one, sql, (name,)))
        return _row(USER_COLUMNS, row)

    async def aclose(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    """psycopg 3, one async connection in autocommit mode."""

    kind = "postgresql"

    def __init__(self, connection: Any, *, query_cost: float = 0.0) -> None:
        super().__init__(query_cost=query_cost)
        self._conn = connection

    @classmethod
    async def connect(cls, url: str, *, query_cost: float = 0.0) -> PostgresDatabase:
        import psycopg  # noqa: PLC0415  # optional dependency (the `postgres` extra)

        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        return cls(connection, query_cost=query_cost)

    async def _one(self, sql: str, params: tuple[Any, ...] | list[Any]) -> Any:
        async with self._conn.cursor() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchone()

    async def product(self, product_id: int) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM {PRODUCTS} WHERE id = %s"
        return _row(PRODUCT_COLUMNS, await self._query(lambda: self._one(sql, (product_id,))))

    async def update_product(self, product_id: int, changes: Mapping[str, int]) -> dict[str, Any] | None:
        sets, params = _assignments(changes, "%s")
        sql = f"UPDATE {PRODUCTS} SET {sets} WHERE id = %s RETURNING {', '.join(PRODUCT_COLUMNS)}"
        return _row(PRODUCT_COLUMNS, await self._query(lambda: self._one(sql, [*params, product_id])))

    async def user(self, name: str) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(USER_COLUMNS)} FROM {USERS} WHERE name = %s"
        return _row(USER_COLUMNS, await self._query(lambda: self._one(sql, (name,))))

    async def aclose(self) -> None:
        await self._conn.close()


def default_query_cost(kind: str) -> float:
    return DEFAULT_SQLITE_COST if kind == "sqlite" else 0.0


async def open_database(url: str, *, query_cost: float | None = None) -> Database:
    """A connection to a seeded database; `query_cost` None means the default for its kind."""
    if database_kind(url) == "sqlite":
        cost = DEFAULT_SQLITE_COST if query_cost is None else query_cost
        return SqliteDatabase(sqlite_path(url), query_cost=cost)
    return await PostgresDatabase.connect(url, query_cost=0.0 if query_cost is None else query_cost)


# Seeding


def user_name(index: int) -> str:
    return f"user{index:05d}"


def _rows(products: int, users: int, seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    now = time.time()
    product_rows = [
        (
            i,
            f"Product {i}",
            rng.choice(CATEGORIES),
            rng.randrange(199, 19999),
            rng.randrange(0, 500),
            f"Product {i}: " + " ".join(rng.choice(CATEGORIES) for _ in range(24)),
            1,
            now,
        )
        for i in range(1, products + 1)
    ]
    user_rows = [(i, user_name(i), f"{user_name(i)}@example.com") for i in range(1, users + 1)]
    return product_rows, user_rows


_PRODUCTS_DDL = (
    f"CREATE TABLE {PRODUCTS} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,"
    " price_cents INTEGER NOT NULL, stock INTEGER NOT NULL, description TEXT NOT NULL,"
    " version INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
)
_USERS_DDL = f"CREATE TABLE {USERS} (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, email TEXT NOT NULL)"


async def seed_database(url: str, *, products: int, users: int, seed: int = 1) -> None:
    """(Re)create the demo's two tables and fill them; other tables are never touched."""
    product_rows, user_rows = _rows(products, users, seed)
    if database_kind(url) == "sqlite":
        await asyncio.to_thread(_seed_sqlite, sqlite_path(url), product_rows, user_rows)
        return
    import psycopg  # noqa: PLC0415

    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with conn.cursor() as cursor:
            await cursor.execute(f"DROP TABLE IF EXISTS {PRODUCTS}, {USERS}")
            await cursor.execute(_PRODUCTS_DDL)
            await cursor.execute(_USERS_DDL)
            marks = ", ".join(["%s"] * len(PRODUCT_COLUMNS))
            await cursor.executemany(f"INSERT INTO {PRODUCTS} VALUES ({marks})", product_rows)
            await cursor.executemany(f"INSERT INTO {USERS} VALUES (%s, %s, %s)", user_rows)
        await conn.commit()


async def drop_tables(url: str) -> None:
    """Remove the demo's tables from a PostgreSQL database (an SQLite file is simply deleted)."""
    if database_kind(url) != "postgresql":
        return
    import psycopg  # noqa: PLC0415

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {PRODUCTS}, {USERS}")


def _seed_sqlite(path: Path, product_rows: list[tuple[Any, ...]], user_rows: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(f"DROP TABLE IF EXISTS {PRODUCTS}")
            conn.execute(f"DROP TABLE IF EXISTS {USERS}")
            conn.execute(_PRODUCTS_DDL)
            conn.execute(_USERS_DDL)
            marks = ", ".join(["?"] * len(PRODUCT_COLUMNS))
            conn.executemany(f"INSERT INTO {PRODUCTS} VALUES ({marks})", product_rows)
            conn.executemany(f"INSERT INTO {USERS} VALUES (?, ?, ?)", user_rows)
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
