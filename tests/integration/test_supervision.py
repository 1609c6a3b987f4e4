"""Supervision and restart safety: killed nodes come back, and the data plane outlives the control plane."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from typing import Any

import pytest
import redis
from tests.integration.conftest import FAST_WAIT
from tests.support.memcached import exchange
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.integration


def _members(client: Any, group_id: str) -> list[dict[str, Any]]:
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    return list(group["NodeGroups"][0]["NodeGroupMembers"])


def _role(port: int) -> dict[str, Any]:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True) as connection:
        return dict(connection.info("replication"))


def _serves(port: int, key: str) -> str | None:
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True) as connection:
            value = connection.get(key)
            return value if isinstance(value, str) else None
    except redis.exceptions.ConnectionError:
        return None


def _stored_status(server: ServerProcess, kind: str, resource_id: str) -> str | None:
    with sqlite3.connect(server.data_dir / "state.db") as db:
        row = db.execute(
            "SELECT status FROM resources WHERE kind = ? AND id = ?", (kind, resource_id)
        ).fetchone()
    return json.loads(row[0])["status"] if row else None


def _create_group(client: Any, group_id: str, nodes: int = 3) -> list[int]:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id, ReplicationGroupDescription="t", NumCacheClusters=nodes
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)
    return [m["ReadEndpoint"]["Port"] for m in _members(client, group_id)]


def test_killed_replica_restarts_on_its_port_as_a_replica_with_its_data(
    server: ServerProcess, client: Any
) -> None:
    primary, replica, _ = _create_group(client, "heal")
    with redis.Redis(host="127.0.0.1", port=primary) as connection:
        connection.set("k", "v")
        connection.execute_command("WAIT", 2, 2000)
    old_pid = server.member_pids()["heal-002/0001"]
    os.kill(old_pid, signal.SIGKILL)

    wait_until(lambda: _serves(replica, "k") == "v", 15, what="the replica to come back with its data")
    new_pid = server.member_pids()["heal-002/0001"]
    assert new_pid != old_pid
    info = _role(replica)
    assert info["role"] == "slave"
    assert int(info["master_port"]) == primary
    assert [m["CurrentRole"] for m in _members(client, "heal")] == ["primary", "replica", "replica"]
    assert len(server.processes_under_data_dir()) == 4  # three nodes and the endpoint


def test_killed_primary_restarts_as_the_primary_on_its_port(server: ServerProcess, client: Any) -> None:
    primary, replica, _ = _create_group(client, "phoenix")
    old_pid = server.member_pids()["phoenix-001/0001"]
    os.kill(old_pid, signal.SIGKILL)
    wait_until(
        lambda: server.member_pids().get("phoenix-001/0001") not in (None, old_pid), 15, what="a restart"
    )
    wait_until(lambda: _role(replica).get("master_link_status") == "up", 15, what="replicas to resync")
    assert _role(primary)["role"] == "master"
    with redis.Redis(host="127.0.0.1", port=primary) as connection:
        connection.set("after", "restart")
    wait_until(lambda: _serves(replica, "after") == "restart", 5, what="replication after the restart")


def test_data_plane_outlives_a_killed_control_plane_and_is_readopted(server: ServerProcess) -> None:
    client = server.client()
    ports = _create_group(client, "durable")
    client.create_cache_cluster(
        CacheNodeType="cache.t4g.micro", CacheClusterId="mc", Engine="memcached", NumCacheNodes=2
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="mc", WaiterConfig=FAST_WAIT)
    with redis.Redis(host="127.0.0.1", port=ports[0]) as connection:
        connection.set("survives", "yes")
    pids_before = server.node_pids()
    assert len(pids_before) == 7  # 3 + 2 nodes, the endpoint proxy, the cluster's configuration endpoint
    discovery = client.describe_cache_clusters(CacheClusterId="mc")["CacheClusters"][0]["ConfigurationEndpoint"]
    config = exchange(discovery["Port"], b"config get cluster\r\n")

    server.kill()  # kill -9 of the control plane
    for port in ports:
        wait_until(
            lambda port=port: _serves(port, "survives") == "yes", 5, what=f"node {port} to keep serving"
        )
    # Auto discovery keeps answering too, and forwarding to the nodes.
    assert exchange(discovery["Port"], b"config get cluster\r\n") == config
    assert exchange(discovery["Port"], b"set k 0 0 1\r\nv\r\n", until=b"\r\n") == b"STORED\r\n"

    server.start()
    client = server.client()
    assert [m["ReadEndpoint"]["Port"] for m in _members(client, "durable")] == ports
    client.get_waiter("replication_group_available").wait(
        ReplicationGroupId="durable", WaiterConfig=FAST_WAIT
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="mc", WaiterConfig=FAST_WAIT)
    # Give a full resync interval the chance to start anything twice; it must not.
    wait_until(lambda: _stored_status(server, "replication-group", "durable") == "available", 5)
    assert server.node_pids() == pids_before
    assert sorted(server.processes_under_data_dir()) == sorted(pids_before.values())


def test_sigterm_stops_the_control_plane_cleanly_and_nodes_keep_serving(server: ServerProcess) -> None:
    (port,) = _create_group(server.client(), "calm", nodes=1)
    assert server.stop() == 0
    assert _role(port)["role"] == "master"
    assert len(server.member_pids()) == 1


def test_group_caught_creating_converges_after_a_control_plane_crash(server: ServerProcess) -> None:
    client = server.client()
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId="midway", ReplicationGroupDescription="t", NumCacheClusters=3
    )
    server.signal(signal.SIGSTOP)  # freeze the control plane right after it answered
    try:
        assert _stored_status(server, "replication-group", "midway") == "creating"
    finally:
        server.kill()
    server.start()
    client = server.client()
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="midway", WaiterConfig=FAST_WAIT)
    assert len(server.member_pids()) == 3
    assert len(server.processes_under_data_dir()) == 4


def test_group_caught_deleting_is_gone_after_a_control_plane_crash(server: ServerProcess) -> None:
    client = server.client()
    _create_group(client, "doomed")
    pids = server.member_pids()
    client.delete_replication_group(ReplicationGroupId="doomed")
    server.signal(signal.SIGSTOP)
    try:
        assert _stored_status(server, "replication-group", "doomed") == "deleting"
    finally:
        server.kill()
    server.start()
    client = server.client()
    client.get_waiter("replication_group_deleted").wait(ReplicationGroupId="doomed", WaiterConfig=FAST_WAIT)
    wait_until(lambda: not server.processes_under_data_dir(), 10, what="every node process to exit")
    assert not set(server.processes_under_data_dir()) & set(pids.values())


def test_a_killed_node_is_healed_at_its_exit_without_waiting_for_the_resync(tmp_path: Any) -> None:
    # The resync runs only every 10 minutes here: the restart can only come from the exit itself
    # (a pidfd per process, control/exits.py), for a process the server spawned and, after a
    # control-plane restart, for one it adopted (no longer its child).
    server = ServerProcess(tmp_path / "cf", "--resync-interval", "600")
    try:
        server.start()
        primary, replica = _create_group(server.client(), "evented", nodes=2)
        for round_ in ("spawned", "adopted"):
            old_pid = server.member_pids()["evented-002/0001"]
            if round_ == "adopted":
                assert _parent(old_pid) != server.process.pid  # type: ignore[union-attr]
            with redis.Redis(host="127.0.0.1", port=primary) as connection:
                connection.set("round", round_)
            os.kill(old_pid, signal.SIGKILL)
            wait_until(lambda r=round_: _serves(replica, "round") == r, 15, what=f"the {round_} replica back")
            assert server.member_pids()["evented-002/0001"] != old_pid
            if round_ == "spawned":
                server.kill()  # kill -9 of the control plane: its nodes live on, and are adopted
                server.start()
                wait_until(lambda: _stored_status(server, "replication-group", "evented") == "available", 15)
    finally:
        server.cleanup()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
