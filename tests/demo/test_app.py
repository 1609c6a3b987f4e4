"""The demo shop in process (two instances on one real Redis), through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from cachefleet.demo.app import AppConfig, DemoState, build_app
from cachefleet.demo.database import open_database
from cachefleet_client import CacheConnection
from tests.client.conftest import RedisServer, options

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "test-secret-" + "x" * 20


@dataclass
class Instance:
    app: Starlette
    client: httpx.AsyncClient

    @property
    def state(self) -> DemoState:
        state: DemoState = self.app.state.demo
        return state


@pytest.fixture
async def shop(redis_server: RedisServer, database_url: str) -> AsyncIterator[list[Instance]]:
    """Instances a and b: each its own database connection and cache connection, one Redis."""
    async with AsyncExitStack() as stack:
        instances = []
        for name in "ab":
            database = await open_database(database_url, query_cost=0.0)
            stack.push_async_callback(database.aclose)
            connection = CacheConnection.from_endpoints(redis_server.address, options=options())
            stack.push_async_callback(connection.aclose)
            app = build_app(AppConfig(name=name, session_secret=SECRET), database=database, connection=connection)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://shop-{name}")
            stack.push_async_callback(client.aclose)
            instances.append(Instance(app, client))
        yield instances


async def test_without_the_cache_every_read_queries_the_database(shop: list[Instance]) -> None:
    a = shop[0]
    assert (await a.client.put("/admin/cache", json={"enabled": False})).json()["cache_enabled"] is False
    for _ in range(3):
        assert (await a.client.get("/product/7")).json()["id"] == 7
    stats = (await a.client.get("/stats")).json()
    assert stats["db_queries"] == 3
    assert stats["cache"]["hits"] == 0


async def test_cache_aside_one_query_then_hits_on_every_instance(shop: list[Instance]) -> None:
    a, b = shop
    first = (await a.client.get("/product/3")).json()
    assert (await b.client.get("/product/3")).json() == first
    assert (await a.client.get("/product/3")).json() == first
    assert a.state.database.queries + b.state.database.queries == 1
    assert a.state.cache.stats.hits + b.state.cache.stats.hits == 2


async def test_unknown_product_is_404_and_cached_as_negative(shop: list[Instance]) -> None:
    a, b = shop
    assert (await a.client.get("/product/99999")).status_code == 404
    assert (await b.client.get("/product/99999")).status_code == 404
    assert a.state.database.queries + b.state.database.queries == 1


async def test_write_through_updates_the_cache_for_the_other_instance(shop: list[Instance]) -> None:
    a, b = shop
    before = (await b.client.get("/product/5")).json()
    written = await a.client.put("/product/5", json={"stock": 4242})
    assert written.status_code == 200
    assert written.json()["version"] == before["version"] + 1
    queries = b.state.database.queries
    after = (await b.client.get("/product/5")).json()
    assert after == written.json()
    assert after["stock"] == 4242
    assert b.state.database.queries == queries  # served from the cache, not reloaded
    assert (await a.client.get("/stats")).json()["write_through"]["updated"] == 1


@pytest.mark.parametrize("body", [{}, {"name": "x"}, {"stock": "many"}, [1]])
async def test_bad_writes_are_400(shop: list[Instance], body: object) -> None:
    assert (await shop[0].client.put("/product/5", json=body)).status_code == 400


async def test_session_made_on_one_instance_is_read_and_changed_on_the_other(shop: list[Instance]) -> None:
    a, b = shop
    login = await a.client.post("/login", json={"user": "user00003"})
    assert login.status_code == 200
    # The browser's cookie, carried to the other instance as a load balancer would send it.
    cookie = {"cookie": f"session={login.cookies['session']}"}
    on_b = await b.client.get("/me", headers=cookie)
    assert on_b.json() == {"user": "user00003", "views": 1, "login_instance": "a", "instance": "b"}
    on_a = await a.client.get("/me", headers=cookie)
    assert on_a.json()["views"] == 2
    assert (await b.client.post("/logout", headers=cookie)).status_code == 200
    assert (await a.client.get("/me", headers=cookie)).status_code == 401


async def test_login_of_an_unknown_user_is_refused(shop: list[Instance]) -> None:
    assert (await shop[0].client.post("/login", json={"user": "nobody"})).status_code == 401
    assert (await shop[0].client.post("/login", json={})).status_code == 400


async def test_leaderboard_across_instances(shop: list[Instance]) -> None:
    a, b = shop
    assert (await a.client.post("/score", json={"player": "ann", "points": 5})).json()["score"] == 5
    assert (await b.client.post("/score", json={"player": "bob", "points": 7})).json()["score"] == 7
    assert (await b.client.post("/score", json={"player": "ann", "points": 3})).json()["score"] == 8
    top = (await a.client.get("/leaderboard", params={"n": 3})).json()["top"]
    assert top == [{"player": "ann", "score": 8.0, "rank": 1}, {"player": "bob", "score": 7.0, "rank": 2}]
    assert (await a.client.post("/score", json={"player": "ann", "points": True})).status_code == 400
