"""Provisioning on three agent hosts: ``bench/provision.py --hosts 3`` (root: network namespaces).

One installation serves the run (``tests/support/installation.py`` on a ``tests/support/netns.py``
topology): the control plane in its own namespace, three hosts running ``cachefleet agent`` in AZs
a, b and c, a cache subnet group of the three, and a client namespace from which every client
call is made (boto3, the floor's probes): a client in the root namespace dialling a topology
address would leave the machine by the default route.

- **cachefleet**: ``CreateReplicationGroup(NumCacheClusters=3)`` in that subnet group with one
  preferred AZ per member (with ``--multi-az``, ``AutomaticFailoverEnabled`` and ``MultiAZEnabled``
  too), then ``DescribeReplicationGroups`` every 10 ms until ``available``. Off the clock, the bench
  checks that the three nodes run one per host (and, Multi-AZ, the three Sentinels likewise), then
  deletes the group and waits until it is gone.
- **floor**: the same three ``redis-server`` processes started by hand on those hosts (forked from
  a thread inside each host's namespace, as an agent's children are), the primary on h1 and the
  replicas on h2 and h3 with ``replicaof`` the primary's host address, started once the primary
  accepts connections; done when both replicas report ``master_link_status:up``.

Trials alternate, as on one host. The agents' CPU is counted apart from the server's (their node
processes fall in "the rest").
"""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.installation import Installation
from tests.support.netns import Topology

from bench._common import binaries
from bench.provision import (
    GATE_INTERVAL,
    SETTLE,
    Cpu,
    CpuMeter,
    Node,
    Trial,
    accepts,
    cachefleet_trial,
    link_up,
    replica_client,
    start_redis,
    stop_processes,
    wait_for,
    write_configs,
)

ZONES = {"h1": "us-east-1a", "h2": "us-east-1b", "h3": "us-east-1c"}
SUBNET_GROUP = "agents"
PLACEMENT = {"CacheSubnetGroupName": SUBNET_GROUP, "PreferredCacheClusterAZs": list(ZONES.values())}
LOST_AFTER = 60.0  # the server's --host-lost-after: no host is lost in this bench


class ClientNamespaceApi:
    """The installation's boto3 client with every call made from the client namespace, in the shape
    ``bench/provision.py``'s cachefleet side calls it (``client.describe_replication_groups(...)``)."""

    def __init__(self, inst: Installation) -> None:
        self._inst = inst

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        return functools.partial(self._inst.api, operation)


def check_placement(inst: Installation, group_id: str, *, multi_az: bool) -> None:
    """Raise unless the group's three nodes (and, Multi-AZ, its Sentinels) run one per host, and
    both replicas report their link up: ``available`` came no earlier than the floor's end point."""
    roles = {member.address: member.role for member in inst.topo.hosts}
    placed: list[str | None] = []
    linked = 0
    for member in inst.members(group_id):
        address, _ = inst.node_of(member)
        placed.append(roles.get(address[0], address[0]) if address else None)
        if address is not None:
            replica = replica_client(address[1], address[0])
            try:
                linked += inst.call(link_up, replica)
            finally:
                replica.close()
    if linked != 2:
        raise RuntimeError(f"{group_id}: {linked} replicas linked when available, not 2")
    where: dict[str, list[str | None]] = {"nodes": placed}
    if multi_az:
        where["sentinels"] = [roles.get(address, address) for address, _ in inst.sentinels(group_id)]
    for what, found in where.items():
        if sorted(map(str, found)) != sorted(ZONES):
            raise RuntimeError(f"{group_id}: {what} on {found}, not one per host {sorted(ZONES)}")


def free_port_in(address: str) -> int:
    """A port free now on ``address`` (call on a thread inside the namespace that has it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def floor_trial(topo: Topology, binary: str, meter: CpuMeter) -> tuple[float, Cpu]:
    """Seconds from spawning the primary on h1 to both replicas (h2, h3) reporting their link up."""
    hosts, client = topo.hosts[:3], topo.client
    assert client is not None
    with tempfile.TemporaryDirectory(prefix="cachefleet-floor-") as tmp:
        nodes: list[Node] = [(h.address, topo.call(h, free_port_in, h.address)) for h in hosts]
        confs = write_configs(Path(tmp), nodes)
        clients = [replica_client(port, address) for address, port in nodes[1:]]
        processes = []
        try:
            meter.start()
            t0 = time.perf_counter()
            processes.append(topo.call(hosts[0], start_redis, binary, confs[0]))
            address, port = nodes[0]
            wait_for(lambda: topo.call(client, accepts, port, address), f"floor primary {address}:{port}",
                     interval=GATE_INTERVAL)  # fmt: skip
            for host, conf in zip(hosts[1:], confs[1:], strict=True):
                processes.append(topo.call(host, start_redis, binary, conf))
            pending = list(clients)

            def all_up() -> bool:
                pending[:] = [c for c in pending if not topo.call(client, link_up, c)]
                return not pending

            wait_for(all_up, f"floor replicas {nodes[1:]} to link")
            elapsed = time.perf_counter() - t0
            return elapsed, meter.stop()
        finally:
            for replica in clients:
                replica.close()
            stop_processes(processes)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def run(trials: int, *, multi_az: bool) -> list[Trial]:
    binary = binaries("redis-server")["redis-server"]
    results: list[Trial] = []
    # The topology is torn down (every process in it killed by PID) before the directory goes.
    with (
        tempfile.TemporaryDirectory(prefix="cachefleet-provision-hosts-") as tmp,
        Topology(len(ZONES), client=True, control_plane=True) as topo,
    ):
        inst = Installation(topo, Path(tmp), ZONES, LOST_AFTER)
        try:
            inst.add_hosts(SUBNET_GROUP)  # once, outside every timed region
            assert inst.server is not None
            agents = [agent.pid for agent in inst.agents.values()]
            cachefleet_meter, floor_meter = CpuMeter(inst.server.pid, agents), CpuMeter(None)
            client = ClientNamespaceApi(inst)
            check = functools.partial(check_placement, inst, multi_az=multi_az)
            for i in range(1, trials + 1):
                time.sleep(SETTLE)
                cf, cf_cpu = cachefleet_trial(
                    client, i, cachefleet_meter, multi_az=multi_az, placement=PLACEMENT, check=check
                )
                time.sleep(SETTLE)
                fl, fl_cpu = floor_trial(topo, binary, floor_meter)
                print(f"trial {i}/{trials}: cachefleet {cf:.3f}s  floor {fl:.3f}s", file=sys.stderr)
                results.append(Trial(cf, fl, cf_cpu, fl_cpu))
        except BaseException:
            for name in ("server", *(f"agent-{h}" for h in ZONES)):
                print(f"{name} log tail:\n{_tail(Path(tmp) / f'{name}.log')}", file=sys.stderr)
            raise
        finally:
            if inst.server is not None and inst.server.poll() is None:
                with contextlib.suppress(Exception):
                    inst.stop_server()
    return results
