"""The Memcached configuration endpoint: what it answers to ``config get cluster``, and its config file.

Pure, except ``probe``. The endpoint itself is a long-lived process of its own
(``config_endpoint_server``), supervised by the host driver like a node, so auto discovery keeps
answering while the control plane is down. It serves from one JSON file that the control plane
writes beside it, and re-reads that file on ``RELOAD_SIGNAL``: membership changes never restart it.

One process may serve the configuration endpoints of many clusters, one listener each (the file
lists endpoints, each with its own address, members and config version); today each cluster has a
process of its own.

The answer, as ElastiCache frames it (a memcached ``VALUE``-like block whose data is two lines, each
ending in a bare LF, after which the block's CR LF and ``END`` follow)::

    CONFIG cluster 0 <bytes>\\r\\n<version>\\n<host>|<ip>|<port> <host>|<ip>|<port>\\n\\r\\nEND\\r\\n

``<bytes>`` counts ``<version>\\n<entries>\\n``. The version is the control plane's: it rises by one
on every change of membership and never goes back, so a client that polls rebuilds its ring only
when the version moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "endpoint.json"
RELOAD_SIGNAL = signal.SIGHUP
MODULE = "cachefleet.engines.config_endpoint_server"

# ASCII authentication (memcached -Y: the first ``set`` of a connection carries "user password"),
# or SASL over the binary protocol (memcached -S).
ASCII_AUTH = "ascii"
SASL_AUTH = "sasl"

# The legacy discovery key of engines before 1.4.14; served with the same payload.
LEGACY_KEY = b"AmazonElastiCache:cluster"


@dataclass(frozen=True)
class Member:
    """One node as discovery lists it: the name clients are given, its IP, its port."""

    host: str
    ip: str
    port: int

    @property
    def entry(self) -> str:
        return f"{self.host}|{self.ip}|{self.port}"


def payload(version: int, members: Sequence[Member]) -> bytes:
    """The data of the answer: the version line and the node line, each ending in LF."""
    return f"{version}\n{' '.join(m.entry for m in members)}\n".encode()


def config_response(version: int, members: Sequence[Member]) -> bytes:
    """The exact bytes answered to ``config get cluster``."""
    data = payload(version, members)
    return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(data), data)


def legacy_response(version: int, members: Sequence[Member]) -> bytes:
    """The answer to ``get AmazonElastiCache:cluster`` (clients of engines before 1.4.14)."""
    data = payload(version, members)
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (LEGACY_KEY, len(data), data)


def parse_config_response(data: bytes) -> tuple[int, tuple[Member, ...]]:
    """Pure: (version, members) from a ``config get cluster`` answer; ValueError if it is not one."""
    header, sep, rest = data.partition(b"\r\n")
    parts = header.split()
    if not sep or len(parts) != 4 or parts[0] != b"CONFIG" or parts[1] != b"cluster" or not parts[3].isdigit():
        raise ValueError(f"not a config answer: {data[:80]!r}")
    size = int(parts[3])
    body, trailer = rest[:size], rest[size:]
    if trailer != b"\r\nEND\r\n":
        raise ValueError(f"config answer framed wrongly: {data[-40:]!r}")
    version_line, _, node_line = body.decode().partition("\n")
    members = []
    for entry in node_line.strip("\n").split(" "):
        if not entry:
            continue
        host, ip, port = entry.split("|")
        members.append(Member(host, ip, int(port)))
    return int(version_line), tuple(members)


@dataclass(frozen=True)
class Auth:
    mechanism: str  # ASCII_AUTH | SASL_AUTH
    users: tuple[tuple[str, str], ...]  # (user, password); several during a password rotation


@dataclass(frozen=True)
class Endpoint:
    """One configuration endpoint: where it listens, whom it lists, how clients must connect.

    ``tls_cert``/``tls_key``: the listener speaks TLS (the nodes do too, and ``upstream_ca`` is the
    CA their certificates chain to). ``auth``: clients must authenticate as the nodes require.
    """

    name: str
    bind: str
    port: int
    version: int
    members: tuple[Member, ...]
    tls_cert: str | None = None
    tls_key: str | None = None
    upstream_ca: str | None = None
    auth: Auth | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def listener(self) -> tuple[Any, ...]:
        """What a running listener must be rebuilt for when it changes (everything else is live)."""
        return (self.bind, self.port, self.tls_cert, self.tls_key)


@dataclass(frozen=True)
class ServerConfig:
    endpoints: tuple[Endpoint, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps({"endpoints": [_endpoint_json(e) for e in self.endpoints]}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        return cls(tuple(_endpoint_from(e) for e in data["endpoints"]))


def _endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "bind": endpoint.bind,
        "port": endpoint.port,
        "version": endpoint.version,
        "members": [[m.host, m.ip, m.port] for m in endpoint.members],
        "tls_cert": endpoint.tls_cert,
        "tls_key": endpoint.tls_key,
        "upstream_ca": endpoint.upstream_ca,
        "auth": None
        if endpoint.auth is None
        else {"mechanism": endpoint.auth.mechanism, "users": [list(u) for u in endpoint.auth.users]},
    }


def _endpoint_from(data: Mapping[str, Any]) -> Endpoint:
    auth = data.get("auth")
    return Endpoint(
        name=str(data["name"]),
        bind=str(data["bind"]),
        port=int(data["port"]),
        version=int(data["version"]),
        members=tuple(Member(str(h), str(i), int(p)) for h, i, p in data["members"]),
        tls_cert=data.get("tls_cert"),
        tls_key=data.get("tls_key"),
        upstream_ca=data.get("upstream_ca"),
        auth=None if auth is None else Auth(str(auth["mechanism"]), tuple((str(u), str(p)) for u, p in auth["users"])),
    )


def argv(python: str, config_path: Path) -> tuple[str, ...]:
    """The endpoint process's command line; it names its config file, so the host can tell it apart."""
    return (python, "-m", MODULE, str(config_path))


# One deadline for connect and answer; ``timeout`` is the caller's budget for it.
async def probe(
    host: str,
    port: int,
    timeout: float = 1.0,  # noqa: ASYNC109
    tls: ssl.SSLContext | None = None,
) -> tuple[int, tuple[Member, ...]] | None:
    """What the endpoint lists now, or None when it cannot be reached or answers otherwise.

    An endpoint that requires authentication answers ``CLIENT_ERROR``: None as well.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
            writer.write(b"config get cluster\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n")
            if not head.startswith(b"CONFIG "):
                return None
            size = int(head.split()[3])
            rest = await reader.readexactly(size + len(b"\r\nEND\r\n"))
        return parse_config_response(head + rest)
    except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
