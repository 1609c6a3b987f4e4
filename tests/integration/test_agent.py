"""``cachefleet agent`` with real redis-server and redis-sentinel processes, driven through RemoteHost.

One agent serves the module's tests that need no agent of their own (each uses its own node keys);
the tests of the agent's own life (a node killed while no control plane exists, the agent restarted)
start agents of their own. Every process is cleaned up by PID (``tests.support.agent``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
import signal
import ssl
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.support.agent import AgentProcess, Certificates
from tests.support.server import is_alive, wait_for, wait_until

from cachefleet.agent import sentinels
from cachefleet.agent.restart import STABLE_RUN, Answer, Names, Unreachable
from cachefleet.engines.installed import find_binary
from cachefleet.engines.redis import process_lines
from cachefleet.engines.resp import ClientTls
from cachefleet.engines.sentinel import SentinelConfig, SentinelTls
from cachefleet.engines.sentinel import my_id as sentinel_my_id
from cachefleet.engines.sentinel import render_config as render_sentinel
from cachefleet.hosts import agent_api as api
from cachefleet.hosts.agent_api import Event, EventKind
from cachefleet.hosts.base import ProcessSpec, RestartPolicy
from cachefleet.hosts.remote import RemoteHost, client_context
from cachefleet.model.errors import Fatal, Retry
from cachefleet.model.nodes import NodeKey, node_key, sentinel_keys
from cachefleet.tls import certs as certs_module

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.1"
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("agent"), certs)
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def host(agent: AgentProcess) -> Iterator[RemoteHost]:
    remote = agent.host(cached_files=("parameters.json",))
    remote.follow()
    try:
        yield remote
    finally:
        remote.close()


@pytest.fixture
def own_agent(tmp_path: Path, certs: Certificates) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path / "agent", certs)
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


def redis_binary(name: str = "redis-server") -> str:
    found = find_binary(name)
    assert found is not None, f"{name} is not installed (Debian package redis-server / redis-sentinel)"
    return found


def redis_spec(
    host: RemoteHost, key: NodeKey, port: int, *extra: str, restart: RestartPolicy | None = None
) -> ProcessSpec:
    node_dir = host.node_dir(key)
    lines = [*process_lines(ADDRESS, port, node_dir), 'save ""', "repl-diskless-sync-delay 0", *extra]
    conf = "\n".join(lines) + "\n"
    argv = (redis_binary(), str(node_dir / "redis.conf"))
    return ProcessSpec(argv=argv, files={"redis.conf": conf, "parameters.json": "{}"}, restart=restart)


def start_redis(host: RemoteHost, key: NodeKey, *extra: str, restart: RestartPolicy | None = None) -> tuple[int, int]:
    port = host.allocate_port(key, ())
    pid = host.start(key, redis_spec(host, key, port, *extra, restart=restart))
    wait_for(f"{key} to answer", lambda: ping(port))
    return pid, port


def client(port: int) -> redis.Redis:
    return redis.Redis(host=ADDRESS, port=port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=None)


def ping(port: int) -> bool:
    try:
        with client(port) as connection:
            return bool(connection.ping())
    except redis.exceptions.RedisError:
        return False


def role(port: int) -> dict[str, Any] | None:
    try:
        with client(port) as connection:
            return dict(connection.info("replication"))
    except redis.exceptions.RedisError:
        return None


def pidfile(agent: AgentProcess, key: NodeKey) -> int | None:
    try:
        return int((agent.data_dir / "nodes" / key.cluster_id / key.node_id / "pid").read_text())
    except (OSError, ValueError):
        return None


# -- the Host operations through RemoteHost ----------------------------------------------------------


def test_nodes_start_serve_stop_and_go_through_remote_host(agent: AgentProcess, host: RemoteHost) -> None:
    key = node_key("ops-001", "0001")
    info = host.info()
    assert (info["zone"], info["address"], info["api_versions"]) == ("us-east-1a", ADDRESS, ["v1"])
    assert {"capacity", "usage", "host_id", "agent_version"} <= set(info)
    pid, port = start_redis(host, key)
    assert host.pid(key) == pid == pidfile(agent, key)
    assert host.port_of(key) == port
    assert key in host.nodes()
    assert host.read_file(key, "parameters.json") == "{}"
    assert host.read_file(key, "no-such-file") is None
    assert host.port_taken(key) is False
    # Starting a running node returns its PID and starts nothing.
    assert host.start(key, redis_spec(host, key, port)) == pid
    assert agent.node_processes().count(pid) == 1
    # Reload writes the files and signals (Redis ignores SIGHUP: still the same process).
    spec = redis_spec(host, key, port)
    host.reload(key, ProcessSpec(spec.argv, {**spec.files, "parameters.json": '{"v": 2}'}), signal.SIGHUP)
    assert host.read_file(key, "parameters.json") == '{"v": 2}'
    assert host.pid(key) == pid
    # Stop: gone, and not restarted by the agent.
    host.stop(key)
    assert host.pid(key) is None
    assert not is_alive(pid)
    time.sleep(0.3)
    assert pidfile(agent, key) is None
    assert not ping(port)
    # Start again, on the same port; then remove: the directory goes too.
    pid, _ = start_redis(host, key)
    host.remove(key)
    assert not is_alive(pid)
    assert key not in host.nodes()
    assert not (agent.data_dir / "nodes" / key.cluster_id).exists()


def test_a_bad_argument_is_refused_and_changes_nothing(agent: AgentProcess, host: RemoteHost) -> None:
    harmless = ProcessSpec(argv=("/bin/true",))
    with pytest.raises(ValueError, match="invalid"):
        host.start(node_key("-bad", "0001"), harmless)
    with pytest.raises(ValueError, match="invalid node file name 'pid'"):
        host.start(node_key("bad-001", "0001"), ProcessSpec(argv=harmless.argv, files={"pid": "1"}))
    verify = client_context(agent.certs.ca, agent.certs.control_plane)
    with httpx.Client(base_url=agent.url, verify=verify) as raw:
        body = {"spec": {"argv": ["/bin/true"]}, "signal": "SIGNOPE"}
        response = raw.post(api.node_path(node_key("bad-001", "0001"), "reload"), json=body)
        assert response.status_code == 400
        assert response.json()["error"] == {"code": "InvalidArgument", "message": "unknown signal 'SIGNOPE'"}
        response = raw.post("/v1/ports", content=b"{not json")
        assert (response.status_code, response.json()["error"]["code"]) == (400, "InvalidArgument")
    assert not (agent.data_dir / "nodes" / "bad-001").exists()


# -- who may command it -------------------------------------------------------------------------------


def test_only_the_control_plane_may_command_the_agent(agent: AgentProcess, certs: Certificates) -> None:
    target = node_key("intruder-001", "0001")
    start = api.node_path(target, "start")
    body = {"argv": [redis_binary(), "--port", "0"]}
    # No client certificate: the TLS handshake fails, no HTTP exchange happens.
    anonymous = ssl.create_default_context(cafile=str(certs.ca))
    with httpx.Client(base_url=agent.url, verify=anonymous) as raw, pytest.raises(httpx.TransportError):
        raw.post(start, json=body)
    # A certificate from another CA: refused in the handshake too. The agent closes the connection
    # without a TLS alert, so the control plane cannot tell it from a cut connection: Retry, saying so.
    foreign_tls = client_context(certs.ca, certs.foreign)
    with httpx.Client(base_url=agent.url, verify=foreign_tls) as raw, pytest.raises(httpx.TransportError):
        raw.post(start, json=body)
    foreign = agent.host(cert=certs.foreign)
    with pytest.raises(Retry, match="does not accept this control plane's certificate"):
        foreign.start(target, ProcessSpec(argv=tuple(body["argv"])))
    foreign.close()
    # Certificates of this CA but not the control plane's: 403 with a JSON error naming why.
    for cert, why in ((certs.other_role, "another role"), (certs.other_name, "not the control plane")):
        with httpx.Client(base_url=agent.url, verify=client_context(certs.ca, cert)) as raw:
            response = raw.post(start, json=body)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "Forbidden"
            assert why in response.json()["error"]["message"]
        remote = agent.host(cert=cert)
        with pytest.raises(Fatal, match="refused the control plane"):
            remote.info()
        remote.close()
    assert not (agent.data_dir / "nodes" / target.cluster_id).exists()


def test_the_api_is_versioned(agent: AgentProcess, certs: Certificates) -> None:
    with httpx.Client(base_url=agent.url, verify=client_context(certs.ca, certs.control_plane)) as raw:
        future = raw.get("/v2/info")
        assert future.status_code == 404
        assert future.json()["error"] == {
            "code": "UnknownVersion",
            "message": "this agent speaks API versions v1",
            "versions": ["v1"],
        }
        assert raw.get("/info").json()["error"]["code"] == "UnknownVersion"
        missing = raw.get("/v1/no-such-route")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NotFound")
        wrong_method = raw.delete("/v1/info")
        assert wrong_method.status_code == 405
        assert "error" in wrong_method.json()


# -- supervision without a control plane --------------------------------------------------------------


def test_a_killed_node_is_restarted_by_the_agent_alone(own_agent: AgentProcess) -> None:
    """kill -9 of a node, with no control plane anywhere: the agent brings it back at once.

    Prints kill -> serving again for each trial (a measurement, not an assertion)."""
    key = node_key("lonely-001", "0001")
    setup = own_agent.host()
    pid, port = start_redis(setup, key)
    setup.close()  # from here on nobody but the agent looks after the node
    figures = []
    for _ in range(3):
        own_agent.kill_node(pid)
        killed = time.monotonic()
        wait_until(lambda: ping(port), 10, interval=0.005, what="the node to serve again")
        figures.append(time.monotonic() - killed)
        # The new process may answer before the agent's thread has written its pidfile.
        wait_for("the new pidfile", lambda old=pid: pidfile(own_agent, key) not in (None, old))
        new_pid = pidfile(own_agent, key)
        assert own_agent.node_processes() == [new_pid]
        pid = new_pid
        time.sleep(STABLE_RUN + 0.1)  # each kill hits a node that has served a while: no backoff
    print(
        f"\nagent restart, kill -9 -> PING answered: median {statistics.median(figures) * 1000:.0f} ms, "
        f"max {max(figures) * 1000:.0f} ms over {len(figures)} kills (1 s target; shared machine)"
    )


def test_a_node_that_keeps_failing_to_start_is_restarted_less_and_less_often(own_agent: AgentProcess) -> None:
    key = node_key("broken-001", "0001")
    remote = own_agent.host()
    events: list[Event] = []
    remote.add_listener(events.append)
    remote.follow()
    try:
        remote.start(key, ProcessSpec(argv=("/bin/sh", "-c", "exit 1")))
        time.sleep(2.5)
    finally:
        remote.close()
    restarts = [e for e in events if e.kind == EventKind.RESTARTED]
    backoffs = [e.fields["reason"] for e in events if e.kind == EventKind.WAITING]
    # Immediately, then after 0.5 s and 1 s: a handful in 2.5 s, not a spin.
    assert 2 <= len(restarts) <= 5, [e.kind for e in events]
    assert backoffs[:2] == [
        "it exited soon after its last start; backoff 0.5 s",
        "it exited soon after its last start; backoff 1 s",
    ]


def test_an_agent_restart_adopts_running_nodes_without_a_duplicate(own_agent: AgentProcess) -> None:
    key = node_key("adopt-001", "0001")
    setup = own_agent.host()
    pid, port = start_redis(setup, key)
    setup.close()
    assert own_agent.stop() == 0
    assert ping(port), "the node outlives its agent"
    own_agent.start()
    remote = own_agent.host()
    events: list[Event] = []
    remote.add_listener(events.append)
    remote.follow()
    try:
        assert remote.pid(key) == pid
        assert own_agent.node_processes() == [pid]
        # The adopted node is not the new agent's child; its exit is still seen at once (pidfd).
        own_agent.kill_node(pid)
        killed = time.monotonic()
        wait_until(lambda: ping(port), 10, interval=0.005, what="the adopted node to serve again")
        print(f"\nadopted node, kill -9 -> PING answered: {(time.monotonic() - killed) * 1000:.0f} ms")
        new_pid = wait_for("its restart event", lambda: remote.pid(key) not in (None, pid) and remote.pid(key))
        assert own_agent.node_processes() == [new_pid]
        kinds = [e.kind for e in events if e.node == key]
        assert kinds[:2] == [EventKind.EXITED, EventKind.RESTARTED], kinds
    finally:
        remote.close()


def test_one_agent_per_data_dir(own_agent: AgentProcess, certs: Certificates) -> None:
    second = AgentProcess(own_agent.data_dir, certs)
    with pytest.raises(RuntimeError, match="another agent already runs"):
        second.start()


def test_a_node_stopped_on_request_stays_stopped_across_an_agent_restart(own_agent: AgentProcess) -> None:
    running, stopped = node_key("keep-001", "0001"), node_key("keep-002", "0001")
    setup = own_agent.host()
    start_redis(setup, running)
    _, port = start_redis(setup, stopped)
    setup.stop(stopped)
    setup.close()
    own_agent.cleanup()  # kill -9 of the agent and of every node
    own_agent.start()
    remote = own_agent.host()
    try:
        # The one that should run is started again from its record; the stopped one is left alone.
        wait_for("the wanted node to run again", lambda: remote.pid(running) is not None)
        time.sleep(0.3)
        assert remote.pid(stopped) is None
        assert not ping(port)
    finally:
        remote.close()


# -- role-safe restart with real Sentinels ---------------------------------------------------------


def sentinel_spec(host: RemoteHost, key: NodeKey, port: int, group: str, primary: int) -> ProcessSpec:
    node_dir = host.node_dir(key)
    lines = [
        *process_lines(ADDRESS, port, node_dir),
        f"sentinel monitor {group} {ADDRESS} {primary} 2",
        f"sentinel down-after-milliseconds {group} 1000",
        f"sentinel failover-timeout {group} 10000",
        f"sentinel parallel-syncs {group} 1",
    ]
    argv = (redis_binary("redis-sentinel"), str(node_dir / "sentinel.conf"))
    return ProcessSpec(argv=argv, files={"sentinel.conf": "\n".join(lines) + "\n"})


def sentinel_master(port: int, group: str) -> dict[str, Any]:
    try:
        with client(port) as connection:
            return dict(connection.sentinel_master(group))
    except redis.exceptions.RedisError:
        return {}


def test_a_killed_primary_comes_back_as_a_replica_of_the_promoted_node(host: RemoteHost) -> None:
    group = "safe"
    members = [node_key(f"safe-00{i}", "0001") for i in (1, 2, 3)]
    sentinels = sentinel_keys(group)
    ports = [host.allocate_port(key, ()) for key in members]
    sentinel_ports = [host.allocate_port(key, ()) for key in sentinels]
    policy = RestartPolicy(group, tuple((ADDRESS, p) for p in sentinel_ports), ADDRESS, down_after_ms=1000)
    for i, (key, port) in enumerate(zip(members, ports, strict=True)):
        extra = () if i == 0 else (f"replicaof {ADDRESS} {ports[0]}",)
        host.start(key, redis_spec(host, key, port, *extra, restart=policy))
    for port in ports[1:]:
        wait_for("replicas in sync", lambda p=port: (role(p) or {}).get("master_link_status") == "up")
    for key, port in zip(sentinels, sentinel_ports, strict=True):
        host.start(key, sentinel_spec(host, key, port, group, ports[0]))

    def watching(port: int) -> bool:
        master = sentinel_master(port, group)
        return master.get("num-slaves") == 2 and master.get("num-other-sentinels") == 2

    for port in sentinel_ports:
        wait_for("Sentinels to know the replicas and each other", lambda p=port: watching(p), timeout=20)
    with client(ports[0]) as primary:
        primary.set("before", "kill")
        primary.execute_command("WAIT", 2, 2000)

    events: list[Event] = []
    host.add_listener(events.append)
    old = host.pid(members[0])
    assert old is not None
    roles_seen: list[str] = []
    stop_sampling = threading.Event()

    def sample() -> None:  # the old primary's role every 20 ms, from the kill on
        while not stop_sampling.is_set():
            seen = role(ports[0])
            if seen is not None:
                roles_seen.append(str(seen["role"]))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    sampler.start()
    try:

        def promoted() -> int | None:
            for port in ports[1:]:
                if (role(port) or {}).get("role") == "master":
                    return port
            return None

        new_primary = wait_for("Sentinel to promote a replica", promoted, timeout=15)
        wait_for(
            "the old primary to serve as a replica of the promoted node",
            lambda: (role(ports[0]) or {}).get("master_link_status") == "up",
            timeout=15,
        )
        back = time.monotonic() - killed
    finally:
        stop_sampling.set()
        sampler.join()
    after = role(ports[0]) or {}
    assert (after["role"], after["master_port"]) == ("slave", new_primary)
    assert "master" not in roles_seen, f"the old primary served as a master: {roles_seen}"
    with client(ports[0]) as old_primary:
        assert old_primary.get("before") == b"kill"
    mine = [e for e in events if e.node == members[0]]
    restarted = [e for e in mine if e.kind == EventKind.RESTARTED]
    assert restarted, mine
    assert restarted[0].fields["replicaof"] == f"{ADDRESS}:{new_primary}", mine
    assert any(e.kind == EventKind.WAITING for e in mine), mine
    print(f"\nrole-safe restart: killed primary back as a synced replica {back:.2f} s after the kill")
    # A killed replica is not kept waiting: the Sentinels name another node at once.
    replica = members[1] if ports[1] != new_primary else members[2]
    replica_port = ports[members.index(replica)]
    replica_pid = host.pid(replica)
    assert replica_pid is not None
    os.kill(replica_pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for("the replica to be back in sync", lambda: (role(replica_port) or {}).get("master_link_status") == "up")
    print(f"killed replica back in sync {time.monotonic() - killed:.2f} s after the kill")
    assert (role(replica_port) or {})["master_port"] == new_primary
    for key in [*members, *sentinels]:
        host.remove(key)


def test_the_agent_asks_tls_only_sentinels_with_its_own_certificate(
    agent: AgentProcess, host: RemoteHost, tmp_path: Path
) -> None:
    """A Sentinel that speaks only TLS and wants a password, started through the agent, answers the
    agent's question (asked as the agent asks it: its CA, its certificate); asked wrongly, it says
    nothing, which never licenses a restart as it was."""
    key = sentinel_keys("tlsgroup")[0]
    port = host.allocate_port(key, ())
    node_dir = host.node_dir(key)
    now = dt.datetime.now(dt.UTC)
    authority = certs_module.load_authority(agent.certs.ca.read_bytes(), agent.certs.ca_key.read_bytes())
    identity = certs_module.Identity("sentinel", certs_module.Role.SENTINEL, ips=(ADDRESS,))
    host.put_file(key, "sentinel.pem", _written(tmp_path / "s.pem", certs_module.issue(authority, identity, now, DAY)))
    host.put_file(key, "ca.pem", agent.certs.ca)
    config = SentinelConfig(
        port=port,
        bind=ADDRESS,
        data_dir=node_dir,
        master_name="tlsgroup",
        primary=(ADDRESS, 7),
        quorum=1,
        admin_user="cachefleet-admin",
        admin_password="node-secret",
        my_id=sentinel_my_id("tlsgroup/1"),
        password="sentinel-secret",
        tls=SentinelTls(cert_file=node_dir / "sentinel.pem", ca_file=node_dir / "ca.pem"),
    )
    argv = (redis_binary("redis-sentinel"), str(node_dir / "sentinel.conf"))
    host.start(key, ProcessSpec(argv=argv, files={"sentinel.conf": render_sentinel(config)}))
    agent_tls = ClientTls(agent.certs.ca, agent.certs.agent)
    policy = RestartPolicy("tlsgroup", ((ADDRESS, port),), ADDRESS, password="sentinel-secret", tls=True)

    def answer(policy: RestartPolicy, tls: ClientTls | None = agent_tls) -> Answer:
        (found,) = asyncio.run(sentinels.ask(policy, tls=tls))
        return found

    wait_for("the Sentinel to answer over TLS", lambda: answer(policy) == Names((ADDRESS, 7)))
    assert answer(dataclasses.replace(policy, password="wrong")) == Unreachable()
    assert answer(dataclasses.replace(policy, tls=False)) == Unreachable()
    host.remove(key)


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- node files, streamed ---------------------------------------------------------------------------


def test_an_rdb_streams_out_and_back_with_its_digest(agent: AgentProcess, host: RemoteHost, tmp_path: Path) -> None:
    source, target = node_key("rdb-001", "0001"), node_key("rdb-002", "0001")
    _, port = start_redis(host, source)
    with client(port) as connection:
        pipe = connection.pipeline(transaction=False)
        for i in range(20_000):
            pipe.set(f"key:{i}", f"value:{i}" * 8)
        pipe.execute()
        connection.save()
    on_agent = agent.data_dir / "nodes" / source.cluster_id / source.node_id / "dump.rdb"
    out = tmp_path / "copy.rdb"
    digest = host.fetch_file(source, "dump.rdb", out)
    assert digest.sha256 == hashlib.sha256(on_agent.read_bytes()).hexdigest()
    assert digest.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest.size == out.stat().st_size > 100_000
    assert out.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError):
        host.fetch_file(source, "no-such.rdb", tmp_path / "x")

    # Back in, as the seed of a node that has not started yet: it serves the same data.
    assert host.put_file(target, "dump.rdb", out) == digest
    _, target_port = start_redis(host, target)
    with client(target_port) as connection:
        assert connection.dbsize() == 20_000
        assert connection.get("key:19999") == b"value:19999" * 8

    # An upload whose bytes do not match its digest is refused and replaces nothing.
    landed = agent.data_dir / "nodes" / target.cluster_id / target.node_id / "dump.rdb"
    before = landed.read_bytes()
    with httpx.Client(base_url=agent.url, verify=client_context(agent.certs.ca, agent.certs.control_plane)) as raw:
        response = raw.put(
            api.node_path(target, "files", "dump.rdb"),
            content=b"not an rdb",
            headers={api.DIGEST_HEADER: api.digest_header(hashlib.sha256(b"something else").hexdigest())},
        )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "DigestMismatch")
    assert landed.read_bytes() == before
    assert not [p for p in landed.parent.iterdir() if ".upload-" in p.name]
    host.remove(source)
    host.remove(target)
