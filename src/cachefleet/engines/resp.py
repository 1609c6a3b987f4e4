"""One short exchange with a Redis or Sentinel process: connect, send every command at once, read
the replies, close.

The reconciler probes every node of a converging group each pass, so a probe's cost is paid again
and again while a group is created or fails over. redis-py spends several round trips and a few
milliseconds of CPU per new connection on its handshake (HELLO, CLIENT SETINFO, ...); a probe needs
none of that. This speaks RESP2 directly: commands are pipelined, replies come back in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ReplyError(Exception):
    """The server answered a command with an error (``-ERR ...``, ``-NOPERM ...``)."""


class ProtocolError(Exception):
    """The exchange broke off: the peer closed early, or sent bytes that are not a RESP2 reply."""


Reply = str | int | None | ReplyError | list["Reply"]


@dataclass(frozen=True)
class ClientTls:
    """How the control plane speaks TLS to a node or a Sentinel: the CA it verifies them against
    (and the address it connects to must be named by their certificate), and optionally a client
    certificate (one PEM file holding key and certificate) for a peer that asks for one."""

    ca_file: Path
    cert_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A context for these files, made once per version of them (a renewed file is picked up)."""
        cert = self.cert_file
        return _context(self.ca_file, _mtime(self.ca_file), cert, _mtime(cert) if cert is not None else 0)


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


@functools.lru_cache(maxsize=16)
def _context(ca_file: Path, _ca_version: int, cert_file: Path | None, _cert_version: int) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    if cert_file is not None:
        context.load_cert_chain(str(cert_file))
    return context


def encode(*args: str) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def exchange(
    host: str,
    port: int,
    commands: Sequence[Sequence[str]],
    *,
    timeout: float,  # noqa: ASYNC109 (covers connect and every read: a probe must not hang)
    tls: ClientTls | None = None,
) -> list[Reply]:
    """Each command's reply, in order; an error reply is returned as a ``ReplyError``, not raised,
    so a caller can tell which command failed. Raises ``OSError`` (``ssl.SSLError`` included),
    ``TimeoutError`` or ``ProtocolError`` when the exchange itself fails."""
    async with asyncio.timeout(timeout):
        if tls is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls.context(), server_hostname=host)
        try:
            writer.write(b"".join(encode(*command) for command in commands))
            await writer.drain()
            data = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ProtocolError(f"{host}:{port} closed the connection before answering")
                data += chunk
                replies = parse(data, len(commands))
                if replies is not None:
                    return replies
        finally:
            writer.close()
            # The peer may have gone away first: nothing is left to close cleanly then.
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Incomplete(Exception):
    """More bytes are needed."""


def parse(data: bytes, count: int) -> list[Reply] | None:
    """Pure: the first ``count`` replies in ``data``, or None while they have not all arrived.

    Parsed from one buffer: a CONFIG GET answer is dozens of values, and reading each one from the
    stream separately cost more than the rest of a probe.
    """
    replies: list[Reply] = []
    pos = 0
    try:
        for _ in range(count):
            reply, pos = _reply(data, pos)
            replies.append(reply)
    except _Incomplete:
        return None
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    return replies


def parse_available(data: bytes) -> tuple[list[Reply], int]:
    """Pure: every complete reply at the start of ``data`` and how many bytes they took (a stream of
    pushed messages, as a subscribed connection gets them; the rest waits for more bytes)."""
    replies: list[Reply] = []
    pos = 0
    try:
        while pos < len(data):
            reply, end = _reply(data, pos)
            replies.append(reply)
            pos = end
    except _Incomplete:
        pass
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    return replies, pos


def _reply(data: bytes, pos: int) -> tuple[Reply, int]:
    end = data.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, body, pos = data[pos : pos + 1], data[pos + 1 : end], end + 2
    if kind == b"+":
        return body.decode(), pos
    if kind == b"-":
        return ReplyError(body.decode(errors="replace")), pos
    if kind == b":":
        return int(body), pos
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None, pos
        if len(data) < pos + length + 2:
            raise _Incomplete
        return data[pos : pos + length].decode(errors="replace"), pos + length + 2
    if kind == b"*":
        count = int(body)
        if count < 0:
            return None, pos
        items: list[Reply] = []
        for _ in range(count):
            item, pos = _reply(data, pos)
            items.append(item)
        return items, pos
    raise ProtocolError(f"unexpected reply type {kind!r}")
