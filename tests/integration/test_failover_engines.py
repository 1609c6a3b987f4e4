"""Automatic failover with real engines: 1 primary + 2 replicas, 3 Sentinels (quorum 2) and one
HAProxy giving the group a primary and a reader endpoint, all started through ``LocalHost``.

The host root is deliberately long, so the HAProxy admin socket's absolute path exceeds AF_UNIX's
108 bytes: both the control plane's helpers and Sentinel's reconfig script must work around it.

Every process is recorded by PID and stopped in the fixture's finalizer, even when the test fails:
through the host first, then SIGKILL by PID for anything left (HAProxy workers included).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from tests.support.engines import BIND, RecordingHost, engine_host
from tests.support.server import wait_for

from cachefleet.engines import haproxy, sentinel
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.installed import require_binaries
from cachefleet.hosts.base import ProcessSpec
from cachefleet.hosts.local import LocalHost
from cachefleet.model.errors import Retry
from cachefleet.model.nodes import NodeKey

pytestmark = pytest.mark.integration

ADMIN = "cachefleet-admin"
PASSWORD = secrets.token_urlsafe(16)
MASTER = "rg1"
NODES = [NodeKey("rg1-001", "0001"), NodeKey("rg1-002", "0001"), NodeKey("rg1-003", "0001")]
SENTINELS = [NodeKey("rg1-sentinel", f"000{i}") for i in (1, 2, 3)]
ENDPOINT = NodeKey("rg1-endpoint", "0001")
# Found as the server finds them; a missing one fails the test with the Debian package to install.
BINARIES = require_binaries("redis-sentinel", "haproxy", "redis-server")
SENTINEL_BINARY = BINARIES["redis-sentinel"]
HAPROXY_BINARY = BINARIES["haproxy"]
REDIS_BINARY = BINARIES["redis-server"]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[RecordingHost]:
    # Long enough that <root>/rg1-endpoint/0001/admin.sock is beyond AF_UNIX's limit.
    with engine_host(tmp_path / ("long-" * 16) / "nodes") as test_host:
        yield test_host


# -- helpers -------------------------------------------------------------------------------------


def client(port: int, timeout: float = 0.5) -> redis.Redis:
    """An application's connection (``default`` user), one socket, no retries."""
    return redis.Redis(
        host=BIND,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=RedisRetry(NoBackoff(), 0),
        single_connection_client=True,
        decode_responses=True,
    )


def write_through(port: int, key: str, value: str) -> int | None:
    """SET through an endpoint on a fresh connection; the port of the node that took it, or None."""
    try:
        with client(port) as conn:
            conn.set(key, value)
            return int(conn.info("server")["tcp_port"])
    except RedisError:
        return None


def read_role_through(port: int) -> tuple[str, int] | None:
    try:
        with client(port) as conn:
            info: dict[str, Any] = conn.info()
            return str(info["role"]), int(info["tcp_port"])
    except RedisError:
        return None


def redis_spec(test_host: LocalHost, key: NodeKey, replicaof: tuple[str, int] | None) -> tuple[ProcessSpec, int]:
    port = test_host.allocate_port(key, ())
    node_dir = test_host.node_dir(key)
    config = redis_engine.RedisNodeConfig(
        port=port,
        bind=BIND,
        data_dir=node_dir,
        maxmemory_bytes=64 << 20,
        admin_user=ADMIN,
        admin_password=PASSWORD,
        replicaof=replicaof,
    )
    text = redis_engine.render_config(config)
    assert "repl-diskless-sync-delay 0" in text  # no 5 s wait before each initial sync
    argv = redis_engine.argv(REDIS_BINARY, node_dir / redis_engine.CONFIG_FILE)
    return ProcessSpec(argv=argv, files={redis_engine.CONFIG_FILE: text}), port


def sentinel_probe(port: int) -> sentinel.SentinelView | None:
    return asyncio.run(sentinel.probe(BIND, port, MASTER))


def linked(port: int) -> bool:
    obs = asyncio.run(redis_engine.probe(BIND, port, user=ADMIN, password=PASSWORD))
    return obs is not None and obs.master_link_up


def states(socket_path: Path) -> dict[str, haproxy.ServerState]:
    try:
        return haproxy.server_states(socket_path, haproxy.PRIMARY_BACKEND)
    except Retry:
        return {}


