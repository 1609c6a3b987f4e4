"""Fixtures for cachefleet_client: real redis-server processes on free loopback ports, killed by PID.

Async tests run on the anyio pytest plugin (installed with starlette) on the asyncio backend.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cachefleet_client import CacheConnection, ConnectionOptions, RetryPolicy

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def free_port(below: int = 65536) -> int:
    """A free loopback port under ``below`` (a cluster node also needs its port + 10000 for its bus)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < below:
            return port


class RedisServer:
    """One redis-server in the foreground, in its own session; `kill()` is kill -9 by PID."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None, tls: bool = False) -> None:
        self.directory = directory
        self.extra = extra
        self.port = port if port is not None else free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        port_args = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        return [
            REDIS_SERVER,
            *port_args,
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--repl-diskless-sync-delay", "0",
            "--logfile", "",
            *self.extra,
        ]  # fmt: skip

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.directory / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if self.tls or self._pong():
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _pong(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.5, password=self._password()) as client:
                return bool(client.ping())
        except redis.AuthenticationError:
            return True
        except redis.RedisError:
            return False

    def _password(self) -> str | None:
        args = list(self.extra)
        return args[args.index("--requirepass") + 1] if "--requirepass" in args else None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self._password())

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def options(**kwargs: Any) -> ConnectionOptions:
    """Test connection options: short timeouts, a retry budget of a few seconds."""
    kwargs.setdefault("retry", RetryPolicy(retries=12, base=0.02, cap=0.5))
    kwargs.setdefault("socket_timeout", 2.0)
    return ConnectionOptions(**kwargs)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[type[RedisServer]]:
    """Start more servers with `redis_factory(dir, *args)`; all are killed at teardown."""
    started: list[RedisServer] = []

    class Tracked(RedisServer):
        def start(self) -> None:
            started.append(self)
            super().start()

    try:
        yield Tracked
    finally:
        for server in started:
            server.kill()


@pytest.fixture
def redis_server(tmp_path: Path, redis_factory: type[RedisServer]) -> RedisServer:
    server = redis_factory(tmp_path / "redis")
    server.start()
    return server


@pytest.fixture
async def connection(redis_server: RedisServer) -> AsyncIterator[CacheConnection]:
    async with CacheConnection.from_endpoints(redis_server.address, options=options()) as conn:
        yield conn


@pytest.fixture
async def second_connection(redis_server: RedisServer) -> AsyncIterator[CacheConnection]:
    """Another client of the same server, standing in for another application process."""
    async with CacheConnection.from_endpoints(redis_server.address, options=options()) as conn:
        yield conn
