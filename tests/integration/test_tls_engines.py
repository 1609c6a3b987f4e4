"""TLS in transit with real engines: nodes, Sentinels and the endpoint proxy run the configs
``engines.redis``/``sentinel``/``haproxy`` render, started through ``LocalHost`` and stopped by PID.

A ``required`` group (3 nodes, 3 Sentinels with a password, one HAProxy) serves most tests, in file
order; the last one kills its primary. A small ``preferred`` group shows the single endpoint port
taking TLS and plain-text clients alike, through a failover. Clients verify the server's
certificate and the address they connect to (redis-py ``ssl_check_hostname``, ``redis-cli --tls``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from tests.support.engines import (
    BIND,
    HAPROXY_BINARY,
    REDIS_CLI,
    SENTINEL_BINARY,
    TLS_FILE,
    Pki,
    RecordingHost,
    engine_host,
    internal_credentials,
    redis_node,
    secrets_in_files,
)
from tests.support.server import wait_for

from cachefleet.engines import acl, haproxy, resp, sentinel
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.redis import NodeTls
from cachefleet.hosts.base import NodeKey, ProcessSpec
from cachefleet.model import auth_token
from cachefleet.model.errors import Retry
from cachefleet.model.transit import Transit, TransitMode
from cachefleet.tls import certs, files

pytestmark = pytest.mark.integration

ADMIN, INTERNAL = internal_credentials()
SENTINEL_PASSWORD = secrets.token_hex(16)
TOKEN = "MARKERtls-" + secrets.token_hex(8)
MASTER = "rg1"


@dataclass
class Group:
    host: RecordingHost
    pki: Pki
    root: Path
    mode: TransitMode
    keys: list[NodeKey]
    ports: list[int]  # the nodes' TLS ports (their identity: Sentinel and the endpoint know them)
    plain_ports: list[int]  # preferred only
    sentinel_ports: list[int]
    primary_port: int  # the endpoints
    reader_port: int
    admin_socket: Path

    @property
    def tls(self) -> resp.ClientTls:
        return self.pki.client_tls()


def _application() -> tuple[acl.AclUser, ...]:
    state = auth_token.initial_state(TOKEN, transit=Transit(True, TransitMode.REQUIRED))
    return (acl.token_default_user(state),)


def build_group(host: RecordingHost, pki: Pki, root: Path, mode: TransitMode, *, members: int, sentinels: int) -> Group:
    application = _application() if mode is TransitMode.REQUIRED else None
    keys = [NodeKey(f"{mode.value}-00{i}", "0001") for i in range(1, members + 1)]
    ports: list[int] = []
    plain_ports: list[int] = []
    for i, key in enumerate(keys):
        spec, plain, secure = redis_node(
            host,
            key,
            pki,
            admin=ADMIN,
            internal=INTERNAL,
            mode=mode,
            application=application,
            replicaof=None if i == 0 else (BIND, ports[0]),
        )
        ports.append(secure)
        plain_ports.append(plain)
        host.start(key, spec)

    # Sentinels learn replicas from INFO, asked every 10 s: they start once the replicas are linked.
    def linked(port: int) -> bool:
        observed = asyncio.run(
            redis_engine.probe(BIND, port, user=ADMIN.user, password=ADMIN.password, tls=pki.client_tls())
        )
        return observed is not None and observed.master_link_up

    for port in ports[1:]:
        wait_for(f"replica {port} to link over TLS", lambda port=port: linked(port))  # type: ignore[misc]

    endpoint = NodeKey(f"{mode.value}-endpoint", "0001")
    primary_port = host.allocate_port(endpoint, ())
    reader_port = host.allocate_port(endpoint, (), slot="reader")
    endpoint_dir = host.node_dir(endpoint)
    config = haproxy.EndpointConfig(
        bind=BIND,
        primary_port=primary_port,
        reader_port=reader_port,
        nodes=tuple((BIND, p) for p in ports),
        primary=(BIND, ports[0]),
        admin_user=INTERNAL.check.user,
        admin_password=INTERNAL.check.password,
        tls=haproxy.EndpointTls(
            mode,
            pki.ca,
            plain_ports=tuple(zip(ports, plain_ports, strict=True)) if mode is TransitMode.PREFERRED else (),
        ),
    )
    host.start(
        endpoint,
        ProcessSpec(
            argv=haproxy.argv(HAPROXY_BINARY, endpoint_dir / haproxy.CONFIG_FILE),
            files={haproxy.CONFIG_FILE: haproxy.render_config(config)},
        ),
    )
    admin_socket = endpoint_dir / haproxy.ADMIN_SOCKET
    script = sentinel.reconfig_script(sys.executable, admin_socket, haproxy.primary_backends(config))
    sentinel_ports = []
    for i in range(1, sentinels + 1):
        key = NodeKey(f"{mode.value}-sentinel", f"000{i}")
        port = host.allocate_port(key, ())
        sentinel_ports.append(port)
        node_dir = host.node_dir(key)
        cfg = sentinel.SentinelConfig(
            port=port,
            bind=BIND,
            data_dir=node_dir,
            master_name=MASTER,
            primary=(BIND, ports[0]),
            quorum=min(2, sentinels),
            admin_user=INTERNAL.sentinel.user,
            admin_password=INTERNAL.sentinel.password,
            my_id=sentinel.my_id(f"{key.cluster_id}/{key.node_id}"),
            reconfig_script=node_dir / sentinel.RECONFIG_SCRIPT,
            password=SENTINEL_PASSWORD,
            tls=sentinel.SentinelTls(node_dir / TLS_FILE, pki.ca),
        )
        host.start(
            key,
            ProcessSpec(
                argv=sentinel.argv(SENTINEL_BINARY, node_dir / sentinel.CONFIG_FILE),
                files={
                    sentinel.CONFIG_FILE: sentinel.render_config(cfg),
                    TLS_FILE: pki.leaf(f"sentinel-{i}", certs.Role.SENTINEL),
                },
                scripts={sentinel.RECONFIG_SCRIPT: script},
            ),
        )
    group = Group(
        host, pki, root, mode, keys, ports, plain_ports, sentinel_ports, primary_port, reader_port, admin_socket
    )
    for port in sentinel_ports:
        wait_for(f"sentinel {port} to see everyone", lambda port=port: _converged(group, port))  # type: ignore[misc]
    # The endpoint's health checks (over TLS with TLS required) have found every replica.
    replicas = sorted(haproxy.server_name(p) for p in ports[1:])
    for backend in (haproxy.READER_BACKEND, haproxy.PLAIN_READER_BACKEND)[: 2 if mode is TransitMode.PREFERRED else 1]:
        wait_for(f"the replicas up in {backend}", lambda b=backend: _up(group, b) == replicas)  # type: ignore[misc]
    return group


def _observe(group: Group, port: int) -> redis_engine.RedisObservation | None:
    return asyncio.run(redis_engine.probe(BIND, port, user=ADMIN.user, password=ADMIN.password, tls=group.tls))


def _linked(group: Group, port: int) -> bool:
    observed = _observe(group, port)
    return observed is not None and observed.master_link_up


def _sentinel_view(group: Group, port: int, password: str | None = SENTINEL_PASSWORD) -> sentinel.SentinelView | None:
    return asyncio.run(sentinel.probe(BIND, port, MASTER, password=password, tls=group.tls))


def _converged(group: Group, port: int) -> bool:
    view = _sentinel_view(group, port)
    replicas, peers = len(group.ports) - 1, len(group.sentinel_ports) - 1
    # Listed, and reached (over TLS): a replica Sentinel first saw while it synced is re-read a second later.
    seen = (view.num_replicas, view.num_other_sentinels, view.ready_replicas, view.connected_peers) if view else None
    return seen == (replicas, peers, replicas, peers)


def client(group: Group, port: int, *, tls: bool = True, password: str | None = TOKEN, **extra: Any) -> redis.Redis:
    params: dict[str, Any] = {
        "host": BIND,
        "port": port,
        "password": password,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "retry": RedisRetry(NoBackoff(), 0),
        "single_connection_client": True,
        "decode_responses": True,
    }
    if tls:
        params.update(ssl=True, ssl_ca_certs=str(group.pki.ca), ssl_check_hostname=True)
    params.update(extra)
    return redis.Redis(**params)


def served_by(group: Group, port: int, **kwargs: Any) -> tuple[str, int] | None:
    """(role, TLS port) of the node a fresh connection to ``port`` reaches, or None."""
    try:
        with client(group, port, **kwargs) as conn:
            info = conn.info("replication") | conn.info("server")
    except RedisError:
        return None
    # INFO's tcp_port is the plain port when there is one, else the TLS port.
    by_plain = dict(zip(group.plain_ports, group.ports, strict=True))
    return str(info["role"]), by_plain.get(int(info["tcp_port"]), int(info["tcp_port"]))


def redis_cli(group: Group, port: int, *args: str, tls: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [REDIS_CLI, "-h", BIND, "-p", str(port)]
    if tls:
        argv += ["--tls", "--cacert", str(group.pki.ca)]
    return subprocess.run(
        [*argv, *args],
        env={**os.environ, "REDISCLI_AUTH": TOKEN},  # not on the command line
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def peer_serial(port: int, ca: Path, hostname: str = BIND) -> int:
    """The serial number of the certificate a node presents now (to a client checking ``hostname``)."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((BIND, port), timeout=2) as raw_sock,
        context.wrap_socket(raw_sock, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    root = tmp_path_factory.mktemp("tls-required")
    with engine_host(root / "nodes") as host:
        yield build_group(host, Pki(root), root, TransitMode.REQUIRED, members=3, sentinels=3)
    assert secrets_in_files(root, [TOKEN]) == []


# -- required -------------------------------------------------------------------------------------


def test_clients_verify_the_node_and_plaintext_is_refused(group: Group) -> None:
    primary = group.ports[0]
    with client(group, primary) as conn:
        assert conn.set("greeting", "hello")
    done = redis_cli(group, primary, "GET", "greeting")
    assert (done.returncode, done.stdout.strip()) == (0, "hello"), done.stderr
    # No plain-text port at all: the node listens with TLS only.
    assert _observe(group, primary) is not None
    with pytest.raises(RedisConnectionError), client(group, primary, tls=False) as conn:
        conn.ping()
    plain_cli = redis_cli(group, primary, "PING", tls=False)
    assert "PONG" not in plain_cli.stdout
    # A client that trusts another CA, or checks another address, refuses the node.
    other = files.ensure_authority(group.root / "other-ca", dt.datetime.now(dt.UTC), files.Validity())
    assert other.certificate != group.pki.authority.certificate
    other_ca = str(files.ca_path(group.root / "other-ca"))
    with (
        pytest.raises(RedisConnectionError, match="certificate verify failed"),
        client(group, primary, ssl_ca_certs=other_ca) as conn,
    ):
        conn.ping()
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        peer_serial(primary, group.pki.ca, hostname="cache.example.com")


def test_the_endpoints_pass_tls_through_to_the_right_nodes(group: Group) -> None:
    assert served_by(group, group.primary_port) == ("master", group.ports[0])
    readers = {served_by(group, group.reader_port) for _ in range(6)}
    assert readers == {("slave", p) for p in group.ports[1:]}
    done = redis_cli(group, group.primary_port, "SET", "via-endpoint", "1")
    assert (done.returncode, done.stdout.strip()) == (0, "OK"), done.stderr
    # The endpoint only forwards bytes: a plain-text client gets nothing from a TLS node behind it.
    with pytest.raises(RedisError), client(group, group.primary_port, tls=False) as conn:
        conn.ping()
    # HAProxy's own health checks speak TLS to the nodes and authenticate as the check user.
    states = haproxy.server_states(group.admin_socket, haproxy.READER_BACKEND)
    assert sorted(n for n, s in states.items() if s.up) == sorted(haproxy.server_name(p) for p in group.ports[1:])


def test_sentinels_speak_tls_and_require_their_password(group: Group) -> None:
    port = group.sentinel_ports[0]
    view = _sentinel_view(group, port)
    assert view is not None
    assert (view.master_port, view.num_replicas, view.num_other_sentinels) == (group.ports[0], 2, 2)
    assert _sentinel_view(group, port, password=None) is None
    assert _sentinel_view(group, port, password="wrong-password") is None
    (reply,) = asyncio.run(resp.exchange(BIND, port, [("SENTINEL", "FAILOVER", MASTER)], timeout=2, tls=group.tls))
    assert isinstance(reply, resp.ReplyError)
    assert str(reply).startswith("NOAUTH")
    with pytest.raises(Retry, match="NOAUTH"):
        asyncio.run(sentinel.failover(BIND, port, MASTER, tls=group.tls))
    with pytest.raises((resp.ProtocolError, ConnectionResetError)):  # TLS only: plain text is dropped
        asyncio.run(resp.exchange(BIND, port, [("PING",)], timeout=2))
    known = asyncio.run(sentinel.replicas(BIND, port, MASTER, password=SENTINEL_PASSWORD, tls=group.tls))
    assert known is not None
    assert sorted(int(r["port"]) for r in known) == sorted(group.ports[1:])  # replicas announce TLS ports


def test_certificate_renewal_is_live_and_keeps_connections(group: Group) -> None:
    primary = group.ports[0]
    key = group.keys[0]
    path = group.host.node_dir(key) / TLS_FILE
    identity = group.pki.identity(f"{key.cluster_id}-{key.node_id}")
    node_tls = NodeTls(primary, TransitMode.REQUIRED, path, group.pki.ca)

    def reload() -> None:
        asyncio.run(
            redis_engine.reload_tls(
                BIND, primary, user=ADMIN.user, password=ADMIN.password, node_tls=node_tls, tls=group.tls
            )
        )

    now = dt.datetime.now(dt.UTC)
    assert files.renew(path, identity, group.pki.authority, now, group.pki.validity) is None  # fresh: not due
    # Give the node a certificate with a third of its life left: 30 s long, issued 20 s ago.
    aging = certs.issue(group.pki.authority, identity, now - dt.timedelta(seconds=20), dt.timedelta(seconds=30))
    files.write_atomic(path, aging, 0o600)
    reload()
    before = peer_serial(primary, group.pki.ca)
    assert before == certs.certificate_of(aging).serial_number
    held = client(group, group.primary_port)
    held.set("before-renewal", "1")
    # The renewal: due, a new file (one rename), then the node told to read it. No restart.
    pid = group.host.pid(key)
    reason = files.renew(path, identity, group.pki.authority, dt.datetime.now(dt.UTC), group.pki.validity)
    assert reason is not None
    assert "less than a third" in reason
    assert peer_serial(primary, group.pki.ca) == before  # a new file alone changes nothing
    reload()
    after = peer_serial(primary, group.pki.ca)
    assert after == certs.certificate_of(path.read_bytes()).serial_number != before
    assert held.get("before-renewal") == "1"  # the session established before the reload lives on
    held.close()
    assert group.host.pid(key) == pid
    for port in group.ports[1:]:
        assert _linked(group, port)
    assert served_by(group, group.primary_port) == ("master", primary)


def test_failover_over_tls_moves_the_endpoint(group: Group) -> None:
    first = group.ports[0]
    held = client(group, group.primary_port)
    held.set("held", "1")
    pid = group.host.pid(group.keys[0])
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def write() -> int | None:
        try:
            with client(group, group.primary_port) as conn:
                conn.set("after-kill", "1")
                return int(conn.info("server")["tcp_port"])
        except RedisError:
            return None

    landed = wait_for("a write through the TLS endpoint after kill -9", write, timeout=20.0)
    assert landed in group.ports[1:]
    with pytest.raises(RedisConnectionError):
        held.get("held")
    held.close()
    # The old primary comes back as a replica of the new one, over TLS.
    spec, _, port = redis_node(
        group.host,
        group.keys[0],
        group.pki,
        admin=ADMIN,
        internal=INTERNAL,
        application=_application(),
        replicaof=(BIND, landed),
    )
    assert port == first
    group.host.start(group.keys[0], spec)
    wait_for("the old primary to link to the new one", lambda: _linked(group, first))
    # Sentinel, replication and health checks did all that within their users' rights: no node logged
    # a command refused to an internal user.
    for port in group.ports:
        (log,) = asyncio.run(_acl_log(group, port))
        assert isinstance(log, list)
        refused = [e for e in log if isinstance(e, list) and any(str(f).startswith("cachefleet-") for f in e)]
        assert refused == [], (port, refused)


async def _acl_log(group: Group, port: int) -> list[resp.Reply]:
    auth, *replies = await resp.exchange(
        BIND, port, [("AUTH", ADMIN.user, ADMIN.password), ("ACL", "LOG")], timeout=2.0, tls=group.tls
    )
    assert auth == "OK"
    return replies


def _up(group: Group, backend: str) -> list[str]:
    try:
        return sorted(n for n, s in haproxy.server_states(group.admin_socket, backend).items() if s.up)
    except Retry:
        return []


# -- preferred ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def preferred(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    root = tmp_path_factory.mktemp("tls-preferred")
    with engine_host(root / "nodes") as host:
        yield build_group(host, Pki(root), root, TransitMode.PREFERRED, members=2, sentinels=1)


def test_preferred_takes_tls_and_plaintext_on_one_endpoint_port_through_a_failover(preferred: Group) -> None:
    group = preferred
    first, second = group.ports
    for tls in (True, False):
        assert served_by(group, group.primary_port, tls=tls, password=None) == ("master", first)
        assert served_by(group, group.reader_port, tls=tls, password=None) == ("slave", second)
    # Each node takes both directly too.
    assert served_by(group, group.plain_ports[0], tls=False, password=None) == ("master", first)
    assert served_by(group, first, password=None) == ("master", first)
    held_plain = client(group, group.primary_port, tls=False, password=None)
    held_tls = client(group, group.primary_port, password=None)
    held_plain.ping()
    held_tls.ping()

    def ask() -> bool:
        try:
            asyncio.run(
                sentinel.failover(BIND, group.sentinel_ports[0], MASTER, password=SENTINEL_PASSWORD, tls=group.tls)
            )
        except Retry:
            time.sleep(0.2)
            return False
        return True

    wait_for("SENTINEL FAILOVER to be accepted", ask)
    # Sentinel's script flips both primary backends: TLS and plain-text clients follow.
    for tls in (True, False):
        wait_for(
            f"the {'TLS' if tls else 'plain'} endpoint to reach the new primary",
            lambda tls=tls: served_by(group, group.primary_port, tls=tls, password=None) == ("master", second),  # type: ignore[misc]
        )
    for backend in (haproxy.PRIMARY_BACKEND, haproxy.PLAIN_PRIMARY_BACKEND):
        states = haproxy.server_states(group.admin_socket, backend)
        assert states[haproxy.server_name(first)].maint
    for held in (held_plain, held_tls):
        with pytest.raises(RedisConnectionError):
            held.get("x")  # sessions to the demoted node were cut
        held.close()
