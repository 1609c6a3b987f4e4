"""The local host driver with real redis-server and memcached processes.

Every process a test starts is recorded by PID and stopped in a fixture finalizer, even when the
test fails: first through the host (SIGTERM, then SIGKILL), then, for anything still alive, SIGKILL
by the recorded PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import NoPermissionError, ReadOnlyError
from tests.support.server import is_alive as _alive
from tests.support.server import wait_for

from cachefleet.engines import memcached
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.installed import EngineBinary, discover, major_minor
from cachefleet.hosts.base import PortRequest, ProcessSpec
from cachefleet.hosts.local import LocalHost
from cachefleet.model.errors import InsufficientCacheClusterCapacity
from cachefleet.model.nodes import NodeKey

pytestmark = pytest.mark.integration

BIND = "127.0.0.1"
PORT_RANGE = (30000, 40000)
ADMIN = "cachefleet-admin"
PASSWORD = secrets.token_urlsafe(16)
MAXMEMORY = 64 << 20


class RecordingHost(LocalHost):
    """A LocalHost that also records every PID it starts, for the finalizer's last resort."""

    def __init__(self, root: Path, started: list[int]) -> None:
        super().__init__(root, PORT_RANGE, BIND)
        self.started = started

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        pid = super().start(key, spec)
        self.started.append(pid)
        return pid


@pytest.fixture
def started() -> Iterator[list[int]]:
    """PIDs of every process a test started (through a host or directly); killed if still alive."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reaped already, by the host
            os.waitpid(pid, 0)  # all of these are our children


@pytest.fixture
def make_host(tmp_path: Path, started: list[int]) -> Iterator[Callable[[], RecordingHost]]:
    """Hosts on one shared root (``tmp_path/nodes``); teardown stops every node found there."""
    hosts: list[RecordingHost] = []

    def make() -> RecordingHost:
        host = RecordingHost(tmp_path / "nodes", started)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        for key in host.nodes():
            host.stop(key, timeout=2.0)


@pytest.fixture
def host(make_host: Callable[[], RecordingHost]) -> RecordingHost:
    return make_host()


@pytest.fixture(scope="module")
def engines() -> dict[str, EngineBinary]:
    return {binary.engine: binary for binary in discover()}


@pytest.fixture
def redis_server(engines: dict[str, EngineBinary]) -> str:
    if "redis" not in engines:
        pytest.skip("redis-server is not installed")
    return engines["redis"].path


@pytest.fixture
def memcached_binary(engines: dict[str, EngineBinary]) -> EngineBinary:
    if "memcached" not in engines:
        pytest.skip("memcached is not installed")
    return engines["memcached"]


# -- helpers -------------------------------------------------------------------------------------


def app_client(port: int) -> redis.Redis:
    """An application's connection: the ``default`` user, no password."""
    return redis.Redis(host=BIND, port=port, socket_timeout=2, socket_connect_timeout=1, decode_responses=True)


def admin_client(port: int) -> redis.Redis:
    return redis.Redis(
        host=BIND,
        port=port,
        username=ADMIN,
        password=PASSWORD,
        socket_timeout=2,
        socket_connect_timeout=1,
        decode_responses=True,
    )


def answers_ping(port: int) -> bool:
    try:
        with app_client(port) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def redis_spec(
    host: LocalHost,
    binary: str,
    key: NodeKey,
    *,
    replicaof: tuple[str, int] | None = None,
    appendonly: bool = False,
) -> tuple[ProcessSpec, int]:
    port = host.allocate_port(key, ())
    node_dir = host.node_dir(key)
    config = redis_engine.RedisNodeConfig(
        port=port,
        bind=BIND,
        data_dir=node_dir,
        maxmemory_bytes=MAXMEMORY,
        admin_user=ADMIN,
        admin_password=PASSWORD,
        replicaof=replicaof,
        appendonly=appendonly,
    )
    argv = redis_engine.argv(binary, node_dir / redis_engine.CONFIG_FILE)
    return ProcessSpec(argv=argv, files={redis_engine.CONFIG_FILE: redis_engine.render_config(config)}), port


def start_redis(host: LocalHost, binary: str, key: NodeKey, **options: object) -> tuple[int, int]:
    spec, port = redis_spec(host, binary, key, **options)  # type: ignore[arg-type]
    pid = host.start(key, spec)
    wait_for(f"redis {key} to answer PING", lambda: answers_ping(port))
    return pid, port


