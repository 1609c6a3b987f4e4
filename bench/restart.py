"""kill -9 of a redis-server node until it answers PING again: a host agent against the control plane.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/restart.py --trials 10 [--json]

Two nodes on loopback, each killed in turn, trials interleaved:

- **agent**: a node started through ``cachefleet agent`` (mutual TLS, a throwaway CA); no control
  plane runs, the agent restarts the node on its own (pidfd, first restart immediate);
- **server**: the node of a one-node cache cluster of ``cachefleet server``, healed by its
  reconciler (resync every second, or sooner when its pass notices).

Each trial kills the node with SIGKILL and polls PING every 2 ms until the new process answers.
Between trials each node serves for 1.5 s, longer than the agent's quick-exit window, so every kill
is a first restart. The issue's target: back within 1 s; the ratio (agent / server) is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from tests.support.agent import AgentProcess, Certificates
from tests.support.server import ServerProcess

from bench._common import LOOPBACK, binaries, ratio_summary, unwind_on_sigterm, wait_for
from cachefleet.engines.redis import process_lines
from cachefleet.hosts.base import ProcessSpec
from cachefleet.model.nodes import node_key

SERVE_BETWEEN = 1.5


def answers(port: int) -> bool:
    try:
        with redis.Redis(host=LOOPBACK, port=port, socket_timeout=0.2, socket_connect_timeout=0.2, retry=None) as c:
            return bool(c.ping())
    except redis.exceptions.RedisError:
        return False


def kill_and_time(pid_of: Callable[[], int | None], port: int) -> float:
    pid = pid_of()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while not (pid_of() not in (None, pid) and answers(port)):
        if time.monotonic() - killed > 30:
            raise TimeoutError("the node did not come back within 30 s")
        time.sleep(0.002)
    return time.monotonic() - killed


def pidfile_reader(path: Path) -> Callable[[], int | None]:
    def read() -> int | None:
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    return read


def run(trials: int, work: Path) -> dict[str, list[float]]:
    redis_server = binaries("redis-server")["redis-server"]
    certs = Certificates(work / "certs")
    agent = AgentProcess(work / "agent", certs)
    server = ServerProcess(work / "server")
    try:
        agent.start()
        host = agent.host()
        key = node_key("bench-001", "0001")
        agent_port = host.allocate_port(key, ())
        node_dir = host.node_dir(key)
        conf = "\n".join([*process_lines(LOOPBACK, agent_port, node_dir), 'save ""']) + "\n"
        host.start(key, ProcessSpec((redis_server, str(node_dir / "redis.conf")), {"redis.conf": conf}))
        host.close()  # the agent alone looks after its node from here on
        wait_for(lambda: answers(agent_port), "the agent's node")

        server.start()
        client = server.client()
        client.create_cache_cluster(CacheClusterId="bench", Engine="redis", CacheNodeType="cache.t4g.micro")
        client.get_waiter("cache_cluster_available").wait(CacheClusterId="bench", WaiterConfig={"Delay": 1})
        nodes = client.describe_cache_clusters(CacheClusterId="bench", ShowCacheNodeInfo=True)
        server_port = int(nodes["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Port"])

        sides = {
            "agent": (pidfile_reader(agent.data_dir / "nodes" / key.cluster_id / key.node_id / "pid"), agent_port),
            "server": (pidfile_reader(server.data_dir / "nodes" / "bench" / "0001" / "pid"), server_port),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for trial in range(trials):
            order = list(sides) if trial % 2 == 0 else list(reversed(sides))
            for name in order:
                time.sleep(SERVE_BETWEEN)
                pid_of, port = sides[name]
                times[name].append(kill_and_time(pid_of, port))
        return times
    finally:
        server.cleanup()
        agent.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    unwind_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="cf-bench-restart-") as work:
        times = run(args.trials, Path(work))
    summary: dict[str, Any] = ratio_summary(times, target=1.0)
    summary["agent_within_1s"] = max(times["agent"]) < 1.0
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"kill -9 -> PING answered again, {args.trials} trials each, interleaved (shared 2-core machine)")
    print(f"{'':8} {'median':>9} {'min':>9} {'max':>9}")
    for name, values in times.items():
        cells = [statistics.median(values), min(values), max(values)]
        print(f"{name:8} " + " ".join(f"{value * 1000:8.1f}ms" for value in cells))
    print(
        f"ratio agent/server (medians): {summary['ratio']:.3f}; agent back within 1 s every time: "
        f"{summary['agent_within_1s']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
