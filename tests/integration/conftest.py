from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.netns import Topology
from tests.support.server import ServerProcess

FAST_WAIT = {"Delay": 1, "MaxAttempts": 60}


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