def probe(port: int) -> redis_engine.RedisObservation | None:
    return asyncio.run(redis_engine.probe(BIND, port, user=ADMIN, password=PASSWORD))


# -- redis through the host ----------------------------------------------------------------------


def test_redis_node_serves_the_default_user(host: RecordingHost, redis_server: str) -> None:
    key = NodeKey("c1", "0001")
    pid, port = start_redis(host, redis_server, key)
    node_dir = host.node_dir(key)

    assert host.pid(key) == pid
    assert host.port_of(key) == port
    with app_client(port) as client:
        assert client.acl_whoami() == "default"
        assert client.set("k", "v")
        assert client.get("k") == "v"
        assert client.keys("*") == ["k"]
        assert "redis_version" in client.info()
        assert client.acl_cat()
        assert client.flushall()
        assert client.dbsize() == 0
        assert client.info("server")["process_id"] == pid

    assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((node_dir / "redis.conf").stat().st_mode) == 0o600
    assert (node_dir / "pid").read_text().strip() == str(pid)
    assert "Ready to accept connections" in (node_dir / "node.log").read_text()
    # Redis rewrites its process title; the config path (in the node dir) must survive in it.
    assert str(node_dir) in Path(f"/proc/{pid}/cmdline").read_text()
    # Its own session: a signal to the test's process group cannot reach it.
    assert os.getsid(pid) == pid


RESTRICTED = [
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("REPLICAOF", "NO", "ONE"),
    ("SLAVEOF", "NO", "ONE"),
    ("SHUTDOWN", "NOSAVE"),
    ("DEBUG", "SLEEP", "0"),
    ("SAVE",),
    ("BGSAVE",),
    ("BGREWRITEAOF",),
    ("ACL", "SETUSER", "x", "on"),
    ("ACL", "LIST"),
    ("FAILOVER",),
    ("MODULE", "LIST"),
]


def test_default_user_is_refused_what_elasticache_restricts(host: RecordingHost, redis_server: str) -> None:
    key = NodeKey("c1", "0001")
    _, port = start_redis(host, redis_server, key)
    with app_client(port) as client:
        for command in RESTRICTED:
            with pytest.raises(NoPermissionError):
                client.execute_command(*command)
        assert client.ping()  # still up: SHUTDOWN was refused
    with admin_client(port) as admin:
        assert admin.config_get("maxmemory") == {"maxmemory": str(MAXMEMORY)}
        assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
        assert admin.execute_command("DEBUG", "SLEEP", "0")
        assert admin.acl_whoami() == ADMIN
    assert asyncio.run(redis_engine.probe(BIND, port, user=ADMIN, password="wrong")) is None


def test_replica_syncs_and_admin_can_repoint_it(host: RecordingHost, redis_server: str) -> None:
    primary_key, replica_key = NodeKey("rg-0001", "0001"), NodeKey("rg-0002", "0001")
    _, primary_port = start_redis(host, redis_server, primary_key)
    with app_client(primary_port) as client:
        client.set("before-sync", "1")
    _, replica_port = start_redis(host, redis_server, replica_key, replicaof=(BIND, primary_port))

    def linked() -> redis_engine.RedisObservation | None:
        obs = probe(replica_port)
        return obs if obs is not None and obs.master_link_up else None

    obs = wait_for("the replica's master link", linked)
    assert (obs.role, obs.master_host, obs.master_port, obs.loading) == ("slave", BIND, primary_port, False)
    primary = probe(primary_port)
    assert primary is not None
    assert (primary.role, primary.connected_replicas, primary.master_link_up) == ("master", 1, False)
    assert primary.used_memory > 0

    with app_client(primary_port) as writer, app_client(replica_port) as reader:
        writer.set("after-sync", "2")
        assert wait_for("replication", lambda: reader.get("after-sync")) == "2"
        assert reader.get("before-sync") == "1"
        with pytest.raises(ReadOnlyError):
            reader.set("x", "y")

    asyncio.run(redis_engine.set_replicaof(BIND, replica_port, user=ADMIN, password=PASSWORD, primary=None))
    promoted = probe(replica_port)
    assert promoted is not None
    assert (promoted.role, promoted.master_link_up) == ("master", False)

    primary_addr = (BIND, primary_port)
    asyncio.run(redis_engine.set_replicaof(BIND, replica_port, user=ADMIN, password=PASSWORD, primary=primary_addr))
    wait_for("the replica to link again", linked)


