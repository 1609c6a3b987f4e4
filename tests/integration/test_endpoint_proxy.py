"""The host's one endpoint proxy with real engines: two groups' endpoints in one HAProxy process,
groups added and removed by seamless reloads while clients hold connections through both groups'
endpoints, and a failover of one group after those reloads (``control.proxy``).

Each group is a primary and a replica (real redis-servers, started through ``LocalHost``); the proxy
is driven by ``EndpointProxy`` itself, as the executor drives it. The failover is done by hand: REPLICAOF
alone leaves the clients' connections to the demoted node open, which shows that an old worker
(one that predates a reload) runs no health checks; moving the endpoint (``haproxy.set_primary``
with the master's CLI) cuts them.

Every process is recorded by PID and stopped in the fixture's finalizer, HAProxy's workers included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from tests.support.engines import BIND, RecordingHost, children, engine_host
from tests.support.pinger import Pinger
from tests.support.server import wait_for

from cachefleet.control.actions import EndpointInputs
from cachefleet.control.proxy import EndpointProxy
from cachefleet.engines import haproxy
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.installed import require_binaries
from cachefleet.hosts.base import Host, ProcessSpec
from cachefleet.hosts.embedded import EmbeddedHost
from cachefleet.hosts.local import LocalHost
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Retry
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import PROXY_KEY, READER_SLOT, Placement, endpoint_key, member_key

pytestmark = pytest.mark.integration

ADMIN = "cachefleet-admin"
PASSWORD = secrets.token_urlsafe(16)
AT = Placement(LOCAL_HOST, BIND, "az-a")
BINARIES = require_binaries("haproxy", "redis-server")


@dataclass
class OneHost:
    host: Host

    def get(self, host_id: str) -> Host:
        return self.host


@pytest.fixture
def local(tmp_path: Path) -> Iterator[RecordingHost]:
    with engine_host(tmp_path / "nodes") as test_host:
        yield test_host


def _node(local: LocalHost, member: str, replicaof: tuple[str, int] | None) -> int:
    key = member_key(member)
    port = local.allocate_port(key, ())
    config = redis_engine.RedisNodeConfig(
        port=port,
        bind=BIND,
        data_dir=local.node_dir(key),
        maxmemory_bytes=32 << 20,
        admin_user=ADMIN,
        admin_password=PASSWORD,
        replicaof=replicaof,
    )
    argv = redis_engine.argv(BINARIES["redis-server"], local.node_dir(key) / redis_engine.CONFIG_FILE)
    local.start(key, ProcessSpec(argv=argv, files={redis_engine.CONFIG_FILE: redis_engine.render_config(config)}))
    return port


def _admin(port: int) -> redis.Redis:
    return redis.Redis(host=BIND, port=port, username=ADMIN, password=PASSWORD, retry=RedisRetry(NoBackoff(), 0))


def _client(port: int) -> redis.Redis:
    """An application's connection: one socket for its whole life, no retries."""
    return redis.Redis(
        host=BIND,
        port=port,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=RedisRetry(NoBackoff(), 0),
        single_connection_client=True,
        decode_responses=True,
    )


def _listeners(port: int) -> set[int]:
    """The PIDs of the processes that hold a socket listening on 127.0.0.1:``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "0A":  # LISTEN
            inodes.add(fields[9])
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        found.add(int(proc.name))
    return found


@dataclass
class Group:
    group_id: str
    primary: int
    replica: int
    endpoint: int
    reader: int

    def inputs(self, primary: int | None = None) -> EndpointInputs:
        nodes = ((BIND, self.primary), (BIND, self.replica))
        return EndpointInputs(nodes, (BIND, primary or self.primary))


def _group(local: LocalHost, group_id: str) -> Group:
    primary = _node(local, f"{group_id}-001", None)
    replica = _node(local, f"{group_id}-002", (BIND, primary))
    key = endpoint_key(group_id)
    endpoint, reader = local.allocate_port(key, ()), local.allocate_port(key, (), READER_SLOT)
    return Group(group_id, primary, replica, endpoint, reader)


def _routes(socket: Path, group: Group, port: int) -> bool:
    """The group's be_primary has only ``n<port>`` out of maintenance, and up."""
    try:
        servers = haproxy.server_states(socket, haproxy.qualified(haproxy.PRIMARY_BACKEND, group.group_id))
    except Retry:
        return False
    name = haproxy.server_name(port)
    return name in servers and servers[name].up and all(s.maint == (n != name) for n, s in servers.items())


def _readers_settled(socket: Path, group: Group) -> bool:
    """The group's be_reader has its replica up and its primary down: servers start up until their
    first check, so a session opened before could go to the primary, and be cut by that check."""
    try:
        servers = haproxy.server_states(socket, haproxy.qualified(haproxy.READER_BACKEND, group.group_id))
    except Retry:
        return False
    up = {n for n, s in servers.items() if s.up}
    return up == {haproxy.server_name(group.replica)}


