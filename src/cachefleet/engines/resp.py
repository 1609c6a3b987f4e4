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
from collections.abc import Sequence


class ReplyError(Exception):
    """The server answered a command with an error (``-ERR ...``, ``-NOPERM ...``)."""


class ProtocolError(Exception):
    """The exchange broke off: the peer closed early, or sent bytes that are not a RESP2 reply."""


Reply = str | int | None | ReplyError | list["Reply"]


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
) -> list[Reply]:
    """Each command's reply, in order; an error reply is returned as a ``ReplyError``, not raised,
    so a caller can tell which command failed. Raises ``OSError``, ``TimeoutError`` or
    ``ProtocolError`` when the exchange itself fails."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
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