def test_probe_of_nothing_is_none(host: RecordingHost) -> None:
    port = host.allocate_port(NodeKey("c1", "0001"), ())  # free: nobody listens there
    started = time.monotonic()
    assert probe(port) is None
    assert time.monotonic() - started < 1.5


def test_kill_9_then_start_again_on_the_same_port_and_data(host: RecordingHost, redis_server: str) -> None:
    key = NodeKey("c1", "0001")
    spec, port = redis_spec(host, redis_server, key, appendonly=True)
    pid = host.start(key, spec)
    wait_for("PING", lambda: answers_ping(port))
    with app_client(port) as client:
        client.set("durable", "yes")

    os.kill(pid, signal.SIGKILL)  # the PID the host gave us
    wait_for("the killed node to be seen as gone", lambda: host.pid(key) is None)
    assert not Path(f"/proc/{pid}").exists()  # reaped, not left a zombie

    again = host.start(key, spec)
    assert again != pid
    assert host.port_of(key) == port
    wait_for("PING after restart", lambda: answers_ping(port))
    with app_client(port) as client:
        assert client.get("durable") == "yes"  # AOF in the same data dir


def test_a_fresh_host_readopts_instead_of_duplicating(
    make_host: Callable[[], RecordingHost], redis_server: str
) -> None:
    first = make_host()
    key = NodeKey("c1", "0001")
    spec, port = redis_spec(first, redis_server, key)
    pid = first.start(key, spec)
    wait_for("PING", lambda: answers_ping(port))

    # As after a control-plane restart: nothing but the files under the root.
    second = make_host()
    assert second.nodes() == [key]
    assert second.port_of(key) == port
    assert second.allocate_port(key, {port}) == port  # a node keeps its port for life
    assert second.pid(key) == pid
    assert second.start(key, spec) == pid
    with app_client(port) as client:
        assert client.info("server")["process_id"] == pid

    second.stop(key)
    assert second.pid(key) is None
    assert first.pid(key) is None
    assert not Path(f"/proc/{pid}").exists()  # reaped by whoever stopped it


def test_a_node_spawned_but_never_recorded_is_adopted_not_duplicated(
    make_host: Callable[[], RecordingHost], redis_server: str
) -> None:
    first = make_host()
    key = NodeKey("c1", "0001")
    spec, port = redis_spec(first, redis_server, key)
    pid = first.start(key, spec)
    wait_for("PING", lambda: answers_ping(port))
    # As if the control plane died between spawning the node and writing its pidfile.
    (first.node_dir(key) / "pid").unlink()

    second = make_host()
    assert second.pid(key) is None
    assert not second.port_taken(key)  # the node's own process holds it: adopted, not waited out
    assert second.start(key, spec) == pid
    assert second.pid(key) == pid
    with app_client(port) as client:
        assert client.info("server")["process_id"] == pid
    second.stop(key)
    assert second.pid(key) is None


# A control plane in miniature: start one node through a LocalHost, print its PID, exit.
_START_AND_EXIT = """
import json, sys
from pathlib import Path
from cachefleet.hosts.base import ProcessSpec
from cachefleet.model.nodes import NodeKey
from cachefleet.hosts.local import LocalHost
root, cluster, node, argv, files, low, high = json.loads(sys.argv[1])
host = LocalHost(Path(root), (low, high))
print(host.start(NodeKey(cluster, node), ProcessSpec(argv=tuple(argv), files=files)))
"""


