"""The configuration endpoint process: ``python -m cachefleet.engines.config_endpoint_server FILE``.

It answers ``config get cluster`` (and the legacy ``get AmazonElastiCache:cluster``) itself, from
the file the control plane writes (``config_endpoint.ServerConfig``), and forwards every other
command to a live node of the cluster, as ElastiCache's configuration endpoint (a name that resolves
to one of the nodes) lets clients use it as a node. SIGHUP re-reads the file: new endpoints start
listening, removed ones stop, and membership, version and credentials change in place, for the
connections already open too. SIGTERM stops it.

Forwarding, one upstream connection per client connection, opened at the client's first command
that a node must answer (a client that only discovers never touches a node). The node is the next
one in turn that accepts a connection; a node that refuses is skipped for a while, so the endpoint
keeps serving while any node is down. A client whose node goes away is disconnected (its next
connection goes to a live node), as it would be by the node itself.

Commands are framed in both directions (ASCII text and meta commands, and the binary protocol,
told apart by the first byte of a connection) so that an answer given here lands in its place in
a pipeline: when anything is in flight to the node, a no-op (``mn`` / binary NOOP) goes to the node
instead, and its reply is replaced by ours.

Authentication, when the cluster requires it, is checked here too before anything is answered:
ASCII authentication (the first ``set`` carries "user password", checked here; the node gets the
same ``set`` on the upstream connection, and its reply is swallowed), or SASL over the binary
protocol (the exchange is forwarded to the node, which refuses anything else until it succeeds,
and its verdict is read on the way back before a binary config get is answered).

Standard library only (uvloop when installed): this process must not depend on the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import signal
import ssl
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from cachefleet.engines import config_endpoint as ce

log = logging.getLogger("cachefleet.config_endpoint")

_DOWN_FOR = 2.0  # seconds a node that refused a connection is passed over
_CONNECT_TIMEOUT = 1.0
_RETRY_LISTEN = 1.0  # seconds between attempts to bind a listener that could not bind
_MAX_LINE = 1 << 20  # a request line this long without its end is not memcached's protocol
_READ = 1 << 16

_STORAGE = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))
_CONFIG_GET = (b"config", b"get", b"cluster")
_UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"
_AUTH_FAILED = b"CLIENT_ERROR authentication failure\r\n"
_NO_NODE = b"SERVER_ERROR no cache node reachable\r\n"

# The binary protocol: 24-byte headers (magic, opcode, key length, extras length, data type,
# vbucket or status, body length, opaque, cas).
_HEADER = struct.Struct(">BBHBBHIIQ")
_REQUEST, _RESPONSE = 0x80, 0x81
_NOOP, _SASL_AUTH, _SASL_STEP, _BINARY_CONFIG_GET = 0x0A, 0x21, 0x22, 0x60
_STATUS_AUTH_ERROR = 0x20
_NOOP_REQUEST = _HEADER.pack(_REQUEST, _NOOP, 0, 0, 0, 0, 0, 0, 0)
_BINARY_QUIT = (0x07, 0x17)

# What the reply to each no-op sent to the node stands for, in order.
_CLIENT = object()  # the client's own no-op: relay the node's reply
_SWALLOW = object()  # ours, after the replayed authentication: drop everything up to it
Reply = bytes | Callable[[], bytes] | object


class Listener:
    """One configuration endpoint: its listening socket, its members and which of them are down."""

    def __init__(self, endpoint: ce.Endpoint) -> None:
        self.endpoint = endpoint
        self.server: asyncio.Server | None = None
        self.sessions: set[Session] = set()
        self._turn = 0
        self._down: dict[tuple[str, int], float] = {}
        self._upstream_tls: ssl.SSLContext | None = None
        self.update(endpoint)

    def update(self, endpoint: ce.Endpoint) -> None:
        self.endpoint = endpoint
        self.answer = ce.config_response(endpoint.version, endpoint.members)
        self.legacy = ce.legacy_response(endpoint.version, endpoint.members)
        self._upstream_tls = None
        if endpoint.upstream_ca is not None:
            self._upstream_tls = ssl.create_default_context(cafile=endpoint.upstream_ca)

    async def start(self) -> None:
        tls = None
        if self.endpoint.tls_cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            tls.load_cert_chain(self.endpoint.tls_cert, self.endpoint.tls_key)
        self.server = await asyncio.start_server(
            self._accept, self.endpoint.bind, self.endpoint.port, ssl=tls, reuse_address=True, limit=_MAX_LINE
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            session.abort()
        if self.server is not None:
            with contextlib.suppress(OSError):
                await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the next member in turn that accepts one; None when none does."""
        members = list(self.endpoint.members)
        if not members:
            return None
        start = self._turn % len(members)
        self._turn += 1
        ordered = members[start:] + members[:start]
        now = time.monotonic()
        # Members that refused lately go last rather than never: all of them may be back.
        ordered.sort(key=lambda m: self._down.get((m.ip, m.port), 0.0) > now)
        for member in ordered:
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT):
                    return await asyncio.open_connection(
                        member.ip,
                        member.port,
                        ssl=self._upstream_tls,
                        server_hostname=member.ip if self._upstream_tls is not None else None,
                        limit=_MAX_LINE,
                    )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.warning("%s: node %s:%d unreachable (%s)", self.endpoint.name, member.ip, member.port, exc)
                self._down[(member.ip, member.port)] = time.monotonic() + _DOWN_FOR
        return None

    def credentials_valid(self, data: bytes) -> bool:
        auth = self.endpoint.auth
        user, _, password = data.partition(b" ")
        return auth is not None and any(
            hmac.compare_digest(user, u.encode()) & hmac.compare_digest(password, p.encode()) for u, p in auth.users
        )


