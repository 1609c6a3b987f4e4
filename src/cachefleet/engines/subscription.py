"""A long-lived pub/sub connection to a Redis or Sentinel process: connect, AUTH, subscribe, then
read what it pushes for as long as it stays open.

Raw RESP2 like the probes (``engines.resp``): the handshake is pipelined and bounded by a timeout;
reading afterwards has none, since a quiet Sentinel is the normal case. The connection ends when
the process closes it (it exited, or restarted on a renewed certificate): the caller reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from cachefleet.engines import resp
from cachefleet.engines.resp import ClientTls, ProtocolError, Reply, ReplyError

READ_SIZE = 65536


class Subscription:
    """An open, subscribed connection; ``replies`` yields each pushed reply in order."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: list[Reply], buffered: bytes
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._pending = pending  # pushed before the last confirmation was read
        self._buffer = buffered

    async def replies(self) -> AsyncIterator[Reply]:
        """Every reply pushed from now on; ends (``ProtocolError``) when the peer closes."""
        while True:
            replies, used = resp.parse_available(self._buffer)
            self._buffer = self._buffer[used:]
            for reply in [*self._pending, *replies]:
                yield reply
            self._pending = []
            chunk = await self._reader.read(READ_SIZE)
            if not chunk:
                raise ProtocolError("the connection was closed")
            self._buffer += chunk

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def subscribe(
    host: str,
    port: int,
    *,
    channels: Sequence[str] = (),
    patterns: Sequence[str] = (),
    password: str | None = None,
    tls: ClientTls | None = None,
    timeout: float = 1.0,  # noqa: ASYNC109 (the handshake's bound: connect, AUTH, confirmations)
) -> Subscription:
    """A connection subscribed to ``channels`` and ``patterns``, once the process confirmed every
    subscription. Raises ``OSError`` (``ssl.SSLError`` included), ``TimeoutError``,
    ``ProtocolError``, or ``ReplyError`` when it refuses the password or a subscription."""
    if not channels and not patterns:
        raise ValueError("nothing to subscribe to")
    commands: list[tuple[str, ...]] = [("AUTH", password)] if password is not None else []
    if channels:
        commands.append(("SUBSCRIBE", *channels))
    if patterns:
        commands.append(("PSUBSCRIBE", *patterns))
    async with asyncio.timeout(timeout):
        if tls is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls.context(), server_hostname=host)
        try:
            writer.write(b"".join(resp.encode(*command) for command in commands))
            await writer.drain()
            pending, data = await _confirmed(reader, len(channels) + len(patterns), host, port)
        except BaseException:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            raise
    return Subscription(reader, writer, pending, data)


async def _confirmed(reader: asyncio.StreamReader, count: int, host: str, port: int) -> tuple[list[Reply], bytes]:
    """Read until ``count`` subscriptions are confirmed: the messages pushed meanwhile, and the bytes
    read past them. The first error reply (a refused AUTH) is raised."""
    data = b""
    confirmed = 0
    pending: list[Reply] = []
    while confirmed < count:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ProtocolError(f"{host}:{port} closed the connection while subscribing")
        data += chunk
        replies, used = resp.parse_available(data)
        data = data[used:]
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
            if isinstance(reply, list) and reply and reply[0] in ("subscribe", "psubscribe"):
                confirmed += 1
            elif isinstance(reply, list):
                pending.append(reply)  # a message pushed before the last confirmation
    return pending, data
