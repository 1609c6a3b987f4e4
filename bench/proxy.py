"""The host's endpoint proxy at 1, 50 and 200 groups: reload time, idle CPU, and memory, old workers included.

Run from the repository root, under the bench lock::

    flock /work/helpers/bench.lock env PYTHONPATH=. .venv/bin/python bench/proxy.py [--groups 1,50,200] [--json]

Three redis-servers (a primary and two replicas) are started by hand; every group's endpoint names
those three (the proxy cannot tell), so the health checks are the real ones: per group, the primary
backend checks its one server out of maintenance and the reader backend its three, every 500 ms.
The proxy is driven by ``control.proxy.EndpointProxy``, as the executor drives it. For each N:

- start: the first group's ``serve`` (the proxy starts) and N-1 more ``serve`` calls (each a reload),
  timed one by one; the reload time is from the call to the new worker answering its admin socket;
- idle CPU of the proxy (master and workers) over a window, and RSS of master and current worker;
- old workers: one client session is opened through the first group's primary endpoint before each
  of ``--held`` more reloads; RSS of every worker then, and how many old workers are left (the
  config's ``mworker-max-reloads`` bounds them).

Every process started is stopped by PID. The machine may be shared: CPU figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cachefleet.control.actions import EndpointInputs
from cachefleet.control.proxy import SETTINGS, EndpointProxy
from cachefleet.engines.installed import require_binaries
from cachefleet.hosts.base import Host
from cachefleet.hosts.embedded import EmbeddedHost
from cachefleet.hosts.local import LocalHost
from cachefleet.model.credentials import Credentials
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import PROXY_KEY, READER_SLOT, Placement, endpoint_key

BIND = "127.0.0.1"
AT = Placement(LOCAL_HOST, BIND, "az-a")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class OneHost:
    host: Host

    def get(self, host_id: str) -> Host:
        return self.host


def free_port() -> int:
    with socket.socket() as s:
        s.bind((BIND, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_redis(work: Path, port: int, replicaof: int | None) -> subprocess.Popen[bytes]:
    conf = work / f"redis-{port}.conf"
    lines = [f"port {port}", f"bind {BIND}", 'save ""', "appendonly no", f"dir {work}", "hz 10"]
    if replicaof is not None:
        lines.append(f"replicaof {BIND} {replicaof}")
    conf.write_text("\n".join(lines) + "\n")
    return subprocess.Popen([require_binaries("redis-server")["redis-server"], str(conf)], stdout=subprocess.DEVNULL)


def measure(n: int, held: int, window: float, work: Path, nodes: tuple[tuple[str, int], ...]) -> dict[str, float]:
    local = LocalHost(work / f"n{n}" / "nodes", (30000, 40000), BIND)
    host = EmbeddedHost(local, LOCAL_HOST, BIND)
    # The checks log in as "default" with any password: Redis without requirepass accepts AUTH default x.
    proxy = EndpointProxy(OneHost(host), require_binaries("haproxy")["haproxy"], Credentials("default", "x"), work)
    inputs = EndpointInputs(nodes, nodes[0])
    reloads: list[float] = []
    sessions: list[socket.socket] = []
    try:
        for i in range(n):
            key = endpoint_key(f"g{i}")
            local.allocate_port(key, ())
            local.allocate_port(key, (), READER_SLOT)
            t0 = time.monotonic()
            asyncio.run(proxy.serve(AT, f"g{i}", inputs))
            if i:
                reloads.append(time.monotonic() - t0)
        master = local.pid(PROXY_KEY)
        assert master is not None
        time.sleep(2.0)  # the first checks
        pids = [master, *children(master)]
        before = {p: cpu_seconds(p) for p in pids}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) - before[p] for p in pids) / elapsed
        (worker,) = children(master)
        rss_master, rss_worker = rss_mib(master), rss_mib(worker)
        endpoint = local.port_of(endpoint_key("g0"))
        assert endpoint is not None
        for _ in range(held):
            session = socket.create_connection((BIND, endpoint), timeout=2)
            session.sendall(b"PING\r\n")
            assert session.recv(100) == b"+PONG\r\n"
            sessions.append(session)
            asyncio.run(proxy.serve(AT, "g0", inputs))  # an unchanged contribution still reloads the proxy
        time.sleep(0.5)
        workers = children(master)
        rss_all = rss_mib(master) + sum(rss_mib(w) for w in workers)
        alive = sum(1 for s in sessions if _alive(s))
        return {
            "groups": n,
            "reload_p50_s": sorted(reloads)[len(reloads) // 2] if reloads else 0.0,
            "reload_max_s": max(reloads) if reloads else 0.0,
            "idle_cpu_pct_of_core": 100 * cpu,
            "rss_master_mib": rss_master,
            "rss_worker_mib": rss_worker,
            "old_workers_after_held_reloads": len(workers) - 1,
            "rss_with_old_workers_mib": rss_all,
            "held_sessions_alive": alive,
        }
    finally:
        for s in sessions:
            s.close()
        pid = local.pid(PROXY_KEY)
        kids = children(pid) if pid else []
        local.stop(PROXY_KEY, timeout=2.0)
        for kid in kids:
            if Path(f"/proc/{kid}").exists():
                os.kill(kid, signal.SIGKILL)


def _alive(session: socket.socket) -> bool:
    try:
        session.sendall(b"PING\r\n")
        return session.recv(100) == b"+PONG\r\n"
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", default="1,50,200", help="group counts, comma separated (default 1,50,200)")
    parser.add_argument("--held", type=int, default=12, help="reloads with a session held before each (default 12)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of the idle CPU window (default 10)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cf-proxy-bench-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port() for _ in range(3)]
        servers.append(start_redis(work, ports[0], None))
        time.sleep(0.2)
        servers += [start_redis(work, p, ports[0]) for p in ports[1:]]
        time.sleep(1.0)
        nodes = tuple((BIND, p) for p in ports)
        print(f"settings: hard-stop-after {SETTINGS.hard_stop_after_s}s, mworker-max-reloads {SETTINGS.max_reloads}")
        header = "groups  reload p50  reload max  idle CPU  RSS master+worker  old workers  RSS all  held alive"
        print(header)
        results = []
        for n in (int(x) for x in args.groups.split(",")):
            r = measure(n, args.held, args.window, work, nodes)
            results.append(r)
            print(
                f"{n:>6}  {r['reload_p50_s']:>9.3f}s  {r['reload_max_s']:>9.3f}s  {r['idle_cpu_pct_of_core']:>7.1f}%"
                f"  {r['rss_master_mib']:>6.1f}+{r['rss_worker_mib']:<6.1f} MiB"
                f"  {r['old_workers_after_held_reloads']:>11}"
                f"  {r['rss_with_old_workers_mib']:>5.0f} MiB  {r['held_sessions_alive']:>3}/{args.held}"
            )
        if args.json:
            print(json.dumps(results))
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
