from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.netns import Topology
from tests.support.server import ServerProcess

FAST_WAIT = {"Delay": 1, "MaxAttempts": 60}


def create_multi_az_groups(client: Any, *group_ids: str, description: str = "test") -> None:
    """Multi-AZ groups of three nodes with automatic failover, asked for at once, then each waited for."""
    for group_id in group_ids:
        client.create_replication_group(
            CacheNodeType="cache.t4g.micro",
            ReplicationGroupId=group_id,
            ReplicationGroupDescription=description,
            NumCacheClusters=3,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
        )
    for group_id in group_ids:
        client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture
def client(server: ServerProcess) -> Any:
    return server.client()


@pytest.fixture(scope="module")
def netns() -> Iterator[Callable[..., Topology]]:
    """Makes network-namespace topologies (``tests/support/netns.py``: ``netns(3, control_plane=True)``);
    every one is torn down, processes and namespaces, when the module's tests are done. Needs root."""
    made: list[Topology] = []

    def make(hosts: int, **kwargs: Any) -> Topology:
        topology = Topology(hosts, **kwargs)
        made.append(topology)
        topology.create()
        return topology

    try:
        yield make
    finally:
        for topology in made:
            topology.cleanup()
