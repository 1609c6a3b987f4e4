"""TLS on a running group, along ElastiCache's path: off -> ``preferred`` -> ``required`` (and back),
live, under a client that never stops; then certificates renewed before expiry with no downtime.

One server whose certificates live 30 s (``--tls-certificate-validity``), so that nodes and Sentinels
renew theirs (a third of their life left: about 20 s after issue) while this module runs, and one
group (two members, automatic failover) that the tests move in file order.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from cryptography import x509
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.1"
GROUP = "move"
VALIDITY_S = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("transit") / "cf", "--tls-certificate-validity", str(VALIDITY_S))
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def ec(server: ServerProcess) -> Any:
    client = server.client()
    client.create_replication_group(
        ReplicationGroupId=GROUP,
        ReplicationGroupDescription="moves to TLS",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    _settled(client)
    return client


@pytest.fixture(scope="module")
def ca(server: ServerProcess) -> str:
    return str(server.data_dir / "ca.pem")


def _group(ec: Any) -> dict[str, Any]:
    (found,) = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
    return dict(found)


def _settled(ec: Any) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        group = _group(ec)
        return group if group["Status"] == "available" and not group["PendingModifiedValues"] else None

    found: dict[str, Any] = wait_until(done, 60, interval=0.2, what=f"{GROUP} available")
    return found


def _endpoints(ec: Any) -> tuple[int, int]:
    node_group = _group(ec)["NodeGroups"][0]
    return int(node_group["PrimaryEndpoint"]["Port"]), int(node_group["ReaderEndpoint"]["Port"])


def _client(port: int, ca: str | None) -> redis.Redis:
    """TLS (verifying the certificate and the address) when ``ca`` is given, plain text otherwise."""
    secure: dict[str, Any] = {"ssl": True, "ssl_ca_certs": ca} if ca is not None else {}
    return redis.Redis(
        host=ADDRESS, port=port, socket_timeout=3, socket_connect_timeout=3, retry=Retry(NoBackoff(), 0), **secure
    )


def _refusal(port: int, ca: str | None) -> str | None:
    """None when a new client gets PONG; otherwise why not, so that a failed assertion says it."""
    client = _client(port, ca)
    try:
        return None if client.ping() else "no PONG"
    except (redis.ConnectionError, redis.TimeoutError) as exc:  # refused, reset, or no TLS handshake answered
        return f"{type(exc).__name__}: {exc} (from {exc.__cause__ or exc.__context__!r})"
    finally:
        client.close()


def _serial(port: int, ca: str, password: str | None = None) -> int:
    """The serial number of the certificate a node or Sentinel presents now (verified by our CA)."""
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((ADDRESS, port), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname=ADDRESS) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        if password is not None:  # a Sentinel: prove it is one, and that it takes the password
            tls.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = tls.recv(1024)
                if not chunk:  # closed mid-answer (a Sentinel restarting): an OSError, as a refused connection
                    raise ConnectionResetError(f"port {port} closed the connection after {answer!r}")
                answer += chunk
            assert answer == b"+OK\r\n+PONG\r\n", answer
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


@dataclass
class Loop:
    """One connection made before the move, kept for the whole of it, writing and reading."""

    port: int
    ca: str | None
    stop: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.client = _client(self.port, self.ca)
        assert self.client.ping()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.set("loop", self.done)
                assert int(self.client.get("loop") or -1) == self.done
                self.done += 1
            except (redis.RedisError, AssertionError, ValueError) as exc:
                self.errors.append(repr(exc))
                time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)
        self.client.close()


def test_off_to_preferred_to_required_under_a_client_that_never_stops(ec: Any, ca: str) -> None:
    primary, reader = _endpoints(ec)
    loop = Loop(primary, None)
    try:
        answer = ec.modify_replication_group(
            ReplicationGroupId=GROUP, TransitEncryptionEnabled=True, TransitEncryptionMode="preferred",
            ApplyImmediately=True,
        )["ReplicationGroup"]  # fmt: skip
        assert answer["Status"] == "modifying"
        assert answer["TransitEncryptionEnabled"] is False  # what the nodes run until they have moved
        pending = {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}
        assert answer["PendingModifiedValues"] == pending
        group = _settled(ec)
        assert (group["TransitEncryptionEnabled"], group["TransitEncryptionMode"]) == (True, "preferred")
        for port in (primary, reader):  # preferred: one endpoint port takes both
            assert _refusal(port, ca) is None
            assert _refusal(port, None) is None
        members = group["NodeGroups"][0]["NodeGroupMembers"]
        for member in members:  # a node's own port is its TLS one now
            assert _refusal(int(member["ReadEndpoint"]["Port"]), ca) is None

        ec.modify_replication_group(ReplicationGroupId=GROUP, TransitEncryptionMode="required", ApplyImmediately=True)
        group = _settled(ec)
        assert (group["TransitEncryptionEnabled"], group["TransitEncryptionMode"]) == (True, "required")
        for port in (primary, reader):
            assert _refusal(port, ca) is None
            assert _refusal(port, None) is not None  # a new plain-text client is refused
        time.sleep(0.3)
    finally:
        loop.finish()
    assert loop.errors == []
    assert loop.done > 100


def test_a_failover_with_tls_required(ec: Any, ca: str) -> None:
    members = _group(ec)["NodeGroups"][0]["NodeGroupMembers"]
    old = next(m["CacheClusterId"] for m in members if m["CurrentRole"] == "primary")
    ec.test_failover(ReplicationGroupId=GROUP, NodeGroupId="0001")

    def moved() -> bool:
        now = _group(ec)["NodeGroups"][0]["NodeGroupMembers"]
        return next(m["CacheClusterId"] for m in now if m.get("CurrentRole") == "primary") != old

    wait_until(moved, 30, interval=0.2, what="a new primary")
    primary, _ = _endpoints(ec)

    def writes() -> bool:
        try:
            return bool(_client(primary, ca).set("after", "failover"))
        except redis.RedisError:
            return False

    wait_until(writes, 15, what="writes through the endpoint over TLS")
    _settled(ec)


def test_certificates_renewed_before_expiry_with_no_downtime(server: ServerProcess, ec: Any, ca: str) -> None:
    primary, _ = _endpoints(ec)
    members = _group(ec)["NodeGroups"][0]["NodeGroupMembers"]
    node = int(members[0]["ReadEndpoint"]["Port"])
    sentinel = int((server.data_dir / "nodes" / f"rg.{GROUP}" / "sentinel-1" / "port").read_text())
    password = server.sentinel_password()
    first_node, first_sentinel = _serial(node, ca), _serial(sentinel, ca, password)
    loop = Loop(primary, ca)
    try:
        wait_until(lambda: _serial(node, ca) != first_node, VALIDITY_S + 10, interval=0.5, what="a renewed node")

        def sentinel_renewed() -> bool:
            try:
                return _serial(sentinel, ca, password) != first_sentinel
            except OSError:
                return False  # restarting on its new certificate

        wait_until(sentinel_renewed, VALIDITY_S + 10, interval=0.5, what="a renewed Sentinel")
        for port in (node, primary):  # new clients verify the new certificate
            assert _refusal(port, ca) is None
    finally:
        loop.finish()
    assert loop.errors == []  # the session made before the renewal went on


def test_back_to_plain_text_through_preferred(ec: Any, ca: str) -> None:
    primary, _ = _endpoints(ec)
    ec.modify_replication_group(ReplicationGroupId=GROUP, TransitEncryptionMode="preferred", ApplyImmediately=True)
    _settled(ec)
    assert _refusal(primary, None) is None
    ec.modify_replication_group(ReplicationGroupId=GROUP, TransitEncryptionEnabled=False, ApplyImmediately=True)
    group = _settled(ec)
    assert group["TransitEncryptionEnabled"] is False
    assert "TransitEncryptionMode" not in group
    assert _refusal(primary, None) is None
    assert _refusal(primary, ca) is not None
    assert _client(primary, None).get("after") == b"failover"
