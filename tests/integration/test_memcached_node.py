"""A real memcached node as the control plane renders it: threads and memory, live parameters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.memcached import BIND, Processes, free_port

from cachefleet.engines import memcached

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    started = Processes(tmp_path_factory.mktemp("nodes"))
    try:
        yield started
    finally:
        started.stop_all()


@pytest.mark.parametrize("node_type", ["cache.t2.micro", "cache.m5.xlarge"])
async def test_a_node_runs_the_threads_and_memory_of_its_node_type(processes: Processes, node_type: str) -> None:
    memory_mb, threads = memcached.node_resources(node_type, {})
    port = processes.node(memcached.NodeConfig(port=free_port(), bind=BIND, memory_mb=memory_mb, threads=threads))
    observed = await memcached.probe(BIND, port)
    assert observed is not None
    assert observed.threads == threads
    assert observed.limit_maxbytes == memory_mb << 20


async def test_live_parameters_change_a_running_node(processes: Processes) -> None:
    port = processes.node(memcached.NodeConfig(port=free_port(), bind=BIND, memory_mb=16, threads=1))
    before = await memcached.probe(BIND, port)
    assert before is not None
    assert (before.settings["slab_automove"], before.settings["lru_crawler"]) == ("1", "yes")
    wanted = {"slab_automove": "2", "lru_crawler": "0"}
    commands = memcached.live_commands(wanted, before.settings)
    assert await memcached.apply_live(BIND, port, commands)
    after = await memcached.probe(BIND, port)
    assert after is not None
    assert (after.settings["slab_automove"], after.settings["lru_crawler"]) == ("2", "no")
    assert memcached.live_commands(wanted, after.settings) == ()
    assert after.pid == before.pid  # no restart
