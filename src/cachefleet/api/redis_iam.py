"""The IAM endpoint for Redis: an authenticating proxy that only IAM-authenticated connections use.

Redis 7.0 cannot ask anyone whether a password is good (module auth callbacks came in 7.2), so an
IAM token cannot be checked inside ``redis-server``. This endpoint does it in front (docs/decisions.md):

1. a client connects over TLS (a certificate from the installation's CA naming the listen address)
   and sends ``AUTH <user> <token>`` or ``HELLO <protover> AUTH <user> <token> ...``; any other
   command before that is answered ``NOAUTH``;
2. the token is checked as AWS documents it (``model.iam_token``): its SigV4 presigned signature
   with the same verification as API calls (an unknown, inactive or deleted key, a forged signature
   or a token past its 15 minutes fail there), then ``elasticache:Connect`` on the replication group
   and the user, evaluated against the signer's policies (``Gatekeeper``), then the user: in the
   group's user group, ``AuthenticationMode`` ``iam``, its name the one ``AUTH`` gave;
3. the endpoint connects to the group's primary endpoint (TLS, as the group requires), logs in as
   that user with the password the control plane gave it in the ACLs (``iam_token.upstream_password``:
   derived, never shown, never stored), answers the client what the node answered, and from then
   on copies bytes both ways without reading them;
4. the connection is closed 12 hours after it was authenticated, as ElastiCache does.

A refused token gets ElastiCache's ``WRONGPASS`` (the reason goes to the log, never the token). Other
clients never pass here: the groups' own endpoints and nodes are unchanged, so they pay nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cachefleet.api import sigv4
from cachefleet.api.gatekeeper import Caller, Gatekeeper
from cachefleet.engines.resp import ClientTls
from cachefleet.model import authz, iam_token
from cachefleet.model.errors import CacheFleetError
from cachefleet.model.iam_token import REFUSAL, InvalidToken
from cachefleet.model.users import AuthenticationType
from cachefleet.store.kinds import GROUPS, USER_GROUPS, USERS
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs, files

log = logging.getLogger(__name__)

# Before AUTH a client is a stranger: its commands are read with small bounds.
MAX_ARGS = 16
MAX_ARG_BYTES = iam_token.MAX_TOKEN_CHARS
MAX_UNAUTHENTICATED_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT = 30.0  # seconds from accept (or the last answer) to the next command before AUTH
UPSTREAM_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_HEADER_MAX = 32  # a RESP header ("*16\r\n", "$8192\r\n") is far shorter


class Refused(Exception):
    """A token or login that is not accepted; the message is for the log only."""


class ProtocolViolation(Exception):
    """Not RESP a Redis client sends, or over the bounds for a connection not yet authenticated."""


# -- reading commands before AUTH ------------------------------------------------------------------


def parse_command(data: bytes) -> tuple[list[bytes], int] | None:
    """Pure: the first command in ``data`` (a RESP array of bulk strings) and the bytes it took, or
    None while it has not all arrived. ``ProtocolViolation`` for anything else (inline commands
    included: clients that speak IAM authentication speak RESP)."""
    if not data:
        return None
    if data[:1] != b"*":
        raise ProtocolViolation("expected a RESP array")
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= _HEADER_MAX:
            raise ProtocolViolation("no array header")
        return None
    count = _number(data[1:end])
    if not 1 <= count <= MAX_ARGS:
        raise ProtocolViolation(f"a command of {count} arguments")
    pos = end + 2
    args: list[bytes] = []
    for _ in range(count):
        if pos >= len(data):
            return None
        if data[pos : pos + 1] != b"$":
            raise ProtocolViolation("expected a bulk string")
        end = data.find(b"\r\n", pos)
        if end < 0:
            if len(data) - pos >= _HEADER_MAX:
                raise ProtocolViolation("no bulk header")
            return None
        length = _number(data[pos + 1 : end])
        if not 0 <= length <= MAX_ARG_BYTES:
            raise ProtocolViolation(f"an argument of {length} bytes")
        start = end + 2
        if len(data) < start + length + 2:
            return None
        if data[start + length : start + length + 2] != b"\r\n":
            raise ProtocolViolation("a bulk string without its terminator")
        args.append(data[start : start + length])
        pos = start + length + 2
    return args, pos


def _number(raw: bytes) -> int:
    if not (raw.isdigit() or (raw[:1] == b"-" and raw[1:].isdigit())) or len(raw) > 10:
        raise ProtocolViolation("not a number")
    return int(raw)


@dataclass(frozen=True)
class Login:
    """What a client's AUTH or HELLO asks: who, with which token, and where the token is in the
    command (the endpoint sends the same command upstream, with the node password there)."""

    user: str
    token: str
    args: list[bytes]
    token_at: int

    def upstream(self, password: str) -> list[bytes]:
        command = list(self.args)
        command[self.token_at] = password.encode()
        return command


def login_of(args: list[bytes]) -> Login | None:
    """The login in an ``AUTH user token`` or ``HELLO ver AUTH user token [SETNAME n]``; None for
    any other command (single-argument ``AUTH token`` names no user: IAM needs one)."""
    name = args[0].upper()
    if name == b"AUTH" and len(args) == 3:
        return Login(_text(args[1]), _text(args[2]), args, 2)
    if name == b"HELLO" and len(args) >= 5:
        for i in range(2, len(args) - 2):
            if args[i].upper() == b"AUTH":
                return Login(_text(args[i + 1]), _text(args[i + 2]), args, i + 2)
    return None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def encode(args: list[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


# -- checking a token -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """Where an accepted login goes, and how it logs in there."""

    address: str
    port: int
    tls: bool
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Upstream({self.address}:{self.port}, tls={self.tls}, user={self.user!r}, password=<hidden>)"


class TokenChecker:
    """Everything a token must pass, in the order that costs least first."""

    def __init__(
        self,
        *,
        gatekeeper: Gatekeeper,
        store: Store,
        node_host: str,
        users_key: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.gatekeeper = gatekeeper
        self.store = store
        self.node_host = node_host
        self.users_key = users_key
        self.clock = clock

    def check(self, user: str, token: str, source_ip: str) -> Upstream:
        try:
            claim = iam_token.parse(token)
        except InvalidToken as exc:
            raise Refused(f"not an IAM token: {exc}") from None
        if claim.user_id != user:
            raise Refused(f"the token is for user {claim.user_id!r}, AUTH names {user!r}")
        try:
            signer = sigv4.verify(
                method="GET",
                path="/",
                query=claim.query,
                headers={"host": claim.host},
                body=b"",
                secret_for=self.gatekeeper.secret_for,
                now=self.clock(),
                services=(iam_token.SERVICE,),
            )
            principal = self.gatekeeper.identify(signer.access_key_id)
            self.gatekeeper.throttle(principal)
            connect = authz.connect(self.gatekeeper.region, self.gatekeeper.account, claim.group_id, claim.user_id)
            self.gatekeeper.authorize(connect, Caller(principal, signer.region, source_ip, secure=True))
        except CacheFleetError as exc:
            raise Refused(f"{exc.code}: {exc.message}") from None
        return self._upstream(claim.group_id, claim.user_id)

    def _upstream(self, group_id: str, user_id: str) -> Upstream:
        group = GROUPS.find(self.store, group_id)
        if group is None or not group.status.primary_endpoint_port:
            raise Refused(f"replication group {group_id} has no primary endpoint")
        found = USERS.find(self.store, user_id)
        if found is None or found.spec.authentication is not AuthenticationType.IAM:
            raise Refused(f"user {user_id} does not exist or does not use IAM authentication")
        members = (USER_GROUPS.find(self.store, ug) for ug in group.spec.security.user_group_ids)
        if not any(ug is not None and user_id in ug.spec.user_ids for ug in members):
            raise Refused(f"user {user_id} is not in the user group of {group_id}")
        return Upstream(
            address=self.node_host,
            port=group.status.primary_endpoint_port,
            tls=group.spec.security.transit.mode is not None,
            user=found.spec.user_name,
            password=iam_token.upstream_password(self.users_key, user_id),
        )


# -- the endpoint -----------------------------------------------------------------------------------


class ServerCertificate:
    """The endpoint's leaf (one PEM file, 0600) from the installation's CA, renewed with a third of
    its life left: the next handshakes use the new one, open connections keep theirs."""

    def __init__(
        self,
        path: Path,
        authority: certs.Authority,
        address: str,
        validity: dt.timedelta,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.path = path
        self.authority = authority
        self.identity = certs.Identity.naming("cachefleet-redis-iam", certs.Role.ENDPOINT, [address])
        self.validity = validity
        self.clock = clock
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.renew_at = self.clock()
        self.refresh()

    def refresh(self) -> None:
        now = self.clock()
        if now < self.renew_at:
            return
        pem = certs.issue(self.authority, self.identity, now, self.validity)
        files.write_atomic(self.path, pem, 0o600)
        self.context.load_cert_chain(str(self.path))
        issued = certs.certificate_of(pem)
        start, end = issued.not_valid_before_utc, issued.not_valid_after_utc
        self.renew_at = end - (end - start) * certs.RENEW_FRACTION


class RedisIamEndpoint:
    def __init__(
        self,
        *,
        checker: TokenChecker,
        certificate: ServerCertificate,
        upstream_tls: ClientTls,
        lifetime: dt.timedelta = iam_token.CONNECTION_LIFETIME,
    ) -> None:
        self.checker = checker
        self.certificate = certificate
        self.upstream_tls = upstream_tls
        self.lifetime = lifetime

    async def start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.serve, host, port, ssl=self.certificate.context)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.certificate.refresh()
        peer = writer.get_extra_info("peername")
        source_ip = str(peer[0]) if peer else ""
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            connected = await self._authenticate(reader, writer, source_ip)
            if connected is None:
                return
            upstream_reader, upstream_writer, rest = connected
            if rest:
                upstream_writer.write(rest)
            # From here on the endpoint reads nothing: bytes go through until either side closes,
            # or the connection's 12 hours are over.
            pipes = [
                asyncio.create_task(_pipe(reader, upstream_writer)),
                asyncio.create_task(_pipe(upstream_reader, writer)),
            ]
            _, pending = await asyncio.wait(
                pipes, timeout=self.lifetime.total_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
        except (OSError, ProtocolViolation, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("IAM endpoint: connection from %s ended: %s", source_ip, exc)
        except Exception:
            # One connection's surprise must not reach the event loop the API also runs on.
            log.exception("IAM endpoint: connection from %s failed", source_ip)
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(OSError, ssl.SSLError):
                        await w.wait_closed()

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source_ip: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes] | None:
        """Read commands until a login is accepted; the upstream connection and the bytes the client
        sent after its login, or None when the client went away first."""
        buffer = b""
        while True:
            parsed = parse_command(buffer)
            if parsed is None:
                if len(buffer) > MAX_UNAUTHENTICATED_BYTES:
                    raise ProtocolViolation("too much before AUTH")
                chunk = await asyncio.wait_for(reader.read(_CHUNK), HANDSHAKE_TIMEOUT)
                if not chunk:
                    return None
                buffer += chunk
                continue
            args, used = parsed
            buffer = buffer[used:]
            login = login_of(args)
            if login is None:
                writer.write(b"-NOAUTH Authentication required.\r\n")
                await writer.drain()
                continue
            try:
                target = self.checker.check(login.user, login.token, source_ip)
            except Refused as exc:
                log.info("IAM endpoint: login as %r from %s refused: %s", login.user, source_ip, exc)
                writer.write(b"-" + REFUSAL.encode() + b"\r\n")
                await writer.drain()
                continue
            connected = await self._connect(target, login)
            if connected is None:
                writer.write(b"-ERR the replication group's primary endpoint cannot be reached\r\n")
                await writer.drain()
                continue
            upstream_reader, upstream_writer, answer = connected
            writer.write(answer)
            await writer.drain()
            if answer.startswith(b"-"):
                upstream_writer.close()
                continue
            log.info("IAM endpoint: %s from %s connected to %s:%d", target.user, source_ip, target.address, target.port)
            return upstream_reader, upstream_writer, buffer

    async def _connect(
        self, target: Upstream, login: Login
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes] | None:
        command = login.upstream(target.password)
        try:
            async with asyncio.timeout(UPSTREAM_TIMEOUT):
                if target.tls:
                    opened = await asyncio.open_connection(
                        target.address, target.port, ssl=self.upstream_tls.context(), server_hostname=target.address
                    )
                else:
                    opened = await asyncio.open_connection(target.address, target.port)
                upstream_reader, upstream_writer = opened
                upstream_writer.write(encode(command))
                await upstream_writer.drain()
                answer = await _one_reply(upstream_reader)
        except (OSError, TimeoutError, ProtocolViolation) as exc:
            log.warning("IAM endpoint: %s:%d unreachable: %s", target.address, target.port, exc)
            return None
        return upstream_reader, upstream_writer, answer


async def _one_reply(reader: asyncio.StreamReader) -> bytes:
    """The raw bytes of one reply (``+OK``, an error, or HELLO's map), to hand to the client as is."""
    data = b""
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            raise ProtocolViolation("the node closed the connection")
        data += chunk
        if _complete(data):
            return data


def _complete(data: bytes) -> bool:
    """Whether ``data`` holds one whole reply (nothing follows it: the node answers one command)."""
    try:
        return _skip(data, 0) == len(data)
    except _Incomplete:
        return False


class _Incomplete(Exception):
    """More bytes are needed."""


def _skip(data: bytes, pos: int) -> int:
    end = data.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, head = data[pos : pos + 1], data[pos + 1 : end]
    pos = end + 2
    if kind in (b"$", b"=", b"!"):
        length = _number(head)
        if length < 0:
            return pos
        if len(data) < pos + length + 2:
            raise _Incomplete
        return pos + length + 2
    if kind in (b"*", b"~", b">", b"%", b"|"):
        count = _number(head) * (2 if kind in (b"%", b"|") else 1)
        for _ in range(max(count, 0)):
            pos = _skip(data, pos)
        return pos
    return pos


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(_CHUNK):
        writer.write(chunk)
        await writer.drain()
