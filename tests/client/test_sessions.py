from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import flask
import httpx
import pytest
import redis
import redis.cluster
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cachefleet_client import (
    CacheConnection,
    SessionFormat,
    SessionMiddleware,
    SessionSigner,
    SessionStore,
)
from cachefleet_client.wsgi_sessions import RedisSessionInterface

from .conftest import RedisServer, options

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "s3cret"


def make_app(connection: CacheConnection, *, ttl: float = 60.0, max_age: int | None = None) -> Starlette:
    async def login(request: Request) -> JSONResponse:
        request.session["user"] = request.query_params["user"]
        request.session.regenerate()  # type: ignore[attr-defined]
        return JSONResponse({"ok": True})

    async def put(request: Request) -> JSONResponse:
        request.session.update(request.query_params)
        return JSONResponse(dict(request.session))

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    store = SessionStore(connection, fmt=SessionFormat(ttl=ttl))
    middleware = Middleware(SessionMiddleware, store=store, signer=SessionSigner(SECRET), secure=False, max_age=max_age)
    routes = [Route(f"/{fn.__name__}", fn) for fn in (login, put, get, logout)]
    return Starlette(routes=routes, middleware=[middleware])


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def sid_of(cookie: str) -> str:
    return cookie.rpartition(".")[0]


class Balancer(httpx.AsyncBaseTransport):
    """A load balancer in front of app instances: `target` picks the instance for the next request."""

    def __init__(self, *apps: Starlette) -> None:
        self.instances = [httpx.ASGITransport(app=app) for app in apps]
        self.target = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.instances[self.target].handle_async_request(request)


class Browser:
    """One browser (one cookie jar) whose requests land on instance A or B."""

    def __init__(self, client: httpx.AsyncClient, balancer: Balancer) -> None:
        self.client = client
        self.balancer = balancer
        self.cookies = client.cookies

    async def get(self, instance: str, path: str, **params: str) -> httpx.Response:
        self.balancer.target = "ab".index(instance)
        return await self.client.get(path, params=params)


@pytest.fixture
async def browser(connection: CacheConnection, second_connection: CacheConnection) -> AsyncIterator[Browser]:
    """Two app instances, each with its own Redis client, behind one load balancer."""
    balancer = Balancer(make_app(connection), make_app(second_connection))
    async with httpx.AsyncClient(transport=balancer, base_url="http://testserver") as client:
        yield Browser(client, balancer)


async def test_session_moves_between_instances(browser: Browser, connection: CacheConnection) -> None:
    assert (await browser.get("a", "/put", cart="3 apples")).json() == {"cart": "3 apples"}
    cookie = browser.cookies["session"]
    assert await connection.writer.exists(f"session:{sid_of(cookie)}") == 1
    assert (await browser.get("b", "/get")).json() == {"cart": "3 apples"}
    assert (await browser.get("b", "/put", seen_by="b")).json() == {"cart": "3 apples", "seen_by": "b"}
    assert (await browser.get("a", "/get")).json() == {"cart": "3 apples", "seen_by": "b"}
    assert browser.cookies["session"] == cookie  # same id throughout


async def test_no_session_no_cookie(browser: Browser) -> None:
    response = await browser.get("a", "/get")
    assert response.json() == {}
    assert "set-cookie" not in response.headers


async def test_sliding_ttl(connection: CacheConnection) -> None:
    async with client_for(make_app(connection, ttl=1.0)) as client:
        await client.get("/put", params={"x": "1"})
        key = f"session:{sid_of(client.cookies['session'])}"
        for _ in range(3):  # 3 x 0.6 s > 1 s TTL: alive only because each request slides it
            await asyncio.sleep(0.6)
            assert (await client.get("/get")).json() == {"x": "1"}
            assert 900 < await connection.writer.pttl(key) <= 1000
        await asyncio.sleep(1.2)
        assert (await client.get("/get")).json() == {}  # idle longer than the TTL: gone
        assert await connection.writer.exists(key) == 0


async def test_cookie_max_age_slides_too(connection: CacheConnection) -> None:
    async with client_for(make_app(connection, max_age=600)) as client:
        await client.get("/put", params={"x": "1"})
        response = await client.get("/get")
        assert "Max-Age=600" in response.headers["set-cookie"]
        assert "HttpOnly" in response.headers["set-cookie"]
        assert "SameSite=Lax" in response.headers["set-cookie"]


async def test_regenerate_on_login(browser: Browser, connection: CacheConnection) -> None:
    await browser.get("a", "/put", cart="1")
    before = browser.cookies["session"]
    await browser.get("a", "/login", user="ada")
    after = browser.cookies["session"]
    assert sid_of(after) != sid_of(before)
    assert await connection.writer.exists(f"session:{sid_of(before)}") == 0
    assert (await browser.get("b", "/get")).json() == {"cart": "1", "user": "ada"}  # data moved to the new id
    async with client_for(make_app(connection)) as attacker:
        attacker.cookies.set("session", before)  # the fixated/old id is worthless now
        assert (await attacker.get("/get")).json() == {}


