"""Memcached: our cluster client against pymemcache's HashClient, a node against a hand-started
memcached, and the share of keys that move when a node is added. Side by side, in one run.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/memcached.py --trials 5 [--json]

One ``cachefleet server`` and one Memcached cluster (``NumCacheNodes=3``, ``cache.t4g.micro``) serve
the whole run.

1. **Client throughput.** ``cachefleet_client.memcached.MemcachedClient``, bootstrapped from the
   cluster's configuration endpoint, against pymemcache's ``HashClient`` given the three node
   addresses by hand (its default hashing, default options). One thread each, one command at a
   time: ``--ops`` sets of 100-byte values over as many keys, then as many gets. Target: ours at
   0.9x of HashClient's throughput or better.
2. **Node throughput.** ``memcaslap`` (libmemcached-tools: 2 threads, 32 connections, 90 % get,
   10 % set, 64-byte values, ``--seconds`` each) against node 0001 of the cluster (flushed first)
   and against a ``memcached`` this script starts by hand with the very argv the node runs with
   (read from ``/proc``), on another port. Target: 0.95x or better.
3. **Keys remapped when a node is added.** 100,000 keys; the client's node for each before and
   after ``ModifyCacheCluster NumCacheNodes=N+1`` on a cluster of N (N = 3: the cluster above; N =
   10: a second cluster), the client following the configuration endpoint. Target: at most
   1.2/(N+1). The ring alone (no processes) is also measured for N = 20 and 39.

Trials alternate the two sides (the order flips every trial); tables show medians and the spread.
The machine is shared with other work: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymemcache.client.hash import HashClient
from tests.support.server import ServerProcess

from bench._common import LOOPBACK, binaries, free_port, stop_process, unwind_on_sigterm, wait_for
from cachefleet_client.memcached import KetamaRing, MemcachedClient

CLUSTER = "bench-mc"
VALUE = b"v" * 100
KEYS_FOR_REMAP = 100_000
TARGET_CLIENT = 0.9
TARGET_NODE = 0.95


def ratio(ours: list[float], theirs: list[float]) -> dict[str, Any]:
    """Throughputs (higher is better): medians, spread, and ours/theirs of the medians."""
    return {
        "trials": len(ours),
        "ours_median": round(statistics.median(ours)),
        "theirs_median": round(statistics.median(theirs)),
        "ours_min": round(min(ours)),
        "ours_max": round(max(ours)),
        "theirs_min": round(min(theirs)),
        "theirs_max": round(max(theirs)),
        "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
    }


# -- the cluster -------------------------------------------------------------------------------


def create_cluster(server: ServerProcess, cluster_id: str, nodes: int) -> list[tuple[str, int]]:
    client = server.client()
    client.create_cache_cluster(
        CacheClusterId=cluster_id, Engine="memcached", NumCacheNodes=nodes, CacheNodeType="cache.t4g.micro"
    )
    wait_for(lambda: available(server, cluster_id), f"cluster {cluster_id} to be available", timeout=120)
    return node_addresses(server, cluster_id)


def available(server: ServerProcess, cluster_id: str) -> bool:
    cluster = server.client().describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]
    return bool(cluster["CacheClusterStatus"] == "available")


def node_addresses(server: ServerProcess, cluster_id: str) -> list[tuple[str, int]]:
    described = server.client().describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    return [(n["Endpoint"]["Address"], int(n["Endpoint"]["Port"])) for n in described["CacheClusters"][0]["CacheNodes"]]


def configuration_endpoint(server: ServerProcess, cluster_id: str) -> tuple[str, int]:
    cluster = server.client().describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]
    endpoint = cluster["ConfigurationEndpoint"]
    return endpoint["Address"], int(endpoint["Port"])


@contextmanager
def hand_started(argv: list[str], work: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (work / f"memcached-{argv[argv.index('-p') + 1]}.log").open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True, cwd=work)
    log.close()
    try:
        port = int(argv[argv.index("-p") + 1])
        wait_for(lambda: stats_ok(port), f"memcached on {port}", timeout=30)
        yield process
    finally:
        stop_process(process)


def stats_ok(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as conn:
            conn.sendall(b"version\r\n")
            return conn.recv(64).startswith(b"VERSION ")
    except OSError:
        return False


# -- 1. client throughput ------------------------------------------------------------------------


def client_rates(client: Any, ops: int, prefix: str) -> tuple[float, float]:
    """(sets per second, gets per second), one command at a time."""
    keys = [f"{prefix}:{i}" for i in range(ops)]
    start = time.perf_counter()
    for key in keys:
        client.set(key, VALUE, noreply=False)
    sets = ops / (time.perf_counter() - start)
    start = time.perf_counter()
    for key in keys:
        if client.get(key) is None:
            raise RuntimeError(f"{key} missing")
    gets = ops / (time.perf_counter() - start)
    return sets, gets


def bench_clients(endpoint: tuple[str, int], nodes: list[tuple[str, int]], trials: int, ops: int) -> dict[str, Any]:
    ours = MemcachedClient(endpoint)
    theirs = HashClient(nodes)
    rates: dict[str, list[float]] = {"ours_set": [], "ours_get": [], "theirs_set": [], "theirs_get": []}
    try:
        for trial in range(trials):
            sides: list[tuple[str, Any]] = [("ours", ours), ("theirs", theirs)]
            for name, client in sides if trial % 2 == 0 else sides[::-1]:
                sets, gets = client_rates(client, ops, f"{name}{trial}")
                rates[f"{name}_set"].append(sets)
                rates[f"{name}_get"].append(gets)
    finally:
        ours.close()
        theirs.close()
    return {
        "set": ratio(rates["ours_set"], rates["theirs_set"]),
        "get": ratio(rates["ours_get"], rates["theirs_get"]),
    }


# -- 2. node throughput --------------------------------------------------------------------------

_TPS = re.compile(r"Run time: [\d.]+s Ops: \d+ TPS: (\d+)")


def memaslap(binary: str, port: int, seconds: int) -> float:
    argv = [binary, "-s", f"{LOOPBACK}:{port}", "-T", "2", "-c", "32", "-t", f"{seconds}s", "-X", "64"]
    done = subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=False, stdin=subprocess.DEVNULL)
    match = _TPS.search(done.stdout.decode(errors="replace"))
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"memaslap failed ({done.returncode}): {done.stdout[-300:]!r} {done.stderr[-300:]!r}")
    return float(match.group(1))


def node_argv(server: ServerProcess) -> list[str]:
    pid = server.member_pids()[f"{CLUSTER}/0001"]
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def bench_node(
    server: ServerProcess, node_port: int, work: Path, *, trials: int, seconds: int, memaslap_binary: str
) -> dict[str, Any]:
    argv = node_argv(server)
    port = free_port()
    hand = [*argv]
    hand[hand.index("-p") + 1] = str(port)
    tps: dict[str, list[float]] = {"ours": [], "theirs": []}
    # Both start empty: section 1 left items on the cluster's node.
    with socket.create_connection((LOOPBACK, node_port), timeout=5) as conn:
        conn.sendall(b"flush_all\r\n")
        conn.recv(64)
    with hand_started(hand, work):
        for trial in range(trials):
            sides = [("ours", node_port), ("theirs", port)]
            for name, target in sides if trial % 2 == 0 else sides[::-1]:
                tps[name].append(memaslap(memaslap_binary, target, seconds))
    return {"argv": " ".join(argv[1:]), **ratio(tps["ours"], tps["theirs"])}


# -- 3. remapped keys ----------------------------------------------------------------------------


def bench_remap(server: ServerProcess, cluster_id: str) -> dict[str, Any]:
    """The share of keys whose node changes when the cluster gets one node more (through the API)."""
    client = MemcachedClient(configuration_endpoint(server, cluster_id), poll_interval=3600)
    try:
        keys = [f"remap:{i}" for i in range(KEYS_FOR_REMAP)]
        before = [client.node_for(k) for k in keys]
        count = len(client.nodes)
        api = server.client()
        api.modify_cache_cluster(CacheClusterId=cluster_id, NumCacheNodes=count + 1, ApplyImmediately=True)
        wait_for(lambda: client.refresh() or len(client.nodes) == count + 1, "the client to see the new node", 60)
        share = sum(1 for k, b in zip(keys, before, strict=True) if client.node_for(k) != b) / len(keys)
    finally:
        client.close()
    return {
        "nodes": count,
        "share": round(share, 4),
        "ideal": round(1 / (count + 1), 4),
        "target": round(1.2 / (count + 1), 4),
        "target_met": share <= 1.2 / (count + 1),
    }


def ring_only(count: int) -> float:
    """The same measurement on the ring alone (no processes), for larger N."""
    nodes = [f"10.0.0.{i}:11211" for i in range(count)]
    before, after = KetamaRing(nodes), KetamaRing([*nodes, "10.0.1.1:11211"])
    keys = [f"remap:{i}" for i in range(KEYS_FOR_REMAP)]
    return sum(1 for k in keys if before.get_node(k) != after.get_node(k)) / len(keys)


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--ops", type=int, default=20_000, help="sets (then gets) per client per trial")
    parser.add_argument("--seconds", type=int, default=3, help="memaslap run time per trial")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    unwind_on_sigterm()
    found = binaries("memcaslap")
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memcached-") as tmp:
        work = Path(tmp)
        server = ServerProcess(work / "cf")
        try:
            server.start()
            nodes = create_cluster(server, CLUSTER, 3)
            report["client"] = bench_clients(configuration_endpoint(server, CLUSTER), nodes, args.trials, args.ops)
            report["node"] = bench_node(
                server, nodes[0][1], work, trials=args.trials, seconds=args.seconds, memaslap_binary=found["memcaslap"]
            )
            create_cluster(server, f"{CLUSTER}-10", 10)
            report["remap"] = [bench_remap(server, CLUSTER), bench_remap(server, f"{CLUSTER}-10")]
            report["remap_ring_only"] = {n: round(ring_only(n), 4) for n in (20, 39)}
        finally:
            server.cleanup()
    print_report(report)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0


def print_report(report: dict[str, Any]) -> None:
    print("1. client throughput, ops/s (one thread, one command at a time; median of trials)")
    print(f"   {'':4} {'MemcachedClient':>16} {'HashClient':>12} {'ratio':>7}  target >= {TARGET_CLIENT}")
    for op in ("set", "get"):
        r = report["client"][op]
        print(f"   {op:4} {r['ours_median']:>16,} {r['theirs_median']:>12,} {r['ratio']:>7.3f}")
    r = report["node"]
    print("2. node throughput, memaslap TPS (90% get / 10% set; median of trials)")
    print(f"   {'cachefleet node':>16} {'hand-started':>12} {'ratio':>7}  target >= {TARGET_NODE}")
    print(f"   {r['ours_median']:>16,} {r['theirs_median']:>12,} {r['ratio']:>7.3f}")
    print(f"   flags: {r['argv']}")
    print("3. share of keys remapped when one node joins N")
    for r in report["remap"]:
        print(f"   N={r['nodes']:<3} {r['share']:.4f}  (ideal {r['ideal']:.4f}, target <= {r['target']:.4f})")
    for n, share in report["remap_ring_only"].items():
        print(f"   N={n:<3} {share:.4f}  (ring only; target <= {1.2 / (n + 1):.4f})")


if __name__ == "__main__":
    sys.exit(main())
