"""Serving an ASGI app with uvicorn on a socket we bind ourselves: the control plane and the agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
import uvloop


def listen(host: str, port: int) -> socket.socket:
    """Bind before serving so that port 0 works and the files that name the address name the real port.

    The socket is made with IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted
    connections when the listener says so, and without it every answer stalls ~40 ms on Nagle.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(128)
    return listener


class Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGTERM after shutdown; a clean stop here must exit 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` in the foreground, logging at ``CACHEFLEET_LOG_LEVEL`` (default INFO).

    CACHEFLEET_LOG_LEVEL=DEBUG shows every reconcile step; it is read here, at the root, and nowhere
    else. uvloop and httptools (which uvicorn picks up by itself) cut the CPU per API call by about a
    third; on a small host that is time the engines get instead (docs/benchmarks.md).
    """
    level = os.environ.get("CACHEFLEET_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
