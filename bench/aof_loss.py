"""Acknowledged writes lost when a cachefleet Redis node is killed with kill -9 under a writing client.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/aof_loss.py --trials 3 [--seconds 2] [--json]

For each persistence setting (parameter groups with ``appendonly yes`` + ``appendfsync always``,
``appendonly yes`` + ``appendfsync everysec``, and the default ``appendonly no``), each trial creates
a standalone cluster, writes ``SET k<i> <i>`` from one sequential client for ``--seconds``, sends
SIGKILL to the node's process while the client is writing, lets the control plane restart the node,
and counts the acknowledged keys that are missing once it serves again. It measures a process
crash only: the kernel keeps what Redis wrote, so this says nothing about power loss.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.server import ServerProcess

MODES = {
    "always": {"appendonly": "yes", "appendfsync": "always"},
    "everysec": {"appendonly": "yes", "appendfsync": "everysec"},
    "off": {},  # appendonly no, the default: only snapshots persist data
}
DEADLINE = 60.0


@dataclass(frozen=True)
class Trial:
    mode: str
    acknowledged: int
    lost: int
    rate: float  # acknowledged SETs per second before the kill


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def connect(port: int) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def status(client: Any, cluster_id: str) -> str | None:
    try:
        return str(client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheClusterStatus"])
    except ClientError:
        return None


def trial(server: ServerProcess, client: Any, mode: str, index: int, seconds: float) -> Trial:
    cluster_id = f"aof-{mode}-{index}"
    extra = {"CacheParameterGroupName": f"pg-{mode}"} if MODES[mode] else {}
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId=cluster_id, Engine="redis", **extra)
    try:
        wait_for(lambda: status(client, cluster_id) == "available", f"{cluster_id} available")
        node = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][0]
        port = int(node["CacheNodes"][0]["Endpoint"]["Port"])
        acknowledged: list[int] = []
        stop = threading.Event()

        def write() -> None:
            with connect(port) as app:
                i = 0
                while not stop.is_set():
                    try:
                        app.set(f"k{i}", i)
                    except (redis.RedisError, OSError):
                        return  # the node died: what was acknowledged so far is the record
                    acknowledged.append(i)
                    i += 1

        writer = threading.Thread(target=write)
        started = time.perf_counter()
        writer.start()
        time.sleep(seconds)
        pid = server.member_pids()[f"{cluster_id}/0001"]
        os.kill(pid, signal.SIGKILL)  # while the writer is writing
        elapsed = time.perf_counter() - started
        writer.join(10)
        stop.set()
        wait_for(lambda: server.member_pids().get(f"{cluster_id}/0001") not in (None, pid), "the node restarted")

        def serving() -> bool:
            try:
                with connect(port) as app:
                    return int(app.info("persistence")["loading"]) == 0 and bool(app.ping())
            except (redis.RedisError, OSError):
                return False

        wait_for(serving, "the restarted node to serve")
        with connect(port) as app:
            present = 0
            for start in range(0, len(acknowledged), 10_000):
                chunk = acknowledged[start : start + 10_000]
                present += sum(v is not None for v in app.mget([f"k{i}" for i in chunk]))
        return Trial(mode, len(acknowledged), len(acknowledged) - present, len(acknowledged) / elapsed)
    finally:
        client.delete_cache_cluster(CacheClusterId=cluster_id)
        wait_for(lambda: status(client, cluster_id) is None, f"{cluster_id} deleted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="writing time before the kill (default 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-aof-") as tmp:
        server = ServerProcess(Path(tmp) / "data")
        try:
            server.start()
            client = server.client()
            for mode, values in MODES.items():
                if values:
                    client.create_cache_parameter_group(
                        CacheParameterGroupName=f"pg-{mode}", CacheParameterGroupFamily="redis7", Description=mode
                    )
                    client.modify_cache_parameter_group(
                        CacheParameterGroupName=f"pg-{mode}",
                        ParameterNameValues=[{"ParameterName": k, "ParameterValue": v} for k, v in values.items()],
                    )
            for i in range(1, args.trials + 1):  # modes interleaved within each round
                for mode in MODES:
                    result = trial(server, client, mode, i, args.seconds)
                    results.append(result)
                    print(f"{mode} trial {i}: {result}", file=sys.stderr)
        finally:
            server.cleanup()
    header = f"{'mode':>9}  {'SET/s (1 client)':>18}  {'acknowledged':>20}  {'lost after kill -9':>20}"
    print(f"kill -9 of a node under one sequential writer after {args.seconds:g} s, {args.trials} trials\n")
    print(header)
    print("-" * len(header))
    summary = {}
    for mode in MODES:
        rows = [r for r in results if r.mode == mode]
        rate = statistics.median(r.rate for r in rows)
        acked = " / ".join(str(r.acknowledged) for r in rows)
        lost = " / ".join(str(r.lost) for r in rows)
        print(f"{mode:>9}  {rate:>18,.0f}  {acked:>20}  {lost:>20}")
        summary[mode] = {
            "median_rate": round(rate),
            "acknowledged": [r.acknowledged for r in rows],
            "lost": [r.lost for r in rows],
        }
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