def only_ready(socket_path: Path, port: int) -> bool:
    """be_primary has ``n<port>`` ready and up, every other server in maintenance."""
    now = states(socket_path)
    name = haproxy.server_name(port)
    return name in now and now[name].up and not now[name].maint and all(s.maint for n, s in now.items() if n != name)


# -- the test ------------------------------------------------------------------------------------


def test_sentinel_failover_moves_the_haproxy_endpoints(host: RecordingHost) -> None:
    # Nodes: 0001 is the primary.
    ports: list[int] = []
    for i, key in enumerate(NODES):
        spec, port = redis_spec(host, key, None if i == 0 else (BIND, ports[0]))
        ports.append(port)
        host.start(key, spec)
    first, others = ports[0], ports[1:]
    nodes = tuple((BIND, p) for p in ports)

    # The endpoint: two ports in two slots of one node.
    primary_port = host.allocate_port(ENDPOINT, ())
    reader_port = host.allocate_port(ENDPOINT, (), slot="reader")
    assert host.port_of(ENDPOINT, "reader") == reader_port != primary_port
    endpoint_dir = host.node_dir(ENDPOINT)
    admin_socket = endpoint_dir / haproxy.ADMIN_SOCKET
    assert len(os.fsencode(admin_socket)) > 110
    endpoint = haproxy.EndpointConfig(
        bind=BIND,
        primary_port=primary_port,
        reader_port=reader_port,
        nodes=nodes,
        primary=(BIND, first),
        admin_user=ADMIN,
        admin_password=PASSWORD,
    )
    endpoint_spec = ProcessSpec(
        argv=haproxy.argv(HAPROXY_BINARY, endpoint_dir / haproxy.CONFIG_FILE),
        files={haproxy.CONFIG_FILE: haproxy.render_config(endpoint)},
    )
    endpoint_pid = host.start(ENDPOINT, endpoint_spec)

    # Sentinels, each with the reconfig script that flips the endpoint.
    script = sentinel.reconfig_script(sys.executable, admin_socket)
    sentinel_ports: list[int] = []
    for key in SENTINELS:
        port = host.allocate_port(key, ())
        sentinel_ports.append(port)
        node_dir = host.node_dir(key)
        config = sentinel.SentinelConfig(
            port=port,
            bind=BIND,
            data_dir=node_dir,
            master_name=MASTER,
            primary=(BIND, first),
            quorum=2,
            admin_user=ADMIN,
            admin_password=PASSWORD,
            my_id=sentinel.my_id(f"{key.cluster_id}/{key.node_id}"),
            reconfig_script=node_dir / sentinel.RECONFIG_SCRIPT,
        )
        host.start(
            key,
            ProcessSpec(
                argv=sentinel.argv(SENTINEL_BINARY, node_dir / sentinel.CONFIG_FILE),
                files={sentinel.CONFIG_FILE: sentinel.render_config(config)},
                scripts={sentinel.RECONFIG_SCRIPT: script},
            ),
        )

    # Converged: replicas linked, every sentinel sees both replicas linked and both peers connected
    # (a replica it first read while that one synced is read again a second later), HAProxy's checks
    # have placed both replicas in the reader backend.
    for port in others:
        wait_for(f"replica {port} to link", lambda port=port: linked(port))  # type: ignore[misc]

    def converged(port: int) -> bool:
        view = sentinel_probe(port)
        if view is None:
            return False
        return (view.num_replicas, view.num_other_sentinels, view.ready_replicas, view.connected_peers) == (2, 2, 2, 2)

    for port in sentinel_ports:
        wait_for(f"sentinel {port} to converge", lambda port=port: converged(port))  # type: ignore[misc]
    # The periods the control plane gives every linked Sentinel (runtime only): without the short ask
    # period, a second failover right after the first one happened here about once in ten runs.
    steady = sentinel.Timings(sentinel.PING_PERIOD_MS, sentinel.ASK_PERIOD_MS)
    for port in sentinel_ports:
        asyncio.run(sentinel.set_timings(BIND, port, steady))
    view = sentinel_probe(sentinel_ports[0])
    assert view is not None
    assert view.timings == steady
    assert (view.master_host, view.master_port, view.quorum, "master" in view.flags) == (BIND, first, 2, True)
    known = asyncio.run(sentinel.replicas(BIND, sentinel_ports[0], MASTER))
    assert known is not None
    assert sorted(int(r["port"]) for r in known) == sorted(others)
    assert {r["master-link-status"] for r in known} == {"ok"}

    def readers_up() -> bool:
        try:
            reader = haproxy.server_states(admin_socket, haproxy.READER_BACKEND)
        except Retry:
            return False
        return sorted(n for n, s in reader.items() if s.up) == sorted(haproxy.server_name(p) for p in others)

    wait_for("both replicas up in be_reader", readers_up)
    assert only_ready(admin_socket, first)
    # The host recognises HAProxy's master by the config path on its command line.
    assert str(endpoint_dir) in Path(f"/proc/{endpoint_pid}/cmdline").read_text()
    assert host.read_file(ENDPOINT, haproxy.CONFIG_FILE) == endpoint_spec.files[haproxy.CONFIG_FILE]
    assert os.stat(host.node_dir(SENTINELS[0]) / sentinel.RECONFIG_SCRIPT).st_mode & 0o777 == 0o700

    # Writes through the primary endpoint reach the primary; reads through the reader reach replicas.
    assert write_through(primary_port, "before", "1") == first
    with client(first) as direct:
        assert direct.get("before") == "1"
    seen = {read_role_through(reader_port) for _ in range(6)}
    assert seen == {("slave", p) for p in others}

    # kill -9 of the primary: a write through the endpoint lands on the promoted replica.
    held = client(primary_port)
    held.set("held", "1")
    primary_pid = host.pid(NODES[0])
    assert primary_pid is not None
    killed_at = time.monotonic()
    os.kill(primary_pid, signal.SIGKILL)
    landed = wait_for(
        "a write through the endpoint after kill -9",
        lambda: write_through(primary_port, "after-kill", "1"),
        timeout=15.0,
    )
    recovered = time.monotonic() - killed_at
    print(f"\nkill -9 of the primary -> first successful write through the endpoint: {recovered:.2f} s")
    assert landed in others
    new_primary = landed
    with client(new_primary) as direct:
        assert direct.get("after-kill") == "1"
        assert direct.get("before") == "1"
    wait_for("be_primary to hold only the new primary", lambda: only_ready(admin_socket, new_primary))
    assert states(admin_socket)[haproxy.server_name(first)].maint
    with pytest.raises(RedisConnectionError):
        held.get("held")
    held.close()
    for port in sentinel_ports:
        wait_for(
            f"sentinel {port} to follow the switch",
            lambda port=port: (
                (v := sentinel_probe(port)) is not None  # type: ignore[misc]
                and v.master_port == new_primary
            ),
        )

    # The old primary comes back as a replica of the new one (never as a master): the endpoint
    # never sends it a write.
    spec, _ = redis_spec(host, NODES[0], (BIND, new_primary))
    host.start(NODES[0], spec)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert write_through(primary_port, "after-restart", "1") in (new_primary, None)
        assert states(admin_socket)[haproxy.server_name(first)].maint
        time.sleep(0.1)
    wait_for("the old primary to link to the new one", lambda: linked(first))

    # A planned failover (SENTINEL FAILOVER) moves the primary and the script flips the endpoint.
    held = client(primary_port)
    assert held.set("held", "2")
    assert int(held.info("server")["tcp_port"]) == new_primary

    def ask_failover() -> bool:
        try:
            asyncio.run(sentinel.failover(BIND, sentinel_ports[1], MASTER))
        except Retry:  # INPROG or NOGOODSLAVE while the sentinels settle
            time.sleep(0.2)
            return False
        return True

    wait_for("SENTINEL FAILOVER to be accepted", ask_failover, timeout=20.0)

    def moved() -> int | None:
        view = sentinel_probe(sentinel_ports[1])
        if view is None or view.master_port == new_primary:
            return None
        return view.master_port if only_ready(admin_socket, view.master_port) else None

    planned = wait_for("the planned failover to flip the endpoint", moved)
    assert planned in ports
    assert planned != new_primary
    assert (
        wait_for("a write on the planned primary", lambda: write_through(primary_port, "after-planned", "1")) == planned
    )
    # The demoted node is alive (now a replica): its sessions through the endpoint were cut, so the
    # held connection fails instead of answering READONLY.
    with pytest.raises(RedisConnectionError):
        held.get("held")
    held.close()

    # The control plane can enforce the same state through the admin socket (long path, no chdir).
    haproxy.set_primary(admin_socket, haproxy.server_name(planned))
    assert only_ready(admin_socket, planned)
    with pytest.raises(Retry):
        haproxy.set_primary(admin_socket, "n1")