async def test_tampered_cookie_is_rejected(connection: CacheConnection) -> None:
    async with client_for(make_app(connection)) as client:
        await client.get("/put", params={"x": "1"})
        good = client.cookies["session"]
        sid, _, mac = good.rpartition(".")
        flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
        for forged in (f"{sid}.{flipped}", f"{sid[:-1]}x.{mac}", sid, "garbage", f"{sid}.{mac}.extra"):
            client.cookies.clear()
            client.cookies.set("session", forged)
            assert (await client.get("/get")).json() == {}, forged
        other = SessionSigner("another secret")
        client.cookies.clear()
        client.cookies.set("session", other.sign(sid))
        assert (await client.get("/get")).json() == {}


async def test_logout_clears_store_and_cookie(browser: Browser, connection: CacheConnection) -> None:
    await browser.get("a", "/put", x="1")
    sid = sid_of(browser.cookies["session"])
    response = await browser.get("b", "/logout")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert await connection.writer.exists(f"session:{sid}") == 0


def test_signer_key_rotation() -> None:
    old = SessionSigner("old")
    rotated = SessionSigner("new", old_secrets=["old"])
    sid = SessionSigner.new_id()
    assert rotated.unsign(old.sign(sid)) == sid
    assert old.unsign(rotated.sign(sid)) is None


@pytest.fixture
def flask_apps(redis_server: RedisServer) -> Iterator[Callable[[], flask.Flask]]:
    """Builds Flask app instances, each with its own sync client (closed at teardown)."""
    clients: list[redis.Redis | redis.cluster.RedisCluster] = []

    def build() -> flask.Flask:
        conn = CacheConnection.from_endpoints(redis_server.address, options=options())
        clients.append(conn.sync_writer())
        return make_flask_app(clients[-1])

    yield build
    for client in clients:
        client.close()


def make_flask_app(client: redis.Redis | redis.cluster.RedisCluster) -> flask.Flask:
    app = flask.Flask("sessions-test")
    app.secret_key = SECRET
    app.session_interface = RedisSessionInterface(client, fmt=SessionFormat(ttl=60))

    @app.get("/put")
    def put() -> dict[str, str]:
        flask.session.update(flask.request.args.to_dict())
        return dict(flask.session)

    @app.get("/get")
    def get() -> dict[str, str]:
        return dict(flask.session)

    @app.get("/login")
    def login() -> dict[str, str]:
        flask.session["user"] = flask.request.args["user"]
        flask.session.regenerate()  # type: ignore[attr-defined]
        return {}

    @app.get("/logout")
    def logout() -> dict[str, str]:
        flask.session.clear()
        return {}

    return app


async def test_flask_sessions(flask_apps: Callable[[], flask.Flask], connection: CacheConnection) -> None:
    # The Flask app is sync: drive it from a worker thread so this event loop stays free.
    def scenario() -> tuple[str, str, object]:
        a, b = flask_apps().test_client(), flask_apps().test_client()
        a.get("/put?cart=2")
        first = a.get_cookie("session")
        assert first is not None
        b.set_cookie("session", first.value)
        assert b.get("/get").json == {"cart": "2"}  # another instance reads it
        a.get("/login?user=grace")
        second = a.get_cookie("session")
        assert second is not None
        return first.value, second.value, a.get("/get").json

    first, second, seen = await asyncio.to_thread(scenario)
    assert sid_of(first) != sid_of(second)
    assert seen == {"cart": "2", "user": "grace"}
    assert 0 < await connection.writer.ttl(f"session:{sid_of(second)}") <= 60
    assert await connection.writer.exists(f"session:{sid_of(first)}") == 0
    # Same format and secret: the ASGI app reads the session Flask wrote.
    async with client_for(make_app(connection)) as asgi:
        asgi.cookies.set("session", second)
        assert (await asgi.get("/get")).json() == {"cart": "2", "user": "grace"}


async def test_flask_tampered_cookie_and_logout(
    flask_apps: Callable[[], flask.Flask], connection: CacheConnection
) -> None:
    def scenario() -> str:
        client = flask_apps().test_client()
        client.get("/put?x=1")
        cookie = client.get_cookie("session")
        assert cookie is not None
        client.set_cookie("session", cookie.value[:-2] + "xx")
        assert client.get("/get").json == {}
        client.set_cookie("session", cookie.value)
        assert client.get("/get").json == {"x": "1"}
        response = client.get("/logout")
        assert "session=;" in response.headers["Set-Cookie"]
        return cookie.value

    cookie = await asyncio.to_thread(scenario)
    assert await connection.writer.exists(f"session:{sid_of(cookie)}") == 0
