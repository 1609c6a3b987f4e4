"""TLS and authentication on real memcached nodes and on the configuration endpoint in front of them.

Engine level: nodes started from ``memcached.NodeConfig`` as the control plane renders them, a
throwaway CA issuing leaves as the installation's does (``tests.support.engines.Pki``: one PEM with
key and certificate), and real clients: pymemcache (ASCII), bmemcached (binary,
SASL), plain sockets for what must be refused.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bmemcached
import pymemcache
import pytest
from pymemcache.exceptions import MemcacheClientError, MemcacheUnexpectedCloseError
from tests.support.engines import Pki
from tests.support.memcached import BIND, Processes, exchange, free_port

from cachefleet.engines import config_endpoint as ce
from cachefleet.engines import memcached

pytestmark = pytest.mark.integration

TOKEN = "s3cret-Token-0123456789"
ADMIN = ("cachefleet-admin", "admin-0123456789abcdef")
USERS = (("default", TOKEN), ADMIN)
UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"


@dataclass
class Setup:
    processes: Processes
    ca: Pki
    tls_node: int
    tls_endpoint: int
    ascii_node: int
    ascii_endpoint: int
    sasl_node: int
    sasl_endpoint: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("security")
    processes = Processes(root)
    ca = Pki(root / "ca")
    try:
        leaf = root / "node.pem"
        leaf.write_text(ca.leaf("node"))
        leaf.chmod(0o600)
        tls = (str(leaf), str(leaf))
        tls_node = processes.node(memcached.NodeConfig(port=free_port(), bind=BIND, memory_mb=16, threads=1, tls=tls))
        ascii_node = processes.node(
            memcached.NodeConfig(port=free_port(), bind=BIND, memory_mb=16, threads=1, auth=memcached.ASCII_AUTH),
            users=USERS,
        )
        sasl_node = processes.node(
            memcached.NodeConfig(port=free_port(), bind=BIND, memory_mb=16, threads=1, auth=memcached.SASL_AUTH),
            users=USERS,
        )
        endpoints = (
            ce.Endpoint(
                "tls", BIND, free_port(), 1, (ce.Member(BIND, BIND, tls_node),), *tls, upstream_ca=str(ca.ca)
            ),
            ce.Endpoint(
                "ascii", BIND, free_port(), 1, (ce.Member(BIND, BIND, ascii_node),), auth=ce.Auth(ce.ASCII_AUTH, USERS)
            ),
            ce.Endpoint(
                "sasl", BIND, free_port(), 1, (ce.Member(BIND, BIND, sasl_node),), auth=ce.Auth(ce.SASL_AUTH, USERS)
            ),
        )
        processes.endpoint(ce.ServerConfig(endpoints))
        yield Setup(
            processes,
            ca,
            tls_node,
            endpoints[0].port,
            ascii_node,
            endpoints[1].port,
            sasl_node,
            endpoints[2].port,
        )
    finally:
        processes.stop_all()


def _plaintext_refused(port: int) -> bool:
    """A plaintext request to a TLS listener gets no memcached answer (the handshake fails)."""
    try:
        answer = exchange(port, b"version\r\n", until=b"\r\n", timeout=2)
    except OSError:
        return True
    return not answer.startswith(b"VERSION")


@contextlib.contextmanager
def _client(port: int, timeout: float = 2, **options: Any) -> Iterator[pymemcache.Client]:
    client = pymemcache.Client((BIND, port), timeout=timeout, connect_timeout=timeout, **options)
    try:
        yield client
    finally:
        client.close()


def test_tls_clients_are_accepted_by_node_and_endpoint(setup: Setup) -> None:
    with _client(setup.tls_node, tls_context=_context(setup.ca)) as node:
        node.set("k", b"v", noreply=False)
        assert node.get("k") == b"v"
    with _client(setup.tls_endpoint, tls_context=_context(setup.ca)) as endpoint:
        assert endpoint.get("k") == b"v"  # forwarded to the node over TLS, its certificate checked
        answer = endpoint.raw_command(b"config get cluster", end_tokens=b"END\r\n") + b"END\r\n"
    assert ce.parse_config_response(answer) == (1, (ce.Member(BIND, BIND, setup.tls_node),))


def test_plaintext_clients_are_refused_when_tls_is_on(setup: Setup) -> None:
    assert _plaintext_refused(setup.tls_node)
    assert _plaintext_refused(setup.tls_endpoint)


def test_tls_client_must_trust_the_installation_ca(setup: Setup) -> None:
    stranger = ssl.create_default_context()  # the system's CAs only
    with _client(setup.tls_endpoint, tls_context=stranger) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.get("k")


def test_ascii_auth_refuses_unauthenticated_clients(setup: Setup) -> None:
    for port in (setup.ascii_node, setup.ascii_endpoint):
        assert exchange(port, b"get k\r\n", until=b"\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
        assert exchange(port, b"set k 0 0 11\r\ndefault bad\r\n", until=b"\r\n") == (
            b"CLIENT_ERROR authentication failure\r\n"
        )
    # Discovery is refused too: the node list is the cluster's business.
    assert (
        exchange(setup.ascii_endpoint, b"config get cluster\r\n", until=b"\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
    )
    with _client(setup.ascii_node) as client, pytest.raises(MemcacheClientError):
        client.get("k")


def test_ascii_auth_accepts_pymemcache_with_the_token(setup: Setup) -> None:
    with _client(setup.ascii_node) as node:
        assert node.set("auth", f"default {TOKEN}", noreply=False)
        node.set("k", b"direct", noreply=False)
    # Through the endpoint: it checks the token itself, then replays it to the node it forwards to.
    with _client(setup.ascii_endpoint) as endpoint:
        assert endpoint.set("auth", f"default {TOKEN}", noreply=False)
        answer = endpoint.raw_command(b"config get cluster", end_tokens=b"END\r\n") + b"END\r\n"
        assert endpoint.get("k") == b"direct"
    assert ce.parse_config_response(answer)[1] == (ce.Member(BIND, BIND, setup.ascii_node),)


def test_sasl_accepts_binary_clients_with_the_token(setup: Setup) -> None:
    for port in (setup.sasl_node, setup.sasl_endpoint):
        client = bmemcached.Client((f"{BIND}:{port}",), "default", TOKEN, socket_timeout=2)
        assert client.set("sasl", "yes")
        assert client.get("sasl") == "yes"
        client.disconnect_all()


def test_sasl_refuses_wrong_passwords_and_ascii_clients(setup: Setup) -> None:
    wrong = bmemcached.Client((f"{BIND}:{setup.sasl_node}",), "default", "not-the-token", socket_timeout=2)
    with pytest.raises(bmemcached.exceptions.MemcachedException, match="Auth"):
        wrong.set("k", "v")
    wrong.disconnect_all()
    # memcached -S speaks only the binary protocol: an ASCII client gets no answer.
    with (
        _client(setup.sasl_node, timeout=0.5) as client,
        pytest.raises((MemcacheUnexpectedCloseError, TimeoutError, OSError)),
    ):
        client.get("k")
    # The endpoint refuses unauthenticated ASCII, discovery included.
    assert (
        exchange(setup.sasl_endpoint, b"config get cluster\r\n", until=b"\r\n") == b"CLIENT_ERROR unauthenticated\r\n"
    )


@pytest.mark.anyio
async def test_the_control_plane_probe_reaches_every_kind_of_node(setup: Setup) -> None:
    tls = memcached.Access(tls=_context(setup.ca))
    ascii_ = memcached.Access(auth=memcached.ASCII_AUTH, user=ADMIN[0], password=ADMIN[1])
    sasl = memcached.Access(auth=memcached.SASL_AUTH, user=ADMIN[0], password=ADMIN[1])
    for port, access in ((setup.tls_node, tls), (setup.ascii_node, ascii_), (setup.sasl_node, sasl)):
        observed = await memcached.probe(BIND, port, access=access)
        assert observed is not None
        assert observed.version.startswith("1.6")
        assert observed.limit_maxbytes == 16 << 20
    # Without the right access a node is not observed (rather than misread).
    assert await memcached.probe(BIND, setup.tls_node) is None
    wrong = memcached.Access(auth=memcached.SASL_AUTH, user=ADMIN[0], password="wrong")
    assert await memcached.probe(BIND, setup.sasl_node, access=wrong) is None
    assert await memcached.probe(BIND, setup.ascii_node, access=memcached.Access(auth=memcached.ASCII_AUTH)) is None


def test_binary_commands_and_config_get_need_sasl_first(setup: Setup) -> None:
    header = struct.Struct(">BBHBBHIIQ")

    def request(opcode: int, key: bytes = b"", value: bytes = b"", opaque: int = 0) -> bytes:
        return header.pack(0x80, opcode, len(key), 0, 0, 0, len(key) + len(value), opaque, 0) + key + value

    def replies(conn: socket.socket, count: int) -> list[tuple[int, int, bytes]]:
        data, found = b"", []
        while len(found) < count:
            data += conn.recv(65536)
            while len(data) >= 24 and len(data) >= 24 + header.unpack_from(data)[6]:
                _, opcode, _, extras, _, status, body, _, _ = header.unpack_from(data)
                found.append((opcode, status, data[24 + extras : 24 + body]))
                data = data[24 + body :]
        return found

    # A binary client that skips SASL gets the node's auth error, for data as for discovery.
    with socket.create_connection((BIND, setup.sasl_node), timeout=2) as conn:
        conn.sendall(request(0x00, b"sasl"))  # GET
        ((opcode, status, _),) = replies(conn, 1)
        assert (opcode, status) == (0x00, 0x20)
    config_get = request(0x60, b"cluster")
    with socket.create_connection((BIND, setup.sasl_endpoint), timeout=2) as conn:
        conn.sendall(config_get)
        ((opcode, status, _),) = replies(conn, 1)
        assert (opcode, status) == (0x60, 0x20)  # auth error
        # SASL pipelined with the config get: the node's verdict comes first, then our answer.
        conn.sendall(request(0x21, b"PLAIN", b"\0default\0" + TOKEN.encode()) + config_get)
        (auth, config) = replies(conn, 2)
    assert auth[:2] == (0x21, 0)
    assert config == (0x60, 0, ce.payload(1, (ce.Member(BIND, BIND, setup.sasl_node),)))


def _context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))
