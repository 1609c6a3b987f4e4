"""Multi-AZ automatic failover: Sentinel promotes, the endpoints follow, the old primary heals as a replica."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.integration.conftest import FAST_WAIT
from tests.support.pinger import Pinger
from tests.support.server import ServerProcess, is_alive, wait_until

from cachefleet.engines import haproxy

pytestmark = pytest.mark.integration


def _group(client: Any, group_id: str) -> dict[str, Any]:
    return dict(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0])


def _roles(client: Any, group_id: str) -> dict[str, str]:
    members = _group(client, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    return {m["CacheClusterId"]: m.get("CurrentRole", "") for m in members}


def _primary_of(client: Any, group_id: str) -> str:
    return next(m for m, role in _roles(client, group_id).items() if role == "primary")


def _create(client: Any, group_id: str, nodes: int = 3, **extra: Any) -> dict[str, Any]:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="ha",
        NumCacheClusters=nodes,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        **extra,
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)
    return _group(client, group_id)


def _connect(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


@dataclass
class Writer:
    """A bounded write loop through one address: counts what was acknowledged and what failed."""

    port: int
    prefix: str
    acked: list[str] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection = _connect(self.port)
        deadline = time.monotonic() + 60
        i = 0
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                key = f"{self.prefix}:{i}"
                try:
                    connection.set(key, i)
                    self.acked.append(key)
                    i += 1
                except redis.exceptions.RedisError:
                    self.errors += 1
                    time.sleep(0.01)
        finally:
            connection.close()

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)

    def acked_since(self, count: int) -> bool:
        return len(self.acked) > count


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for writer in started:
        writer.finish()


def _missing(port: int, keys: list[str]) -> int:
    with _connect(port) as connection:
        missing = 0
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            missing += sum(v is None for v in connection.mget(batch))
        return missing


def _events(client: Any, group_id: str) -> list[tuple[str, str]]:
    events = client.describe_events(Duration=60)["Events"]
    return [
        (e["SourceIdentifier"], e["Message"]) for e in reversed(events) if e["SourceIdentifier"].startswith(group_id)
    ]


def test_kill_primary_under_writes_fails_over_and_heals(
    server: ServerProcess, client: Any, writers: list[Writer]
) -> None:
    group = _create(client, "ha")
    assert group["AutomaticFailover"] == "enabled"
    assert group["MultiAZ"] == "enabled"
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    writer = Writer(endpoint, "w")
    writers.append(writer)
    writer.start()
    wait_until(lambda: len(writer.acked) > 200, 10, what="writes through the endpoint")

    old_pid = server.member_pids()["ha-001/0001"]
    os.kill(old_pid, signal.SIGKILL)
    before = len(writer.acked)
    killed_at = time.monotonic()
    wait_until(lambda: len(writer.acked) > before + 100, 20, what="writes to resume through the endpoint")
    outage = time.monotonic() - killed_at
    writer.finish()

    wait_until(lambda: _primary_of(client, "ha") != "ha-001", 10, what="Describe to show the new primary")
    new_primary = _primary_of(client, "ha")
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="ha", WaiterConfig=FAST_WAIT)
    wait_until(lambda: _roles(client, "ha")["ha-001"] == "replica", 15, what="the old primary to rejoin")
    wait_until(
        lambda: ("ha-001", "Finished recovery for cache nodes 0001") in _events(client, "ha"),
        15,
        what="the old primary's recovery to finish",
    )
    # kill -9 on loopback loses no acknowledged write (Redis replicates before it replies).
    assert _missing(endpoint, writer.acked) == 0
    assert outage < 15
    events = _events(client, "ha")
    message = f"Failover from primary node ha-001 to replica node {new_primary} completed"
    failover_at = events.index((new_primary, message))
    assert events[failover_at : failover_at + 3] == [
        (new_primary, message),
        ("ha", message),
        ("ha-001", "Recovering cache nodes 0001"),
    ]
    assert ("ha-001", "Finished recovery for cache nodes 0001") in events[failover_at + 3 :]


def test_test_failover_promotes_a_replica_with_events_in_order(server: ServerProcess, client: Any) -> None:
    group = _create(client, "drill")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    with _connect(endpoint) as connection:
        connection.set("before", "failover")
    # A neighbour group's open connections, through both of its endpoints, are not disturbed.
    neighbour = _create(client, "neighbour", nodes=2)["NodeGroups"][0]
    held = [_connect(neighbour["PrimaryEndpoint"]["Port"]), _connect(neighbour["ReaderEndpoint"]["Port"])]
    ids = [connection.client_id() for connection in held]  # one socket each, reused while it lives
    # Both groups' endpoints are served by the host's one proxy, which reloads for a third group that
    # comes and goes while clients use connections through all four endpoints.
    proxy = server.node_pids()["host.endpoints/haproxy"]
    assert not [k for k in server.node_pids() if k.endswith("/endpoint")]
    drill = group["NodeGroups"][0]
    mine = [_connect(drill["PrimaryEndpoint"]["Port"]), _connect(drill["ReaderEndpoint"]["Port"])]
    mine_ids = [connection.client_id() for connection in mine]
    pinger = Pinger([*held, *mine], interval=0.01)
    try:
        client.create_replication_group(
            ReplicationGroupId="third", ReplicationGroupDescription="x", CacheNodeType="cache.t4g.micro"
        )
        client.get_waiter("replication_group_available").wait(ReplicationGroupId="third", WaiterConfig=FAST_WAIT)
        with _connect(_group(client, "third")["NodeGroups"][0]["PrimaryEndpoint"]["Port"]) as third:
            assert third.set("third", "1")
        client.delete_replication_group(ReplicationGroupId="third")
        client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="third", WaiterConfig=FAST_WAIT)
    finally:
        pinger.finish()
    assert (pinger.errors, pinger.ok > 50) == ([], True)
    assert [connection.client_id() for connection in [*held, *mine]] == [*ids, *mine_ids]
    assert server.node_pids()["host.endpoints/haproxy"] == proxy
    answer = client.test_failover(ReplicationGroupId="drill", NodeGroupId="0001")["ReplicationGroup"]
    assert answer["Status"] == "available"
    wait_until(lambda: _primary_of(client, "drill") != "drill-001", 20, what="the promotion")
    new_primary = _primary_of(client, "drill")
    wait_until(
        lambda: ("drill-001", "Finished recovery for cache nodes 0001") in _events(client, "drill"),
        20,
        what="the old primary's recovery",
    )
    message = f"Failover from primary node drill-001 to replica node {new_primary} completed"
    events = _events(client, "drill")
    start = events.index(("drill", "Test Failover API called for node group 0001"))
    assert events[start:] == [
        ("drill", "Test Failover API called for node group 0001"),
        (new_primary, message),
        ("drill", message),
        ("drill-001", "Recovering cache nodes 0001"),
        ("drill-001", "Finished recovery for cache nodes 0001"),
    ]
    with _connect(endpoint) as connection:
        assert connection.get("before") == "failover"
        assert connection.info("replication")["role"] == "master"
        connection.set("after", "failover")
    assert [connection.client_id() for connection in held] == ids  # same sockets, retries off
    assert held[0].set("neighbour", "untouched")
    # The drill's own session through its primary endpoint, held by the proxy's old worker since the
    # reloads, was on the demoted primary: it was cut (redis-py's pool finds the socket closed and
    # opens a new one, which reaches the new primary).
    assert mine[0].client_id() != mine_ids[0]
    assert mine[0].info("replication")["role"] == "master"
    for connection in [*held, *mine]:
        connection.close()
    client.delete_replication_group(ReplicationGroupId="neighbour")


def test_failover_works_while_the_control_plane_is_down(server: ServerProcess, writers: list[Writer]) -> None:
    client = server.client()
    group = _create(client, "alone")
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    server.kill()
    old_pid = server.member_pids()["alone-001/0001"]
    os.kill(old_pid, signal.SIGKILL)
    writer = Writer(endpoint, "solo")
    writers.append(writer)
    writer.start()
    wait_until(lambda: len(writer.acked) > 100, 20, what="writes through the endpoint without a control plane")
    writer.finish()

    server.start()
    client = server.client()
    wait_until(lambda: _roles(client, "alone").get("alone-001") == "replica", 20, what="the old primary to heal")
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="alone", WaiterConfig=FAST_WAIT)
    assert _missing(endpoint, writer.acked) == 0
    assert any("Failover from primary node alone-001" in m for _, m in _events(client, "alone"))


def test_a_killed_sentinel_is_restarted_and_failover_still_works(server: ServerProcess, client: Any) -> None:
    _create(client, "watch")
    pids = server.node_pids()
    # The embedded host's shared Sentinels watch it (docs/decisions.md, "Shared Sentinels").
    os.kill(pids["sentinels.shared/shared-2"], signal.SIGKILL)
    wait_until(
        lambda: server.node_pids().get("sentinels.shared/shared-2") not in (None, pids["sentinels.shared/shared-2"]),
        10,
        what="the sentinel's restart",
    )
    port = int((server.data_dir / "nodes/sentinels.shared/shared-2/port").read_text())
    password = server.sentinel_password()
    with redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True) as sentinel:
        wait_until(
            lambda: int(sentinel.sentinel_master("watch")["num-other-sentinels"]) == 2,
            15,
            what="the restarted sentinel to rejoin its peers",
        )
    # With one sentinel down, the two left still make a quorum.
    os.kill(server.node_pids()["sentinels.shared/shared-3"], signal.SIGKILL)
    os.kill(server.member_pids()["watch-001/0001"], signal.SIGKILL)
    wait_until(lambda: _primary_of(client, "watch") != "watch-001", 20, what="a failover with two sentinels")


def test_restarted_old_primary_never_takes_a_write_through_the_endpoint(server: ServerProcess, client: Any) -> None:
    group = _create(client, "fence", nodes=2)
    endpoint_port = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    old_port = group["NodeGroups"][0]["NodeGroupMembers"][0]["ReadEndpoint"]["Port"]
    admin_socket = server.data_dir / "nodes/host.endpoints/haproxy" / haproxy.ADMIN_SOCKET
    old_pid = server.member_pids()["fence-001/0001"]
    os.kill(old_pid, signal.SIGKILL)
    wait_until(
        lambda: server.member_pids().get("fence-001/0001") not in (None, old_pid), 20, what="the old primary's restart"
    )
    # From its first breath the restarted node is a replica and out of the primary backend.
    deadline = time.monotonic() + 3
    with _connect(endpoint_port) as through_endpoint:
        while time.monotonic() < deadline:
            try:
                role = _connect(old_port).info("replication")["role"]
            except redis.exceptions.ConnectionError:
                role = "starting"
            assert role in ("slave", "starting")
            states = haproxy.server_states(admin_socket, haproxy.qualified(haproxy.PRIMARY_BACKEND, "fence"))
            assert states[haproxy.server_name(old_port)].maint
            try:
                through_endpoint.set("probe", time.monotonic())
                assert through_endpoint.info("replication")["role"] == "master"
            except redis.exceptions.ConnectionError:
                pass  # the endpoint cut this session at the failover; the next command reconnects
            time.sleep(0.05)


def test_connections_to_a_demoted_primary_are_closed(client: Any) -> None:
    group = _create(client, "cut", nodes=2)
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    # A raw session: redis-py's pool would quietly reconnect and hide what happened to the old one.
    with socket.create_connection(("127.0.0.1", endpoint), timeout=5) as session:
        session.sendall(b"SET k v\r\n")
        assert session.recv(100) == b"+OK\r\n"
        client.test_failover(ReplicationGroupId="cut", NodeGroupId="0001")
        wait_until(lambda: _primary_of(client, "cut") == "cut-002", 20, what="the promotion")
        # The old session is cut rather than left on a replica that would answer READONLY.
        try:
            session.sendall(b"SET k v2\r\n")
            answer = session.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    with _connect(endpoint) as fresh:
        fresh.set("k", "v3")


def test_replicas_scale_up_and_down_under_load(server: ServerProcess, client: Any, writers: list[Writer]) -> None:
    group = _create(client, "elastic", nodes=2)
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    writer = Writer(endpoint, "s")
    writers.append(writer)
    writer.start()
    grown = client.increase_replica_count(ReplicationGroupId="elastic", NewReplicaCount=3, ApplyImmediately=True)
    assert grown["ReplicationGroup"]["Status"] == "modifying"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="elastic", WaiterConfig=FAST_WAIT)
    group = _group(client, "elastic")
    assert group["MemberClusters"] == ["elastic-001", "elastic-002", "elastic-003", "elastic-004"]
    assert sorted(m["PreferredAvailabilityZone"] for m in group["NodeGroups"][0]["NodeGroupMembers"]) == [
        "us-east-1a",
        "us-east-1a",
        "us-east-1b",
        "us-east-1c",
    ]
    reader = group["NodeGroups"][0]["ReaderEndpoint"]["Port"]
    seen = set()
    for _ in range(30):
        with _connect(reader) as connection:
            seen.add(connection.info("server")["tcp_port"])
    assert len(seen) == 3  # the reader endpoint spreads over the three replicas

    client.decrease_replica_count(ReplicationGroupId="elastic", ReplicasToRemove=["elastic-004"], ApplyImmediately=True)
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="elastic", WaiterConfig=FAST_WAIT)
    client.decrease_replica_count(ReplicationGroupId="elastic", NewReplicaCount=1, ApplyImmediately=True)
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="elastic", WaiterConfig=FAST_WAIT)
    writer.finish()
    group = _group(client, "elastic")
    assert len(group["MemberClusters"]) == 2
    wait_until(lambda: len(server.member_pids()) == 2, 10, what="removed replicas to stop")
    assert _missing(endpoint, writer.acked) == 0
    assert len(writer.acked) > 100


def test_add_and_remove_a_member_with_the_cache_cluster_calls(server: ServerProcess, client: Any) -> None:
    _create(client, "legacy", nodes=2)
    created = client.create_cache_cluster(CacheClusterId="legacy-extra", ReplicationGroupId="legacy")["CacheCluster"]
    assert created["ReplicationGroupId"] == "legacy"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="legacy", WaiterConfig=FAST_WAIT)
    assert _roles(client, "legacy")["legacy-extra"] == "replica"
    client.delete_cache_cluster(CacheClusterId="legacy-extra")
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId="legacy-extra", WaiterConfig=FAST_WAIT)
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="legacy", WaiterConfig=FAST_WAIT)
    assert _group(client, "legacy")["MemberClusters"] == ["legacy-001", "legacy-002"]


def test_planned_switchover_without_automatic_failover_loses_nothing(client: Any, writers: list[Writer]) -> None:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro", ReplicationGroupId="swap", ReplicationGroupDescription="d", NumCacheClusters=2
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="swap", WaiterConfig=FAST_WAIT)
    endpoint = _group(client, "swap")["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    writer = Writer(endpoint, "sw")
    writers.append(writer)
    writer.start()
    wait_until(lambda: len(writer.acked) > 100, 10, what="writes")
    answer = client.modify_replication_group(
        ReplicationGroupId="swap", PrimaryClusterId="swap-002", ApplyImmediately=True
    )
    assert answer["ReplicationGroup"]["Status"] == "modifying"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="swap", WaiterConfig=FAST_WAIT)
    assert _roles(client, "swap") == {"swap-001": "replica", "swap-002": "primary"}
    count = len(writer.acked)
    wait_until(lambda: len(writer.acked) > count + 100, 10, what="writes after the switchover")
    writer.finish()
    assert _missing(endpoint, writer.acked) == 0


def test_automatic_failover_can_be_turned_off_and_on(server: ServerProcess, client: Any) -> None:
    _create(client, "toggle", nodes=2)
    off = client.modify_replication_group(
        ReplicationGroupId="toggle", AutomaticFailoverEnabled=False, MultiAZEnabled=False, ApplyImmediately=True
    )["ReplicationGroup"]
    assert off["AutomaticFailover"] == "disabling"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="toggle", WaiterConfig=FAST_WAIT)
    wait_until(lambda: _group(client, "toggle")["AutomaticFailover"] == "disabled", 10, what="failover off")
    assert not any(k.startswith("rg.toggle/sentinel") for k in server.node_pids())
    assert server.monitored_by("toggle") == 0  # it left the shared Sentinels
    on = client.modify_replication_group(
        ReplicationGroupId="toggle", AutomaticFailoverEnabled=True, ApplyImmediately=True
    )["ReplicationGroup"]
    assert on["AutomaticFailover"] == "enabling"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="toggle", WaiterConfig=FAST_WAIT)
    wait_until(lambda: _group(client, "toggle")["AutomaticFailover"] == "enabled", 15, what="failover on")
    assert server.monitored_by("toggle") == 3
    assert all(is_alive(p) for p in server.node_pids().values())


def test_a_replaced_node_keeps_its_port_and_waits_out_a_squatter(server: ServerProcess, client: Any) -> None:
    group = _create(client, "mend")
    before = {m["CacheClusterId"]: m for m in group["NodeGroups"][0]["NodeGroupMembers"]}
    with _connect(group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]) as connection:
        connection.set("kept", "yes")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = before["mend-003"]["ReadEndpoint"]["Port"]
    # The control plane is frozen while the damage is done, so it cannot restart a node in between.
    server.signal(signal.SIGSTOP)
    try:
        os.kill(server.member_pids()["mend-002/0001"], signal.SIGKILL)
        shutil.rmtree(server.data_dir / "nodes/mend-002")  # its data dir gone
        os.kill(server.member_pids()["mend-003/0001"], signal.SIGKILL)
        wait_until(lambda: _try_bind(squatter, port), 5, what="the dead node's port")
        squatter.listen()  # its port taken by someone else
    finally:
        server.signal(signal.SIGCONT)
    try:
        # The node whose directory is gone is recreated on the port its clients know.
        wait_until(
            lambda: ("mend-002", "Finished recovery for cache nodes 0001") in _events(client, "mend-002"),
            30, what="mend-002 to be replaced",
        )
        # The one whose port is held keeps it: an event names the conflict, and it waits.
        conflict = f"Cache node 0001 of mend-003 cannot start: its port {port} is held by another process"
        wait_until(
            lambda: any(m.startswith(conflict) for s, m in _events(client, "mend-003") if s == "mend-003"),
            30, what="the port conflict's event",
        )
        assert ("mend-003", "Finished recovery for cache nodes 0001") not in _events(client, "mend-003")
    finally:
        squatter.close()
    wait_until(
        lambda: ("mend-003", "Finished recovery for cache nodes 0001") in _events(client, "mend-003"),
        30, what="mend-003 back once its port is free",
    )
    after = {m["CacheClusterId"]: m for m in _group(client, "mend")["NodeGroups"][0]["NodeGroupMembers"]}
    for member_id in ("mend-002", "mend-003"):
        assert after[member_id]["ReadEndpoint"] == before[member_id]["ReadEndpoint"]
        assert after[member_id]["PreferredAvailabilityZone"] == before[member_id]["PreferredAvailabilityZone"]
        assert after[member_id]["CurrentRole"] == "replica"
        with _connect(after[member_id]["ReadEndpoint"]["Port"]) as replica:
            assert replica.get("kept") == "yes"
    # A conflict is told once, not on every retry.
    told = [m for s, m in _events(client, "mend-003") if s == "mend-003" and m.startswith(conflict)]
    assert len(told) == 1


def _try_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True
