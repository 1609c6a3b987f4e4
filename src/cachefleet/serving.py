"""Serving an ASGI app with uvicorn on a socket we bind ourselves: the control plane and the agent."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn


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
