"""One app instance as its own process: ``python -m cachefleet.demo.instance ...``.

The demo starts two of these, as two app servers behind a load balancer would be. Each resolves
the replication group's endpoints through the ElastiCache API (`CacheConnection.from_replication_group`)
or, for benchmarks against a plain redis-server, takes ``--redis HOST:PORT``.

The instance binds 127.0.0.1 port 0 itself, then writes ``{"port": ..., "pid": ...}`` to
``--ready-file`` (atomically) once its database and cache connections are open; the parent then
polls ``/healthz``. Secrets come from the environment, never argv (which ``ps`` shows):
``CACHEFLEET_DEMO_SESSION_SECRET``, and for ``--group-id`` ``CACHEFLEET_DEMO_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, and the cache's:
``CACHEFLEET_DEMO_CA_FILE``, ``CACHEFLEET_DEMO_CACHE_USER``, ``CACHEFLEET_DEMO_CACHE_PASSWORD``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from cachefleet.demo.app import AppConfig, build_app
from cachefleet.demo.database import open_database
from cachefleet.demo.fleet import ENV_CA_FILE, ENV_CACHE_PASSWORD, ENV_CACHE_USER
from cachefleet_client import CacheConnection, ConnectionOptions

ENV_SECRET = "CACHEFLEET_DEMO_SESSION_SECRET"
ENV_ENDPOINT = "CACHEFLEET_DEMO_ENDPOINT_URL"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cachefleet.demo.instance", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--query-cost", type=float, default=None, help="seconds per query [default: per kind]")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--group-id", help="replication group to resolve through the API")
    target.add_argument("--redis", metavar="HOST:PORT", help="a plain Redis endpoint instead")
    parser.add_argument("--namespace", default="products")
    parser.add_argument("--board", default="demo")
    return parser.parse_args(argv)


def listen() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listener says it is TCP, and without it responses stall ~40 ms on Nagle (see wiring._listen).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


async def connect_cache(args: argparse.Namespace) -> CacheConnection:
    options = ConnectionOptions(client_name=f"cachefleet-demo-{args.name}")
    if args.redis:
        return CacheConnection.from_endpoints(args.redis, options=options)
    import boto3  # noqa: PLC0415  # only the group mode needs it

    client = boto3.client(
        "elasticache",
        endpoint_url=os.environ[ENV_ENDPOINT],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )
    # TLS as Describe says, verified against the installation's CA; the app's own ACL user.
    return await CacheConnection.from_replication_group(
        args.group_id,
        elasticache=client,
        options=options,
        username=os.environ.get(ENV_CACHE_USER),
        password=os.environ.get(ENV_CACHE_PASSWORD),
        ssl_ca_certs=os.environ.get(ENV_CA_FILE),
    )


class _Server(uvicorn.Server):
    """Stops cleanly on SIGTERM (uvicorn would re-raise it after shutdown and exit non-zero)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(args: argparse.Namespace) -> None:
    secret = os.environ.get(ENV_SECRET)
    if not secret:
        raise SystemExit(f"{ENV_SECRET} is not set")
    sock = listen()
    database = await open_database(args.database_url, query_cost=args.query_cost)
    connection = await connect_cache(args)

    async def close() -> None:
        await connection.aclose()
        await database.aclose()

    config = AppConfig(name=args.name, session_secret=secret, namespace=args.namespace, board=args.board)
    app = build_app(config, database=database, connection=connection, on_shutdown=close)
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.handle_exit, signum, None)
    ready = {"port": sock.getsockname()[1], "pid": os.getpid()}
    partial = args.ready_file.with_suffix(".tmp")
    partial.write_text(json.dumps(ready))
    partial.replace(args.ready_file)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
