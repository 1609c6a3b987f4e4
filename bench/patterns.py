"""The application patterns, measured: cache-aside hit path, database queries saved, read latency.

Run from the repository root (``tests.support`` is not needed; ``cachefleet`` must be importable)::

    .venv/bin/python bench/patterns.py --trials 7 [--json]

Three measurements, each printed side by side:

1. **Hit path**: ``Cache.get_or_load`` on a warm key against a raw redis-py asyncio ``GET`` and
   ``json.loads`` of the same JSON bytes (the demo's product row), one operation at a time on the
   same client, against a plain ``redis-server`` started here on a free loopback port. Each trial
   alternates 20 short blocks of each side; the overhead is the median over trials of
   (raw ops/s / cache ops/s) - 1. Target: <= 10 %.
2. **Database queries for a Zipf workload**: ``--reads`` reads (20k) over ``--keys`` keys (10k),
   Zipf s = ``--zipf`` (1.1), through ``get_or_load`` whose loader queries the demo's SQLite
   database. Without a cache every read is a query. With it, a cold cache is filled by the run
   itself (its misses are bounded below by the number of distinct keys drawn), then a second run
   with another seed shows the warm cache. One seed per trial. Target: >= 90 % fewer.
3. **The demo's read endpoint**: two demo app instances (``cachefleet.demo.instance``, SQLite with
   the demo's artificial 10 ms per query, cache on the same plain redis-server) and the demo's
   workload restricted to ``GET /product/{id}`` (Zipf s=1.5 over 1000 products), ``--requests``
   per trial at ``--concurrency`` clients. Trials alternate cache off / cache on; the cache is
   warmed by one untimed pass first, so "with cache" is the steady state. p50 and p99 per trial,
   medians across trials.

Everything started here (redis-server, the two app instances) is stopped by PID on exit, Ctrl-C or
SIGTERM. The run exits 0 whether targets are met or not: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench._common import binaries, free_port, unwind_on_sigterm
from cachefleet.demo.database import default_query_cost, open_database, seed_database
from cachefleet.demo.processes import Child
from cachefleet.demo.runner import start_instances
from cachefleet.demo.workload import WorkloadSpec, Zipf, percentile, plan, run_phase
from cachefleet_client import Cache, CacheConnection

LOOPBACK = "127.0.0.1"
HIT_TARGET = 0.10
QUERY_TARGET = 0.90
ROUNDS = 20  # alternating blocks per hit-path trial


# -- processes -----------------------------------------------------------------------------------


async def start_redis(directory: Path) -> tuple[Child, str]:
    binary = binaries("redis-server")["redis-server"]
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    child = Child([*argv, "--dir", str(directory)], log=directory / "redis.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not child.alive():
            raise child.failed("redis-server exited")
        with contextlib.suppress(OSError):
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return child, f"{LOOPBACK}:{port}"
        await asyncio.sleep(0.02)
    child.stop()
    raise child.failed("redis-server did not listen")


# -- 1. hit path ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HitTrial:
    raw_ops: float
    cache_ops: float
    raw_cpu_us: float  # this process's CPU time per operation: unaffected by waiting for the CPU
    cache_cpu_us: float


async def hit_trials(address: str, trials: int, ops: int, database_url: str) -> list[HitTrial]:
    database = await open_database(database_url, query_cost=0.0)
    row = await database.product(1)
    await database.aclose()
    async with CacheConnection.from_endpoints(address) as connection:
        client = connection.reader
        cache = Cache(connection, namespace="benchhit")
        await client.set("bench:raw", json.dumps(row, separators=(",", ":")))

        async def load() -> Any:
            raise AssertionError("the key is warm: the loader must not run")

        await cache.set("product:1", row)

        async def raw(n: int) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                json.loads(await client.get("bench:raw"))
            return time.perf_counter() - t0, time.process_time() - c0

        async def cached(n: int) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                await cache.get_or_load("product:1", load)
            return time.perf_counter() - t0, time.process_time() - c0

        await raw(ops // 10)  # warm both paths (connections, scripts, version) off the clock
        await cached(ops // 10)
        results = []
        block = max(1, ops // ROUNDS)
        for i in range(trials):
            # Short alternating blocks, first side swapped each round: a burst of load from other
            # processes on this machine lands on both sides alike.
            times = {"raw": [0.0, 0.0], "cache": [0.0, 0.0]}  # wall, cpu
            for j in range(ROUNDS):
                order = [("raw", raw), ("cache", cached)]
                for name, side in order if (i + j) % 2 == 0 else reversed(order):
                    wall, cpu = await side(block)
                    times[name][0] += wall
                    times[name][1] += cpu
            n = block * ROUNDS
            trial = HitTrial(
                n / times["raw"][0], n / times["cache"][0], times["raw"][1] / n * 1e6, times["cache"][1] / n * 1e6
            )
            print(f"hit path trial {i + 1}/{trials}: {trial}", file=sys.stderr)
            results.append(trial)
        assert cache.stats.misses == 0
        return results


# -- 2. database queries for a Zipf workload -----------------------------------------------------


@dataclass(frozen=True)
class QueryTrial:
    seed: int
    without_cache: int
    cold: int
    warm: int
    distinct_cold: int


async def _zipf_pass(cache: Cache | None, database: Any, keys: list[int], concurrency: int) -> int:
    """Run the reads; returns the database queries they cost."""
    before = database.queries
    queue = iter(keys)

    async def worker() -> None:
        for key in queue:
            if cache is None:
                await database.product(key)
            else:
                await cache.get_or_load(f"product:{key}", lambda key=key: database.product(key))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return int(database.queries - before)


async def query_trials(
    address: str, database_url: str, *, trials: int, reads: int, keys: int, s: float
) -> list[QueryTrial]:
    zipf = Zipf(keys, s)
    database = await open_database(database_url, query_cost=0.0)
    results = []
    try:
        async with CacheConnection.from_endpoints(address) as connection:
            for i in range(trials):
                seed = 100 + i
                cold_keys = [zipf.sample(rng) for rng in [random.Random(seed)] for _ in range(reads)]
                warm_keys = [zipf.sample(rng) for rng in [random.Random(seed + 10_000)] for _ in range(reads)]
                cache = Cache(connection, namespace=f"benchzipf{seed}")
                without = await _zipf_pass(None, database, cold_keys, 16)
                cold = await _zipf_pass(cache, database, cold_keys, 16)
                warm = await _zipf_pass(cache, database, warm_keys, 16)
                trial = QueryTrial(seed, without, cold, warm, len(set(cold_keys)))
                print(f"zipf trial {i + 1}/{trials}: {trial}", file=sys.stderr)
                results.append(trial)
    finally:
        await database.aclose()
    return results


# -- 3. the demo's read endpoint -----------------------------------------------------------------


@dataclass(frozen=True)
class LatencyTrial:
    p50_off: float
    p99_off: float
    p50_on: float
    p99_on: float


async def latency_trials(
    address: str, work: Path, trials: int, requests: int, concurrency: int
) -> tuple[list[LatencyTrial], float]:
    spec = replace(
        WorkloadSpec(),
        requests=requests,
        concurrency=concurrency,
        write_ratio=0.0,
        score_ratio=0.0,
        board_ratio=0.0,
        session_ratio=0.0,
        time_limit=120.0,
    )
    database_url = f"sqlite:///{work / 'demo.db'}"
    await seed_database(database_url, products=spec.products, users=spec.users)
    cost = default_query_cost("sqlite")
    results = []
    async with contextlib.AsyncExitStack() as stack:
        instances = await start_instances(
            stack,
            work / "instances",
            count=2,
            database_url=database_url,
            query_cost=cost,
            target=["--redis", address],
            env={"CACHEFLEET_DEMO_SESSION_SECRET": "bench-" + "x" * 26},
        )
        urls = instances.urls
        async with httpx.AsyncClient(timeout=30) as admin:

            async def cache(enabled: bool) -> None:
                for url in urls:
                    (await admin.put(url + "/admin/cache", json={"enabled": enabled})).raise_for_status()

            async def measure(enabled: bool, seed: int) -> tuple[float, float]:
                await cache(enabled)
                trial_spec = replace(spec, seed=seed)
                result = await run_phase("bench", urls, plan(trial_spec), trial_spec)
                if result.failed:
                    raise RuntimeError(f"{result.failed} requests failed: {result.failures}")
                p50, p99 = percentile(result.read_latencies, 50), percentile(result.read_latencies, 99)
                assert p50 is not None
                assert p99 is not None
                return p50 * 1000, p99 * 1000

            await measure(True, seed=1)  # warm the cache (and both instances) off the record
            for i in range(trials):
                seed = 2 + i
                if i % 2 == 0:
                    off, on = await measure(False, seed), await measure(True, seed)
                else:
                    on, off = await measure(True, seed), await measure(False, seed)
                trial = LatencyTrial(off[0], off[1], on[0], on[1])
                print(
                    f"latency trial {i + 1}/{trials}: off p50 {off[0]:.2f} p99 {off[1]:.2f} ms; "
                    f"on p50 {on[0]:.2f} p99 {on[1]:.2f} ms",
                    file=sys.stderr,
                )
                results.append(trial)
    return results, cost


# -- reporting -----------------------------------------------------------------------------------


def summary(
    hits: list[HitTrial], queries: list[QueryTrial], latency: list[LatencyTrial], args: argparse.Namespace, cost: float
) -> dict[str, Any]:
    raw = statistics.median(t.raw_ops for t in hits)
    cached = statistics.median(t.cache_ops for t in hits)
    # The median of the per-trial ratios: each trial's two sides ran interleaved, under the same load.
    overhead = statistics.median(t.raw_ops / t.cache_ops for t in hits) - 1
    without = statistics.median(t.without_cache for t in queries)
    cold = statistics.median(t.cold for t in queries)
    warm = statistics.median(t.warm for t in queries)
    expected = Zipf(args.keys, args.zipf).expected_distinct(args.reads)
    return {
        "trials": args.trials,
        "hit_raw_ops_s": round(raw),
        "hit_cache_ops_s": round(cached),
        "hit_overhead": round(overhead, 4),
        "hit_raw_cpu_us": round(statistics.median(t.raw_cpu_us for t in hits), 1),
        "hit_cache_cpu_us": round(statistics.median(t.cache_cpu_us for t in hits), 1),
        "hit_target": HIT_TARGET,
        "hit_target_met": overhead <= HIT_TARGET,
        "zipf": {"reads": args.reads, "keys": args.keys, "s": args.zipf},
        "queries_without_cache": without,
        "queries_cold_cache": cold,
        "queries_warm_cache": warm,
        "reduction_cold": round(1 - cold / without, 4),
        "reduction_warm": round(1 - warm / without, 4),
        "expected_distinct_keys": round(expected),
        "best_possible_cold_reduction": round(1 - expected / args.reads, 4),
        "query_target": QUERY_TARGET,
        "query_target_met_cold": 1 - cold / without >= QUERY_TARGET,
        "query_target_met_warm": 1 - warm / without >= QUERY_TARGET,
        "endpoint": {"requests": args.requests, "concurrency": args.concurrency, "db_query_cost_ms": cost * 1000},
        "read_p50_ms_without_cache": round(statistics.median(t.p50_off for t in latency), 2),
        "read_p99_ms_without_cache": round(statistics.median(t.p99_off for t in latency), 2),
        "read_p50_ms_with_cache": round(statistics.median(t.p50_on for t in latency), 2),
        "read_p99_ms_with_cache": round(statistics.median(t.p99_on for t in latency), 2),
    }


def table(hits: list[HitTrial], queries: list[QueryTrial], latency: list[LatencyTrial], stats: dict[str, Any]) -> str:
    out = ["1. cache-aside hit path (ops/s, one at a time)", ""]
    out.append(
        f"{'trial':>6}  {'raw GET+json.loads':>18}  {'Cache.get_or_load':>17}  {'overhead':>8}  "
        f"{'raw CPU/op':>10}  {'cache CPU/op':>12}"
    )
    out += [
        f"{i:>6}  {t.raw_ops:>18,.0f}  {t.cache_ops:>17,.0f}  {t.raw_ops / t.cache_ops - 1:>8.1%}  "
        f"{t.raw_cpu_us:>8.1f}us  {t.cache_cpu_us:>10.1f}us"
        for i, t in enumerate(hits, 1)
    ]
    out.append(
        f"{'median':>6}  {stats['hit_raw_ops_s']:>18,}  {stats['hit_cache_ops_s']:>17,}  {'':>8}  "
        f"{stats['hit_raw_cpu_us']:>8.1f}us  {stats['hit_cache_cpu_us']:>10.1f}us"
    )
    verdict = "met" if stats["hit_target_met"] else "NOT met"
    out.append(f"overhead: {stats['hit_overhead']:.1%}  (target <= {HIT_TARGET:.0%}: {verdict})")

    z = stats["zipf"]
    out += ["", f"2. database queries, {z['reads']:,} reads over {z['keys']:,} keys, Zipf s={z['s']}", ""]
    out.append(f"{'seed':>6}  {'no cache':>9}  {'cold cache':>10}  {'distinct keys':>13}  {'warm cache':>10}")
    out += [
        f"{t.seed:>6}  {t.without_cache:>9,}  {t.cold:>10,}  {t.distinct_cold:>13,}  {t.warm:>10,}" for t in queries
    ]
    out.append(
        f"{'median':>6}  {stats['queries_without_cache']:>9,}  {stats['queries_cold_cache']:>10,}  "
        f"{'':>13}  {stats['queries_warm_cache']:>10,}"
    )
    cold_v = "met" if stats["query_target_met_cold"] else "NOT met"
    warm_v = "met" if stats["query_target_met_warm"] else "NOT met"
    out.append(
        f"fewer queries: cold {stats['reduction_cold']:.1%} ({cold_v}), warm {stats['reduction_warm']:.1%} "
        f"({warm_v}); target >= {QUERY_TARGET:.0%}; best possible cold: {stats['best_possible_cold_reduction']:.1%}"
    )

    e = stats["endpoint"]
    out += [
        "",
        f"3. GET /product/{{id}} of the demo app (2 instances, {e['requests']} requests per trial, "
        f"{e['concurrency']} clients, +{e['db_query_cost_ms']:g} ms per query), ms",
        "",
    ]
    out.append(f"{'trial':>6}  {'off p50':>8}  {'on p50':>8}  {'off p99':>8}  {'on p99':>8}")
    out += [
        f"{i:>6}  {t.p50_off:>8.2f}  {t.p50_on:>8.2f}  {t.p99_off:>8.2f}  {t.p99_on:>8.2f}"
        for i, t in enumerate(latency, 1)
    ]
    out.append(
        f"{'median':>6}  {stats['read_p50_ms_without_cache']:>8.2f}  {stats['read_p50_ms_with_cache']:>8.2f}  "
        f"{stats['read_p99_ms_without_cache']:>8.2f}  {stats['read_p99_ms_with_cache']:>8.2f}"
    )
    return "\n".join(out)


# -- driver --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cachefleet-bench-patterns-") as tmp:
        work = Path(tmp)
        redis_child, address = await start_redis(work)
        try:
            database_url = f"sqlite:///{work / 'zipf.db'}"
            await seed_database(database_url, products=args.keys, users=1)
            hits = await hit_trials(address, args.trials, args.ops, database_url)
            queries = await query_trials(
                address, database_url, trials=args.query_trials, reads=args.reads, keys=args.keys, s=args.zipf
            )
            latency, cost = await latency_trials(address, work, args.trials, args.requests, args.concurrency)
        finally:
            redis_child.stop()
    stats = summary(hits, queries, latency, args, cost)
    print(table(hits, queries, latency, stats))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=7, help="trials for the hit path and latency (default 7)")
    parser.add_argument("--ops", type=int, default=10_000, help="operations per side per hit-path trial")
    parser.add_argument("--query-trials", type=int, default=3, help="seeds for the Zipf query count (default 3)")
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--requests", type=int, default=1000, help="GET /product requests per latency trial")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients for the latency trials")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if min(args.trials, args.ops, args.query_trials, args.reads, args.keys, args.requests, args.concurrency) < 1:
        parser.error("counts must be at least 1")
    unwind_on_sigterm()
    stats = asyncio.run(run(args))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
