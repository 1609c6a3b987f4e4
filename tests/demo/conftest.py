"""Fixtures for the demo: a real redis-server and a seeded SQLite database (async tests on anyio)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cachefleet.demo.database import seed_database
from tests.client.conftest import RedisServer

PRODUCTS = 50
USERS = 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    await seed_database(url, products=PRODUCTS, users=USERS)
    return url