def test_nodes_outlive_the_control_plane_that_started_them(
    host: RecordingHost, redis_server: str, tmp_path: Path, started: list[int]
) -> None:
    key = NodeKey("c1", "0001")
    spec, port = redis_spec(host, redis_server, key)
    root = str(tmp_path / "nodes")
    payload = [root, key.cluster_id, key.node_id, list(spec.argv), dict(spec.files), *PORT_RANGE]
    done = subprocess.run(
        [sys.executable, "-c", _START_AND_EXIT, json.dumps(payload)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(done.stdout)
    started.append(pid)

    wait_for("PING from the orphaned node", lambda: answers_ping(port))
    assert _parent_of(pid) != os.getpid()  # not our child: its parent has exited
    assert host.pid(key) == pid  # re-adopted from the pidfile alone
    assert host.start(key, spec) == pid
    host.stop(key)
    assert host.pid(key) is None
    assert not answers_ping(port)


def _parent_of(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rindex(b")") + 2 :].split()[1])


def test_a_reused_pid_is_never_taken_for_the_node(host: RecordingHost, started: list[int]) -> None:
    key = NodeKey("c1", "0001")
    host.allocate_port(key, ())  # creates the node dir
    pidfile = host.node_dir(key) / "pid"

    pidfile.write_text(f"{os.getpid()}\n")
    assert host.pid(key) is None

    # An unrelated live process of ours whose PID landed in the pidfile: not ours to stop.
    other = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, start_new_session=True)
    started.append(other.pid)
    try:
        pidfile.write_text(f"{other.pid}\n")
        assert host.pid(key) is None
        host.stop(key, timeout=0.5)
        assert other.poll() is None

        # start() does not mistake it for a running node either.
        sleeper = (sys.executable, "-c", "import time; time.sleep(60)", str(host.node_dir(key)))
        spec = ProcessSpec(argv=sleeper)
        pid = host.start(key, spec)
        assert pid != other.pid
        assert host.pid(key) == pid
    finally:
        other.kill()
        other.wait()


def test_stop_escalates_to_sigkill(host: RecordingHost) -> None:
    key = NodeKey("c1", "0001")
    ignore_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('READY'.lower(), flush=True); time.sleep(60)"
    )
    node_dir = host.node_dir(key)
    pid = host.start(key, ProcessSpec(argv=(sys.executable, "-c", ignore_term, str(node_dir))))
    # A line of its own: the log also holds the argv, which contains the script's text.
    wait_for("the child to ignore SIGTERM", lambda: "\nready\n" in (node_dir / "node.log").read_text())

    begun = time.monotonic()
    host.stop(key, timeout=0.3)
    assert 0.3 <= time.monotonic() - begun < 3
    assert host.pid(key) is None
    assert not Path(f"/proc/{pid}").exists()
    host.stop(key)  # no-op once stopped


def test_remove_stops_and_deletes(host: RecordingHost, redis_server: str) -> None:
    a, b, other = NodeKey("c1", "0001"), NodeKey("c1", "0002"), NodeKey("c2", "0001")
    pid_a, port_a = start_redis(host, redis_server, a)
    start_redis(host, redis_server, b)
    start_redis(host, redis_server, other)
    assert host.nodes() == [a, b, other]

    host.remove(a)
    assert not _alive(pid_a)
    assert not answers_ping(port_a)
    assert not host.node_dir(a).exists()
    assert host.node_dir(b).parent.is_dir()  # c1 still has 0002
    assert host.nodes() == [b, other]

    host.remove(b)
    assert not host.node_dir(b).parent.exists()  # c1 is gone with its last node
    assert host.nodes() == [other]
    assert host.pid(other) is not None
    host.remove(b)  # removing what is gone is a no-op


# -- memcached -----------------------------------------------------------------------------------


def test_memcached_start_probe_stop(host: RecordingHost, memcached_binary: EngineBinary) -> None:
    key = NodeKey("mc1", "0001")
    port = host.allocate_port(key, ())
    argv = memcached.argv(memcached_binary.path, port=port, bind=BIND, memory_mb=64)
    pid = host.start(key, ProcessSpec(argv=argv))

    def probed() -> memcached.MemcachedObservation | None:
        return asyncio.run(memcached.probe(BIND, port))

    obs = wait_for("memcached to answer", probed)
    assert (obs.version, obs.pid, obs.limit_maxbytes, obs.curr_items) == (
        memcached_binary.version,
        pid,
        64 << 20,
        0,
    )
    # memcached's cmdline does not name the node dir; its working directory does.
    assert host.pid(key) == pid
    with socket.create_connection((BIND, port), timeout=2) as conn:
        conn.sendall(b"set k 0 0 1\r\nv\r\n")
        assert conn.recv(64) == b"STORED\r\n"
    after = probed()
    assert after is not None
    assert after.curr_items == 1

    host.stop(key)
    assert host.pid(key) is None
    assert probed() is None


def test_memcached_argv() -> None:
    argv = memcached.argv("/usr/bin/memcached", port=21001, bind=BIND, memory_mb=512, extra=("-v",))
    assert " ".join(argv[:11]) == f"/usr/bin/memcached -p 21001 -l {BIND} -m 512 -U 0 -c 4096"
    assert argv[-1] == "-v"
    assert ("-u" in argv) == (os.geteuid() == 0)


