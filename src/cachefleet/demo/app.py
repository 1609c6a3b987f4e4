"""The demo's web application: a shop whose product pages, sessions and leaderboard use the cache.

One `build_app` call makes one app instance; the demo runs two, each with its own database
connection and its own cache connection, and a load balancer's worth of clients in front.

| route                  | pattern                                                              |
|------------------------|----------------------------------------------------------------------|
| `GET /product/{id}`    | cache-aside (`Cache.get_or_load`): the database only on a miss        |
| `PUT /product/{id}`    | write-through (`WriteThrough.write`): database first, then the cache |
| `POST /login`, `GET /me`, `POST /logout` | server-side session (`SessionMiddleware`), any instance |
| `POST /score`, `GET /leaderboard` | `Leaderboard` on a sorted set                             |
| `GET /stats`           | this instance's database queries and cache counters                  |
| `PUT /admin/cache`     | `{"enabled": false}` turns the cache off: products go to the database |

With the cache off, reads and writes go to the database alone, which is how the demo counts the
queries an application without a cache would make. Sessions and the leaderboard live in Redis
either way: they have no database behind them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cachefleet.demo.database import WRITABLE, Database
from cachefleet_client import (
    Cache,
    CacheConnection,
    CacheOutcome,
    Leaderboard,
    SessionMiddleware,
    SessionSigner,
    SessionStore,
    WriteResult,
    WriteThrough,
)

__all__ = ["AppConfig", "DemoState", "build_app"]

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class AppConfig:
    name: str
    session_secret: str
    namespace: str = "products"
    board: str = "demo"
    cache_ttl: float = 300.0
    session_ttl: float = 1800.0


@dataclass
class DemoState:
    """What one instance holds; `build_app` makes it, tests may read it as `app.state.demo`."""

    config: AppConfig
    database: Database
    connection: CacheConnection
    cache: Cache
    write_through: WriteThrough
    board: Leaderboard
    cache_enabled: bool = True
    writes: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in CacheOutcome})

    def stats(self) -> JsonDict:
        cache = asdict(self.cache.stats)
        cache["hit_rate"] = self.cache.stats.hit_rate
        return {
            "instance": self.config.name,
            "database": self.database.kind,
            "db_queries": self.database.queries,
            "cache_enabled": self.cache_enabled,
            "cache": cache,
            "write_through": dict(self.writes),
        }


def build_app(
    config: AppConfig,
    *,
    database: Database,
    connection: CacheConnection,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    cache = Cache(connection, namespace=config.namespace, ttl=config.cache_ttl)
    state = DemoState(
        config=config,
        database=database,
        connection=connection,
        cache=cache,
        write_through=WriteThrough(cache),
        board=Leaderboard(connection, config.board),
    )
    routes = [
        Route("/healthz", _endpoint(state, healthz)),
        Route("/product/{product_id:int}", _endpoint(state, get_product), methods=["GET"]),
        Route("/product/{product_id:int}", _endpoint(state, put_product), methods=["PUT"]),
        Route("/login", _endpoint(state, login), methods=["POST"]),
        Route("/me", _endpoint(state, me)),
        Route("/logout", _endpoint(state, logout), methods=["POST"]),
        Route("/score", _endpoint(state, post_score), methods=["POST"]),
        Route("/leaderboard", _endpoint(state, leaderboard)),
        Route("/stats", _endpoint(state, stats)),
        Route("/admin/cache", _endpoint(state, set_cache), methods=["PUT"]),
    ]
    store = SessionStore(connection)
    # secure=False: the demo speaks plain HTTP on loopback, where browsers would drop Secure cookies.
    session = Middleware(SessionMiddleware, store=store, signer=SessionSigner(config.session_secret), secure=False)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()

    app = Starlette(
        routes=routes,
        middleware=[session],
        exception_handlers={RedisError: _cache_unavailable},
        lifespan=lifespan,
    )
    app.state.demo = state
    return app


Handler = Callable[[DemoState, Request], Awaitable[JSONResponse]]


def _endpoint(state: DemoState, handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        return await handler(state, request)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _cache_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # Reached only once the connection's retries are spent (sessions, leaderboard).
    return JSONResponse({"error": "cache unavailable", "detail": repr(exc)}, status_code=503)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> JsonDict | None:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


# Routes


async def healthz(state: DemoState, _request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "instance": state.config.name})


async def get_product(state: DemoState, request: Request) -> JSONResponse:
    product_id: int = request.path_params["product_id"]
    if state.cache_enabled:
        product: JsonDict | None = await state.cache.get_or_load(
            f"product:{product_id}", lambda: state.database.product(product_id)
        )
    else:
        product = await state.database.product(product_id)
    if product is None:
        return _error(404, f"no product {product_id}")
    return JSONResponse(product)


async def put_product(state: DemoState, request: Request) -> JSONResponse:
    product_id: int = request.path_params["product_id"]
    body = await _json_body(request)
    if body is None or not body or set(body) - set(WRITABLE) or not all(isinstance(v, int) for v in body.values()):
        return _error(400, f"expected a JSON object of integers, keys among {', '.join(WRITABLE)}")

    def write() -> Awaitable[JsonDict | None]:
        return state.database.update_product(product_id, body)

    if not state.cache_enabled:
        product = await write()
    else:
        result: WriteResult[JsonDict | None] = await state.write_through.write(f"product:{product_id}", write)
        state.writes[result.cache.value] += 1
        product = result.result
    if product is None:
        return _error(404, f"no product {product_id}")
    return JSONResponse(product)


async def login(state: DemoState, request: Request) -> JSONResponse:
    body = await _json_body(request)
    name = body.get("user") if body else None
    if not isinstance(name, str):
        return _error(400, 'expected {"user": NAME}')
    user = await state.database.user(name)
    if user is None:
        return _error(401, f"no user {name}")
    session = request.session
    session.clear()
    session.update(user=user["name"], user_id=user["id"], login_instance=state.config.name, views=0)
    session.regenerate()  # type: ignore[attr-defined]  # a cachefleet_client Session
    return JSONResponse({"user": user["name"], "instance": state.config.name})


async def me(state: DemoState, request: Request) -> JSONResponse:
    session = request.session
    if "user" not in session:
        return _error(401, "not logged in")
    session["views"] = int(session.get("views", 0)) + 1
    return JSONResponse(
        {
            "user": session["user"],
            "views": session["views"],
            "login_instance": session.get("login_instance"),
            "instance": state.config.name,
        }
    )


async def logout(_state: DemoState, request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({})


async def post_score(state: DemoState, request: Request) -> JSONResponse:
    body = await _json_body(request)
    player = body.get("player") if body else None
    points = body.get("points") if body else None
    if not isinstance(player, str) or not isinstance(points, int | float) or isinstance(points, bool):
        return _error(400, 'expected {"player": NAME, "points": NUMBER}')
    score = await state.board.increment(player, points)
    return JSONResponse({"player": player, "score": score})


async def leaderboard(state: DemoState, request: Request) -> JSONResponse:
    try:
        n = int(request.query_params.get("n", "10"))
    except ValueError:
        return _error(400, "n must be an integer")
    top = await state.board.top(max(1, min(n, 100)))
    return JSONResponse({"top": [{"player": s.player, "score": s.score, "rank": s.rank} for s in top]})


async def stats(state: DemoState, _request: Request) -> JSONResponse:
    return JSONResponse(state.stats())


async def set_cache(state: DemoState, request: Request) -> JSONResponse:
    body = await _json_body(request)
    enabled = body.get("enabled") if body else None
    if not isinstance(enabled, bool):
        return _error(400, 'expected {"enabled": true|false}')
    state.cache_enabled = enabled
    return JSONResponse({"instance": state.config.name, "cache_enabled": enabled})
