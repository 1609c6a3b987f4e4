"""How soon the host's endpoint proxy routes to a promoted replica, with 1 and with N groups in it.

Run from the repository root, under the bench lock::

    flock /work/helpers/bench.lock env PYTHONPATH=.:bench .venv/bin/python bench/proxy_promotion.py [--groups 1,50]

The step of a failover that the proxy owns: Sentinel's script has readied the chosen replica with
its health forced down (``+selected-slave``); the replica is then promoted (``REPLICAOF NO ONE``)
and the old primary demoted, and HAProxy's own ``role:master`` check (every 50 ms for a down server)
brings it up. Timed from the promotion to the server being up on the admin socket, for group 0 of N
groups that all name the same two redis-servers (so all their checks run). Setup as ``bench/proxy.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import redis

from cachefleet.control.actions import EndpointInputs
from cachefleet.control.proxy import EndpointProxy
from cachefleet.engines import haproxy
from cachefleet.engines.installed import require_binaries
from cachefleet.hosts.embedded import EmbeddedHost
from cachefleet.hosts.local import LocalHost
from cachefleet.model.credentials import Credentials
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import PROXY_KEY, READER_SLOT, endpoint_key
from proxy import AT, BIND, OneHost, free_port, start_redis


def measure(n: int, trials: int, work: Path, ports: list[int]) -> list[float]:
    nodes = tuple((BIND, p) for p in ports)
    local = LocalHost(work / f"n{n}" / "nodes", (30000, 40000), BIND)
    host = EmbeddedHost(local, LOCAL_HOST, BIND)
    proxy = EndpointProxy(OneHost(host), require_binaries("haproxy")["haproxy"], Credentials("default", "x"), work)
    clients = {p: redis.Redis(host=BIND, port=p) for p in ports}
    try:
        for i in range(n):
            key = endpoint_key(f"g{i}")
            local.allocate_port(key, ())
            local.allocate_port(key, (), READER_SLOT)
            asyncio.run(proxy.serve(AT, f"g{i}", EndpointInputs(nodes, nodes[0])))
        admin = asyncio.run(proxy.admin_socket(AT, "g0"))
        time.sleep(2.0)
        backend = haproxy.qualified(haproxy.PRIMARY_BACKEND, "g0")
        primary, replica = ports
        times = []
        for _ in range(trials):
            chosen, old = haproxy.server_name(replica), haproxy.server_name(primary)
            haproxy.admin(
                admin,
                f"set server {backend}/{old} state maint; set server {backend}/{chosen} state ready; "
                f"set server {backend}/{chosen} health down",
            )
            time.sleep(0.3)
            start = time.monotonic()
            clients[replica].replicaof("NO", "ONE")
            clients[primary].replicaof(BIND, str(replica))
            while not haproxy.server_states(admin, backend)[chosen].up:
                time.sleep(0.002)
            times.append(time.monotonic() - start)
            primary, replica = replica, primary
            time.sleep(1.5)
        return times
    finally:
        for client in clients.values():
            client.close()
        local.stop(PROXY_KEY, timeout=2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", default="1,50")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cf-promotion-bench-"))
    ports = [free_port(), free_port()]
    servers = [start_redis(work, ports[0], None)]
    try:
        time.sleep(0.2)
        servers.append(start_redis(work, ports[1], ports[0]))
        time.sleep(1.0)
        for n in (int(x) for x in args.groups.split(",")):
            times = measure(n, args.trials, work, ports)
            median = sorted(times)[len(times) // 2]
            print(f"{n:>4} groups: promotion -> up, median {median:.3f} s ({' '.join(f'{t:.3f}' for t in times)})")
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
