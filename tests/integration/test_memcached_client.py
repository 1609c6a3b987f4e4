"""cachefleet_client's MemcachedClient against real processes: three memcached nodes behind a
configuration endpoint process, membership changed as the control plane changes it (the endpoint's
file rewritten, then its reload signal). A third-party client is tested against a cluster of the
API in test_memcached_clusters.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.memcached import BIND, Processes, free_port, reload
from tests.support.server import wait_until

from cachefleet.engines import config_endpoint as ce
from cachefleet_client.memcached import MemcachedClient

pytestmark = pytest.mark.integration


@dataclass
class Cluster:
    processes: Processes
    ports: list[int]
    endpoint: ce.Endpoint
    path: Path
    pid: int

    @property
    def address(self) -> str:
        return f"{BIND}:{self.endpoint.port}"

    def serve(self, ports: list[int]) -> None:
        """A membership change: the next version, with these nodes."""
        self.ports = ports
        self.endpoint = ce.Endpoint(
            self.endpoint.name, BIND, self.endpoint.port, self.endpoint.version + 1, _members(ports)
        )
        reload(self.path, ce.ServerConfig((self.endpoint,)), self.pid)


def _members(ports: list[int]) -> tuple[ce.Member, ...]:
    return tuple(ce.Member(BIND, BIND, p) for p in ports)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    processes = Processes(tmp_path)
    try:
        ports = [processes.memcached(threads=1, memory_mb=16) for _ in range(3)]
        endpoint = ce.Endpoint("mc", BIND, free_port(), 1, _members(ports))
        path, pid = processes.endpoint(ce.ServerConfig((endpoint,)))
        yield Cluster(processes, ports, endpoint, path, pid)
    finally:
        processes.stop_all()


def _holders(cluster: Cluster, keys: list[str]) -> dict[int, int]:
    """How many of ``keys`` each node really holds (asked of each node directly)."""
    counts = {}
    for port in cluster.ports:
        with MemcachedClient(servers=[(BIND, port)]) as direct:
            counts[port] = len(direct.get_many(keys))
    return counts


def test_three_node_cluster_through_the_client(cluster: Cluster) -> None:
    keys = [f"k{i}" for i in range(300)]
    with MemcachedClient(cluster.address, default_noreply=False) as client:
        assert client.config.version == 1
        assert set(client.nodes) == {(BIND, p) for p in cluster.ports}
        assert client.set_many({k: k.encode() for k in keys}) == []
        assert client.get_many(keys) == {k: k.encode() for k in keys}
        assert client.incr("counter") is None
        client.set("counter", b"41")
        assert client.incr("counter") == 42
        value, token = client.gets("counter")
        assert value == b"42"
        assert client.cas("counter", b"1", token)
        assert client.delete("counter")
    # Spread over every node, each key stored once.
    counts = _holders(cluster, keys)
    assert sum(counts.values()) == len(keys)
    assert all(n > len(keys) / 6 for n in counts.values())


def test_client_follows_a_node_added_and_one_removed_under_load(cluster: Cluster) -> None:
    keys = [f"load:{i}" for i in range(400)]
    errors = 0
    with MemcachedClient(cluster.address, poll_interval=0.1, default_noreply=False) as client:
        client.set_many({k: b"v" for k in keys})
        before = {k: client.node_for(k) for k in keys}
        new = cluster.processes.memcached(threads=1, memory_mb=16)
        cluster.serve([*cluster.ports, new])

        def load_until(condition: object) -> None:
            nonlocal errors
            deadline = time.monotonic() + 10
            i = 0
            while time.monotonic() < deadline:  # a bounded load: one command after another
                key = keys[i % len(keys)]
                i += 1
                try:
                    if client.get(key) is None:
                        client.set(key, b"v")
                except Exception:
                    errors += 1
                if callable(condition) and condition():
                    return
            raise AssertionError("the client did not follow the change in time")

        load_until(lambda: len(client.nodes) == 4)
        assert client.config.version == 2
        moved = [k for k in keys if client.node_for(k) != before[k]]
        assert {client.node_for(k) for k in moved} == {(BIND, new)}
        assert len(moved) / len(keys) <= 1.2 / 4 + 0.05  # ketama: about a quarter, all to the new node
        # Removal: the node leaves discovery first, then goes away (as the control plane does it).
        gone = cluster.ports[0]
        cluster.serve(cluster.ports[1:])
        load_until(lambda: (BIND, gone) not in client.nodes)
        cluster.processes.kill(cluster.processes.pid_on(gone))
        for key in keys:
            client.set(key, b"after")
        assert client.get_many(keys) == dict.fromkeys(keys, b"after")
    assert errors == 0


def test_client_rides_over_a_node_loss_and_its_replacement_on_the_same_port(cluster: Cluster) -> None:
    keys = [f"r{i}" for i in range(200)]
    with MemcachedClient(cluster.address, dead_timeout=0.3, default_noreply=False) as client:
        client.set_many({k: b"v" for k in keys})
        victim = cluster.ports[1]
        cluster.processes.kill(cluster.processes.pid_on(victim))  # SIGKILL
        # Every command succeeds: the failed node leaves the ring, the key is served by another.
        for key in keys:
            if client.get(key) is None:
                assert client.set(key, b"refilled")
        assert all(client.node_for(k) != (BIND, victim) for k in keys)
        # The node comes back on its address (a replacement): after dead_timeout it serves again.
        cluster.processes.memcached(threads=1, memory_mb=16, port=victim)
        wait_until(lambda: client.set("probe", b"x") and client.node_for(keys[0]) is not None, 5, what="the set")
        wait_until(
            lambda: any(client.set(k, b"v") and client.node_for(k) == (BIND, victim) for k in keys),
            5,
            what="the replaced node back in the ring",
        )
    assert _holders(cluster, keys)[victim] > 0