def test_discover_finds_the_installed_engines(engines: dict[str, EngineBinary]) -> None:
    assert "redis" in engines
    redis_binary = engines["redis"]
    assert os.access(redis_binary.path, os.X_OK)
    assert major_minor(redis_binary.version) == ".".join(redis_binary.version.split(".")[:2])
    assert major_minor("7.0.15") == "7.0"
    if "memcached" in engines:
        assert engines["memcached"].version.startswith("1.")
    assert discover(search_path=str(Path(redis_binary.path).parent / "no-such-dir"), system_dirs=()) == []


# -- ports ---------------------------------------------------------------------------------------


def test_allocate_port_skips_taken_busy_and_persisted(tmp_path: Path) -> None:
    with socket.socket() as busy, socket.socket() as scratch:
        busy.bind((BIND, 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        scratch.bind((BIND, 0))
        free_port = scratch.getsockname()[1]
        scratch.close()  # now free (nobody else should grab it in this instant)

        low, high = min(busy_port, free_port), max(busy_port, free_port)
        taken = set(range(low, high + 1)) - {busy_port, free_port}
        host = LocalHost(tmp_path / "nodes", (low, high), BIND)
        a, b = NodeKey("c1", "0001"), NodeKey("c1", "0002")
        assert host.allocate_port(a, taken) == free_port
        assert (host.node_dir(a) / "port").read_text().strip() == str(free_port)
        assert host.allocate_port(a, ()) == free_port  # persisted, stable

        # Only the busy port and a's port (persisted, though nothing runs there) remain: no room.
        with pytest.raises(InsufficientCacheClusterCapacity):
            host.allocate_port(b, taken)
        assert host.port_of(b) is None


def test_allocate_port_over_a_wide_range(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "nodes", PORT_RANGE, BIND)
    rng = secrets.SystemRandom()
    taken = set(rng.sample(range(PORT_RANGE[0], PORT_RANGE[1] + 1), 5000))
    ports = [host.allocate_port(NodeKey("c1", f"{i:04d}"), taken) for i in range(1, 21)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert PORT_RANGE[0] <= port <= PORT_RANGE[1]
        assert port not in taken
        with socket.socket() as check:
            check.bind((BIND, port))  # free when chosen, and still free


def test_allocate_ports_for_a_group_reserves_them_until_removed(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "nodes", PORT_RANGE, BIND)
    keys = [NodeKey("g-001", "0001"), NodeKey("g-002", "0001"), NodeKey("rg.g", "endpoint")]
    wanted = [PortRequest(keys[0]), PortRequest(keys[1]), PortRequest(keys[2]), PortRequest(keys[2], "reader")]
    ports = host.allocate_ports(wanted)
    assert len(set(ports)) == len(ports)
    assert [host.port_of(w.node, w.slot) for w in wanted] == ports
    assert host.allocate_ports(wanted) == ports  # persisted, stable
    everything_else = set(range(PORT_RANGE[0], PORT_RANGE[1] + 1)) - set(ports)

    # A control plane started afresh on the same root reads from disk what is reserved.
    again = LocalHost(tmp_path / "nodes", PORT_RANGE, BIND)
    with pytest.raises(InsufficientCacheClusterCapacity):
        again.allocate_port(NodeKey("g-003", "0001"), everything_else)

    # A removed node's port is free again for this instance, which does not rescan the disk.
    again.remove(keys[1])
    assert again.allocate_port(NodeKey("g-003", "0001"), everything_else | {ports[0], ports[2]}) == ports[1]


def test_a_node_whose_directory_is_lost_gets_its_recorded_port_back(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "nodes", PORT_RANGE, BIND)
    lost, other = NodeKey("g-001", "0001"), NodeKey("g-002", "0001")
    port = host.allocate_port(lost, ())
    shutil.rmtree(host.node_dir(lost))
    assert host.port_of(lost) is None
    # Held by some other process at the moment does not matter: the node keeps its port, and waits.
    with socket.socket() as squatter:
        squatter.bind((BIND, port))
        squatter.listen()
        assert host.allocate_port(lost, {port}, prefer=port) == port
        assert host.port_taken(lost)
    assert not host.port_taken(lost)  # free again
    assert (host.node_dir(lost) / "port").read_text().strip() == str(port)

    # A control plane started afresh, where another node of this host holds the port asked for:
    # that node keeps it, and the lost one gets a new port.
    shutil.rmtree(host.node_dir(lost))
    held = host.allocate_port(other, ())
    again = LocalHost(tmp_path / "nodes", PORT_RANGE, BIND)
    assert again.allocate_port(lost, (), prefer=held) != held
    assert again.port_of(other) == held


# -- named port slots, scripts, read_file, reload ----------------------------------------------------


def test_port_slots_are_persisted_apart_and_reserved_for_everyone(tmp_path: Path) -> None:
    with socket.socket() as a, socket.socket() as b, socket.socket() as c:
        for s in (a, b, c):
            s.bind((BIND, 0))
        free = sorted(s.getsockname()[1] for s in (a, b, c))
    low, high = free[0], free[-1]
    taken = set(range(low, high + 1)) - set(free)
    host = LocalHost(tmp_path / "nodes", (low, high), BIND)
    endpoint, node = NodeKey("ep", "0001"), NodeKey("c1", "0001")

    primary = host.allocate_port(endpoint, taken)
    reader = host.allocate_port(endpoint, taken, slot="reader")
    assert primary != reader
    assert (host.port_of(endpoint), host.port_of(endpoint, "reader")) == (primary, reader)
    assert (host.node_dir(endpoint) / "port-reader").read_text().strip() == str(reader)
    assert host.allocate_port(endpoint, (), slot="reader") == reader  # stable
    assert host.port_of(endpoint, "other") is None

    # The node gets the one port left: both of the endpoint's slots are reserved.
    (third,) = set(free) - {primary, reader}
    assert host.allocate_port(node, taken) == third
    with pytest.raises(InsufficientCacheClusterCapacity):
        host.allocate_port(node, taken, slot="extra")
    with pytest.raises(ValueError, match="slot"):
        host.port_of(node, "../pid")


def test_scripts_are_executable_files_private_and_names_checked(host: RecordingHost) -> None:
    key = NodeKey("c1", "0001")
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)", str(host.node_dir(key)))
    spec = ProcessSpec(argv=sleeper, files={"a.conf": "x\n"}, scripts={"run.py": "#!/bin/sh\nexit 0\n"})
    host.start(key, spec)
    node_dir = host.node_dir(key)
    assert stat.S_IMODE((node_dir / "a.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((node_dir / "run.py").stat().st_mode) == 0o700
    assert subprocess.run([node_dir / "run.py"], check=False, timeout=10).returncode == 0
    assert host.read_file(key, "a.conf") == "x\n"
    assert host.read_file(key, "missing.conf") is None
    assert host.read_file(NodeKey("c9", "0001"), "a.conf") is None  # no node dir at all
    with pytest.raises(ValueError, match="invalid node file name"):
        host.read_file(key, "../0001/a.conf")
    for bad in (
        ProcessSpec(argv=sleeper, scripts={"pid": ""}),
        ProcessSpec(argv=sleeper, files={"port-reader": ""}),
        ProcessSpec(argv=sleeper, files={"x": ""}, scripts={"x": ""}),
    ):
        with pytest.raises(ValueError, match="name"):
            host.reload(key, bad, signal.SIGHUP)


# Prints the config file whenever it gets SIGHUP (after a "ready" line once the handler is set).
_RELOADABLE = """
import signal, sys, time
from pathlib import Path
conf = Path(sys.argv[1])
def show(*_):
    print("conf=" + conf.read_text().strip(), flush=True)
signal.signal(signal.SIGHUP, show)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_reload_writes_the_files_then_signals_the_node(host: RecordingHost) -> None:
    key = NodeKey("c1", "0001")
    node_dir = host.node_dir(key)
    log = node_dir / "node.log"

    def spec(text: str) -> ProcessSpec:
        argv = (sys.executable, "-c", _RELOADABLE, str(node_dir / "app.conf"))
        return ProcessSpec(argv=argv, files={"app.conf": text}, scripts={"hook": "#!/bin/sh\n"})

    # Not running: the files are written, nothing is started.
    host.reload(key, spec("zero"), signal.SIGHUP)
    assert host.pid(key) is None
    assert host.read_file(key, "app.conf") == "zero"

    pid = host.start(key, spec("one"))
    wait_for("the handler", lambda: "\nready\n" in log.read_text())
    host.reload(key, spec("two"), signal.SIGHUP)
    wait_for("the reload", lambda: "\nconf=two\n" in log.read_text())
    assert host.pid(key) == pid  # same process, signalled, not restarted
    assert "conf=one" not in log.read_text()
    assert stat.S_IMODE((node_dir / "hook").stat().st_mode) == 0o700