def test_groups_share_one_proxy_through_reloads_and_a_failover_after_them(local: RecordingHost) -> None:
    host = EmbeddedHost(local, LOCAL_HOST, BIND)
    proxy = EndpointProxy(OneHost(host), BINARIES["haproxy"], Credentials(ADMIN, PASSWORD), Path("/nonexistent"))
    socket = asyncio.run(proxy.admin_socket(AT, "ga"))
    a, b = _group(local, "ga"), _group(local, "gb")
    for group in (a, b):
        asyncio.run(proxy.serve(AT, group.group_id, group.inputs()))
    for group in (a, b):
        settled = lambda g=group: _routes(socket, g, g.primary) and _readers_settled(socket, g)  # noqa: E731
        wait_for(f"{group.group_id} routed", settled)
    master = local.pid(PROXY_KEY)
    assert master is not None
    ports = [p for g in (a, b) for p in (g.endpoint, g.reader)]
    # One process serves both groups' four endpoints: the worker under the one master.
    (worker,) = _listeners(a.endpoint)
    assert all(_listeners(port) == {worker} for port in ports)
    assert children(master) == [worker]

    held = {(g.group_id, kind): _client(port) for g in (a, b) for kind, port in (("w", g.endpoint), ("r", g.reader))}
    ids = {k: c.client_id() for k, c in held.items()}
    assert held[("ga", "w")].info("server")["tcp_port"] == a.primary
    pinger = Pinger(list(held.values()))
    try:
        # A third group comes and goes, each a reload of the shared process.
        c = _group(local, "gc")
        asyncio.run(proxy.serve(AT, "gc", c.inputs()))
        wait_for("gc routed", lambda: _routes(socket, c, c.primary))
        with _client(c.endpoint) as fresh:
            assert fresh.set("gc", "1")
        asyncio.run(proxy.withdraw(AT, "gc"))
        with pytest.raises(RedisError):
            _client(c.endpoint)  # its ports are no longer served (a single-connection client connects at once)
        time.sleep(0.3)  # pings on every held connection after the last reload
    finally:
        pinger.finish()
    assert pinger.errors == []
    assert pinger.ok > 100
    assert {k: c.client_id() for k, c in held.items()} == ids  # the same sockets all along
    assert local.pid(PROXY_KEY) == master
    # The first worker still holds the four sessions it had; the current one serves new connections.
    assert worker in children(master)
    assert _listeners(a.endpoint) != {worker}

    # A failover of ga after the reloads: the replica is promoted and the old primary demoted (REPLICAOF
    # cuts no client) ...
    with _admin(a.replica) as node:
        node.execute_command("REPLICAOF", "NO", "ONE")
    with _admin(a.primary) as node:
        node.execute_command("REPLICAOF", BIND, str(a.replica))
    # ... and HAProxy 2.6 runs no health checks in a worker that is stopping: the session that the old
    # worker holds to the demoted primary outlives several check intervals (fall 2 x 500 ms).
    demoted = held[("ga", "w")]
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert demoted.ping()
        time.sleep(0.1)
    assert demoted.info("server")["tcp_port"] == a.primary
    # The endpoint is moved through the admin socket, which the newest worker answers, and through the
    # master's CLI in the old workers, which cut their sessions to any other server of the group.
    master_socket = socket.parent / haproxy.MASTER_SOCKET
    backends = (haproxy.qualified(haproxy.PRIMARY_BACKEND, "ga"),)
    haproxy.set_primary(socket, haproxy.server_name(a.replica), backends, master_socket)
    with pytest.raises(RedisError):
        demoted.ping()
    wait_for("ga's endpoint on its new primary", lambda: _routes(socket, a, a.replica))
    with _client(a.endpoint) as fresh:
        assert fresh.info("server")["tcp_port"] == a.replica
        assert fresh.set("after", "failover")
    # gb's sessions, held by the same old worker, are untouched.
    for kind in ("w", "r"):
        assert held[("gb", kind)].ping()
        assert held[("gb", kind)].client_id() == ids[("gb", kind)]

    # A reload now keeps ga on its new primary (read from the running worker, not its recorded one).
    asyncio.run(proxy.serve(AT, "gb", b.inputs()))
    now = haproxy.server_states(socket, haproxy.qualified(haproxy.PRIMARY_BACKEND, "ga"))  # the new worker's
    assert now[haproxy.server_name(a.primary)].maint
    assert not now[haproxy.server_name(a.replica)].maint
    wait_for("ga routed after the reload", lambda: _routes(socket, a, a.replica))
    with _client(a.endpoint) as fresh:
        assert fresh.info("server")["tcp_port"] == a.replica
    for connection in held.values():
        connection.close()