def test_haproxy_accepts_the_rendered_config_with_an_awkward_password(tmp_path: Path) -> None:
    endpoint = haproxy.EndpointConfig(
        bind=BIND,
        primary_port=1,
        reader_port=2,
        nodes=((BIND, 3), (BIND, 4)),
        primary=(BIND, 4),
        admin_user=ADMIN,
        admin_password="p a$s\"w\\o#rd'${HOME}",
    )
    conf = tmp_path / haproxy.CONFIG_FILE
    conf.write_text(haproxy.render_config(endpoint))
    done = subprocess.run(
        [HAPROXY_BINARY, "-c", "-f", str(conf)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_endpoint_follows_the_replica_being_promoted_once_it_answers_as_primary(host: RecordingHost) -> None:
    # Sentinel's notification of the replica its leader chose (+selected-slave) points the endpoint
    # at it with its health forced down: HAProxy's own role:master check lets writes through only
    # once that node has been promoted, instead of when Sentinel next asks it for INFO.
    first_spec, first = redis_spec(host, NODES[0], None)
    host.start(NODES[0], first_spec)
    second_spec, second = redis_spec(host, NODES[1], (BIND, first))
    host.start(NODES[1], second_spec)
    wait_for("the replica to link", lambda: linked(second))
    primary_port = host.allocate_port(ENDPOINT, ())
    reader_port = host.allocate_port(ENDPOINT, (), slot="reader")
    endpoint_dir = host.node_dir(ENDPOINT)
    admin_socket = endpoint_dir / haproxy.ADMIN_SOCKET
    endpoint = haproxy.EndpointConfig(
        bind=BIND,
        primary_port=primary_port,
        reader_port=reader_port,
        nodes=((BIND, first), (BIND, second)),
        primary=(BIND, first),
        admin_user=ADMIN,
        admin_password=PASSWORD,
    )
    host.start(
        ENDPOINT,
        ProcessSpec(
            argv=haproxy.argv(HAPROXY_BINARY, endpoint_dir / haproxy.CONFIG_FILE),
            files={haproxy.CONFIG_FILE: haproxy.render_config(endpoint)},
        ),
    )
    wait_for("be_primary to hold the primary", lambda: only_ready(admin_socket, first))
    assert write_through(primary_port, "before", "1") == first

    script = host.node_dir(SENTINELS[0]) / sentinel.RECONFIG_SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(sentinel.reconfig_script(sys.executable, admin_socket))
    script.chmod(0o700)

    def run(*args: str) -> None:
        done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr

    # Events that do not choose a primary leave the endpoint alone.
    run("+sdown", f"master {MASTER} {BIND} {first}")
    assert only_ready(admin_socket, first)

    run("+selected-slave", f"slave {BIND}:{second} {BIND} {second} @ {MASTER} {BIND} {first}")
    now = states(admin_socket)
    chosen = haproxy.server_name(second)
    assert now[haproxy.server_name(first)].maint
    assert not now[chosen].maint
    # Still a replica: HAProxy sends it nothing (its check wants role:master), over several checks.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert not states(admin_socket)[chosen].up
        assert write_through(primary_port, "too-early", "1") is None
        time.sleep(0.05)

    no_retry = RedisRetry(NoBackoff(), 0)
    with redis.Redis(host=BIND, port=second, username=ADMIN, password=PASSWORD, retry=no_retry) as admin:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    promoted = time.monotonic()
    wait_for("HAProxy to see the promoted node", lambda: only_ready(admin_socket, second), timeout=5.0)
    print(f"\nREPLICAOF NO ONE -> HAProxy has the promoted node up: {time.monotonic() - promoted:.3f} s")
    assert write_through(primary_port, "after", "1") == second

    # A promotion Sentinel gave up on: the endpoint goes back to the master Sentinel still names.
    run("-failover-abort-slave-timeout", f"master {MASTER} {BIND} {first}")
    assert only_ready(admin_socket, first)