class Session:
    """One client connection and, once needed, its connection to a node."""

    def __init__(self, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.pump: asyncio.Task[None] | None = None
        self.replies: deque[Reply] = deque()
        self.binary = False
        auth = listener.endpoint.auth
        self.authenticated = auth is None
        self.replay: bytes | None = None  # the ASCII authentication to send to the node first

    def abort(self) -> None:
        self.writer.transport.abort()
        if self.up_writer is not None:
            self.up_writer.transport.abort()

    async def run(self) -> None:
        try:
            first = await self.reader.read(_READ)
            if not first:
                return
            self.binary = first[0] == _REQUEST
            requests = self._binary_requests if self.binary else self._ascii_requests
            if await requests(bytearray(first)) and self.pump is not None:
                # The client quit: the node closes after its last replies, and the pump with it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_CONNECT_TIMEOUT):
                        await self.pump
        except (OSError, ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.debug("%s: session ended: %s", self.listener.endpoint.name, exc)
        finally:
            if self.pump is not None:
                self.pump.cancel()
            for writer in (self.up_writer, self.writer):
                if writer is not None:
                    writer.close()

    # -- requests: ASCII -------------------------------------------------------------------

    async def _ascii_requests(self, buf: bytearray) -> bool:
        """Read, answer and forward until the client goes; True when it said ``quit``."""
        while True:
            out = bytearray()
            quit_ = False
            while (cut := _ascii_request_end(buf)) is not None:
                command = bytes(buf[:cut])
                del buf[:cut]
                if command.split(maxsplit=1)[:1] == [b"quit"]:
                    quit_ = True
                    if self.up_writer is not None or out:
                        out += command
                    break
                out += self._ascii_command(command, out)
            if len(buf) > _MAX_LINE:
                return False
            if out and not await self._send(bytes(out)):
                return False
            await self.writer.drain()  # our own answers too: one that never reads is not buffered without end
            if quit_:
                return True
            data = await self.reader.read(_READ)
            if not data:
                return False
            buf += data

    def _ascii_command(self, command: bytes, out: bytearray) -> bytes:
        """What to forward for one complete command: b"" when it is answered here (into ``out``)."""
        line, _, _ = command.partition(b"\n")
        words = line.split()
        name = words[0] if words else b""
        endpoint = self.listener.endpoint
        if not self.authenticated:
            assert endpoint.auth is not None
            if endpoint.auth.mechanism == ce.ASCII_AUTH and name in _STORAGE:
                data = command[len(line) + 1 :].removesuffix(b"\r\n")
                if self.listener.credentials_valid(data):
                    self.authenticated = True
                    self.replay = command
                    self._answer(b"STORED\r\n", out)
                else:
                    self._answer(_AUTH_FAILED, out)
            else:
                self._answer(_UNAUTHENTICATED, out)
            return b""
        if tuple(words) == _CONFIG_GET:
            self._answer(self.listener.answer, out)
            return b""
        if len(words) == 2 and name in (b"get", b"gets") and words[1] == ce.LEGACY_KEY:
            self._answer(self.listener.legacy, out)
            return b""
        if name == b"mn":
            self.replies.append(_CLIENT)
        return command

    def _answer(self, reply: bytes, out: bytearray) -> None:
        """Our reply, in its place: at once when nothing is in flight, else after the node's replies."""
        if self.up_writer is None and not out:
            self.writer.write(reply)
            return
        out += b"mn\r\n"
        self.replies.append(reply)

    # -- requests: binary ------------------------------------------------------------------

    async def _binary_requests(self, buf: bytearray) -> bool:
        """As ``_ascii_requests``, for the binary protocol (QUIT and QUITQ end it)."""
        while True:
            out = bytearray()
            quit_ = False
            while len(buf) >= _HEADER.size:
                magic, opcode, _, _, _, _, body, opaque, _ = _HEADER.unpack_from(buf)
                if magic != _REQUEST:
                    return False
                if len(buf) < _HEADER.size + body:
                    break
                frame = bytes(buf[: _HEADER.size + body])
                del buf[: _HEADER.size + body]
                if opcode in _BINARY_QUIT:
                    quit_ = True
                    if self.up_writer is not None or out:
                        out += frame
                    break
                if opcode == _BINARY_CONFIG_GET:
                    # Answered once the replies before it are in: a SASL exchange pipelined ahead
                    # of it has been decided by then.
                    self._binary_answer(functools.partial(self._binary_config, opaque), out)
                else:
                    # The node itself refuses whatever an unauthenticated client sends it.
                    if opcode == _NOOP:
                        self.replies.append(_CLIENT)
                    out += frame
            if out and not await self._send(bytes(out)):
                return False
            await self.writer.drain()  # our own answers too: one that never reads is not buffered without end
            if quit_:
                return True
            data = await self.reader.read(_READ)
            if not data:
                return False
            buf += data

    def _binary_config(self, opaque: int) -> bytes:
        endpoint = self.listener.endpoint
        if not self.authenticated:
            return _binary_error(_BINARY_CONFIG_GET, opaque, _STATUS_AUTH_ERROR)
        data = ce.payload(endpoint.version, endpoint.members)
        extras = b"\x00\x00\x00\x00"  # flags, as a get's reply carries them
        header = _HEADER.pack(_RESPONSE, _BINARY_CONFIG_GET, 0, len(extras), 0, 0, len(extras) + len(data), opaque, 0)
        return header + extras + data

    def _binary_answer(self, reply: Callable[[], bytes], out: bytearray) -> None:
        if self.up_writer is None and not out:
            self.writer.write(reply())
            return
        out += _NOOP_REQUEST
        self.replies.append(reply)

    # -- the node ----------------------------------------------------------------------------

    async def _send(self, data: bytes) -> bool:
        """Write ``data`` to the node (connecting first if need be); False when no node is reachable."""
        if self.up_writer is None:
            connection = await self.listener.connect()
            if connection is None:
                if not self.binary:
                    self.writer.write(_NO_NODE)
                return False
            self.up_reader, self.up_writer = connection
            if self.replay is not None:
                # The node authenticates this connection as the client did with us.
                self.up_writer.write(self.replay + b"mn\r\n")
                self.replies.appendleft(_SWALLOW)
            self.pump = asyncio.create_task(self._binary_replies() if self.binary else self._ascii_replies())
        self.up_writer.write(data)
        await self.up_writer.drain()
        await self.writer.drain()
        return True

    async def _ascii_replies(self) -> None:
        assert self.up_reader is not None
        buf = bytearray()
        try:
            while data := await self.up_reader.read(_READ):
                buf += data
                out = bytearray()
                pos = 0
                while (end := _ascii_reply_end(buf, pos)) is not None:
                    if buf[pos:end].rstrip() == b"MN":
                        self._no_op_reply(bytes(buf[pos:end]), out)
                    elif not (self.replies and self.replies[0] is _SWALLOW):
                        out += buf[pos:end]
                    pos = end
                del buf[:pos]
                if out:
                    self.writer.write(out)
                    await self.writer.drain()
        finally:
            self.writer.close()

    async def _binary_replies(self) -> None:
        assert self.up_reader is not None
        buf = bytearray()
        try:
            while data := await self.up_reader.read(_READ):
                buf += data
                out = bytearray()
                while len(buf) >= _HEADER.size:
                    _, opcode, _, _, _, status, body, _, _ = _HEADER.unpack_from(buf)
                    if len(buf) < _HEADER.size + body:
                        break
                    frame = bytes(buf[: _HEADER.size + body])
                    del buf[: _HEADER.size + body]
                    if opcode == _NOOP:
                        self._no_op_reply(frame, out)
                        continue
                    if opcode in (_SASL_AUTH, _SASL_STEP) and status == 0:
                        self.authenticated = True
                    out += frame
                if out:
                    self.writer.write(out)
                    await self.writer.drain()
        finally:
            self.writer.close()

    def _no_op_reply(self, reply: bytes, out: bytearray) -> None:
        meant = self.replies.popleft() if self.replies else _CLIENT
        if meant is _CLIENT:
            out += reply
        elif isinstance(meant, bytes):
            out += meant
        elif callable(meant):
            out += meant()


def _ascii_request_end(buf: bytearray) -> int | None:
    """Where the first complete request in ``buf`` ends (its data block included), or None."""
    newline = buf.find(b"\n")
    if newline < 0:
        return None
    words = bytes(buf[:newline]).split()
    size = None
    if len(words) >= 5 and words[0] in _STORAGE and words[4].isdigit():
        size = int(words[4])
    elif len(words) >= 3 and words[0] == b"ms" and words[2].isdigit():
        size = int(words[2])
    end = newline + 1 if size is None else newline + 1 + size + 2
    return end if len(buf) >= end else None


def _ascii_reply_end(buf: bytearray, pos: int) -> int | None:
    """Where the reply that starts at ``pos`` ends (a ``VALUE``/``VA`` line with its data), or None."""
    newline = buf.find(b"\n", pos)
    if newline < 0:
        return None
    end = newline + 1
    if buf.startswith(b"VALUE ", pos):
        words = bytes(buf[pos:newline]).split()
        end += int(words[3]) + 2
    elif buf.startswith(b"VA ", pos):
        words = bytes(buf[pos:newline]).split()
        end += int(words[1]) + 2
    return end if len(buf) >= end else None


def _binary_error(opcode: int, opaque: int, status: int) -> bytes:
    message = b"Auth failure."
    return _HEADER.pack(_RESPONSE, opcode, 0, 0, 0, status, len(message), opaque, 0) + message


class Registry:
    """Every listener of this process, kept in step with the config file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listeners: dict[str, Listener] = {}
        self._waiting: dict[str, ce.Endpoint] = {}  # endpoints whose listener could not bind yet
        self._lock = asyncio.Lock()

    async def reload(self) -> None:
        async with self._lock:
            try:
                config = ce.ServerConfig.from_json(self.path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("config %s unreadable, keeping the last one: %s", self.path, exc)
                return
            wanted = {e.name: e for e in config.endpoints}
            for name in [n for n in self.listeners if n not in wanted]:
                await self.listeners.pop(name).close()
            self._waiting = {n: e for n, e in self._waiting.items() if n in wanted}
            for name, endpoint in wanted.items():
                current = self.listeners.get(name)
                if current is not None and current.endpoint.listener() == endpoint.listener():
                    current.update(endpoint)
                    continue
                if current is not None:
                    await self.listeners.pop(name).close()
                await self._listen(endpoint)

    async def _listen(self, endpoint: ce.Endpoint) -> None:
        listener = Listener(endpoint)
        try:
            await listener.start()
        except (OSError, ssl.SSLError) as exc:
            log.error("%s: cannot listen on %s:%d: %s", endpoint.name, endpoint.bind, endpoint.port, exc)
            self._waiting[endpoint.name] = endpoint
            return
        self._waiting.pop(endpoint.name, None)
        self.listeners[endpoint.name] = listener
        log.info("%s: listening on %s:%d (version %d)", endpoint.name, endpoint.bind, endpoint.port, endpoint.version)

    async def retry_waiting(self) -> None:
        while True:
            await asyncio.sleep(_RETRY_LISTEN)
            async with self._lock:
                for endpoint in list(self._waiting.values()):
                    await self._listen(endpoint)

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.close()


async def serve(path: Path) -> None:
    registry = Registry(path)
    await registry.reload()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def reload() -> None:
        task = loop.create_task(registry.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(ce.RELOAD_SIGNAL, reload)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    retry = loop.create_task(registry.retry_waiting())
    await stop.wait()
    retry.cancel()
    await registry.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop  # noqa: PLC0415  # optional: plain asyncio serves as well, a little slower
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} CONFIG_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
