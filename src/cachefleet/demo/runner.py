"""The demo from start to end: server, Multi-AZ group, database, two app instances, two runs, report.

Flow of `run_demo`:

1. A server: the one given (`existing`), or our own ``cachefleet server`` in a fresh temp dir.
2. `CreateReplicationGroup` (Multi-AZ, automatic failover, 3 nodes); wait for ``available``.
3. The database, seeded (a fresh SQLite file unless a PostgreSQL URL is given).
4. Two app instances (`cachefleet.demo.instance`), each resolving the group through the API.
5. Run 1, cache off: the workload; the database queries it costs are the baseline.
6. Run 2, cache on, the same requests; halfway through, `TestFailover`. The primary's name is read
   from `DescribeReplicationGroups` before and after.
7. Checks: leaderboard scores against the acknowledged increments, cached products against the
   database, then the report.

Everything started is registered on an exit stack as it starts, so it is stopped by PID (and the
group deleted, if we created it) in reverse order whatever happens: an error, Ctrl-C, or SIGTERM,
which cancels the run like Ctrl-C does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cachefleet.demo.database import database_kind, default_query_cost, drop_tables, open_database, seed_database
from cachefleet.demo.fleet import Access, ApiAccess, DemoError, Group
from cachefleet.demo.narrate import Narrator
from cachefleet.demo.processes import Child, LocalServer, StartFailed
from cachefleet.demo.report import Report
from cachefleet.demo.workload import PhaseResult, WorkloadSpec, percentile, plan, run_phase

__all__ = ["DemoError", "DemoOptions", "Instances", "StartFailed", "run_demo", "start_instances"]

GROUP_TIMEOUT = 120.0
OWN_DELETE_TIMEOUT = 20.0
INSTANCE_TIMEOUT = 30.0
NEW_PRIMARY_TIMEOUT = 30.0
ENV_SECRET = "CACHEFLEET_DEMO_SESSION_SECRET"


@dataclass(frozen=True)
class DemoOptions:
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    database_url: str | None = None  # None: a fresh SQLite file in the work dir
    query_cost: float | None = None  # seconds per query; None: 10 ms for SQLite, 0 for PostgreSQL
    existing: ApiAccess | None = None  # a running server to use instead of starting one
    work_root: Path | None = None  # where the temp work dir goes (default: the system's)


@dataclass
class Instances:
    children: list[Child]
    urls: list[str]


async def start_instances(
    stack: contextlib.AsyncExitStack,
    run_dir: Path,
    *,
    count: int,
    database_url: str,
    query_cost: float | None,
    target: Sequence[str],
    env: dict[str, str],
    namespace: str = "products",
    board: str = "demo",
) -> Instances:
    """`count` app instances, each stopped by PID when `stack` closes; `target` is
    ``["--group-id", ID]`` or ``["--redis", "HOST:PORT"]``."""
    _prepare(run_dir)
    children: list[Child] = []
    ready_files: list[Path] = []
    full_env = {**os.environ, **env}
    for index in range(count):
        name = chr(ord("a") + index)
        ready = run_dir / f"instance-{name}.json"
        argv = [sys.executable, "-m", "cachefleet.demo.instance", "--name", name, "--ready-file", str(ready)]
        argv += ["--database-url", database_url, *target, "--namespace", namespace, "--board", board]
        if query_cost is not None:
            argv += ["--query-cost", repr(query_cost)]
        child = Child(argv, log=run_dir / f"instance-{name}.log", env=full_env)
        stack.callback(child.stop)
        children.append(child)
        ready_files.append(ready)
    urls = [await _wait_ready(child, ready) for child, ready in zip(children, ready_files, strict=True)]
    return Instances(children, urls)


def _prepare(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob("instance-*.json"):
        stale.unlink()


def _read_port(ready: Path) -> int | None:
    """The port an instance wrote to its ready file (written whole, by rename), or None yet."""
    try:
        return int(json.loads(ready.read_text())["port"])
    except FileNotFoundError:
        return None


async def _wait_ready(child: Child, ready: Path) -> str:
    deadline = time.monotonic() + INSTANCE_TIMEOUT
    url = ""
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise child.failed(f"app instance exited with {child.process.returncode}")
            port = None if url else _read_port(ready)
            if port is not None:
                url = f"http://127.0.0.1:{port}"
            if url:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url + "/healthz")).is_success:
                        return url
            await asyncio.sleep(0.05)
    raise child.failed(f"app instance did not answer within {INSTANCE_TIMEOUT:.0f} s")


async def _each(client: httpx.AsyncClient, urls: Sequence[str], method: str, path: str, **kw: Any) -> list[Any]:
    answers = []
    for url in urls:
        response = await client.request(method, url + path, **kw)
        response.raise_for_status()
        answers.append(response.json())
    return answers


def _delta(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, int]:
    """Summed over instances: queries and cache counters spent between the two /stats snapshots."""
    totals: dict[str, int] = {}
    for old, new in zip(before, after, strict=True):
        totals["db_queries"] = totals.get("db_queries", 0) + new["db_queries"] - old["db_queries"]
        for key, value in new["cache"].items():
            if key != "hit_rate":
                totals[key] = totals.get(key, 0) + value - old["cache"][key]
    return totals


async def _cleanup(narrator: Narrator, what: str, action: Callable[[], Awaitable[None]]) -> None:
    try:
        await action()
    except Exception as exc:  # cleanup goes on; the error that brought us here stays the one raised
        narrator.warn(f"cleanup: {what} failed: {exc!r}")


async def run_demo(
    options: DemoOptions,
    *,
    resolve_local: Callable[[Path], ApiAccess],
    narrator: Narrator | None = None,
) -> Report:
    """Run the demo; `resolve_local(data_dir)` reads the API access of the server we start ourselves."""
    narrator = narrator if narrator is not None else Narrator()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = False

    def on_sigterm() -> None:
        # Like Ctrl-C under asyncio.run: cancel the run, so the exit stack stops what it started.
        # A second SIGTERM cancels whichever cleanup step is waiting, moving on to the next.
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        async with contextlib.AsyncExitStack() as stack:
            return await _run(stack, options, resolve_local, narrator)
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(
    stack: contextlib.AsyncExitStack,
    options: DemoOptions,
    resolve_local: Callable[[Path], ApiAccess],
    narrator: Narrator,
) -> Report:
    started = time.monotonic()
    spec = options.workload
    work = Path(tempfile.mkdtemp(prefix="cachefleet-demo-", dir=options.work_root))
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    narrator.note(f"work dir: {work}", style="dim")

    if options.existing is not None:
        api = options.existing
        narrator.note(f"using the server at {api.endpoint_url}", style="dim")
    else:
        server = LocalServer(work / "server")
        stack.callback(server.stop)
        with narrator.step("starting cachefleet server"):
            await server.start()
        api = resolve_local(server.data_dir)

    if api.ca_file is None:
        raise DemoError("the server's CA (ca.pem in its data dir) was not found: pass --data-dir")
    name = f"demo-{secrets.token_hex(3)}"
    client = api.client()
    group = Group(client, name)
    access = Access(client, name)
    with narrator.step(f"creating the app's ACL user and user group {access.user_group}"):
        stack.push_async_callback(_cleanup, narrator, "deleting the users", access.delete)
        await access.create()
        await access.wait(within=GROUP_TIMEOUT)
    with narrator.step(f"creating Multi-AZ replication group {group.group_id} (3 nodes, TLS, RBAC)") as show:
        await group.create(access.user_group)

        # On our own server the nodes are killed by PID afterwards anyway, so a deletion that
        # hangs (say, after Ctrl-C in the middle of a failover) is not worth a long wait there.
        delete_within = GROUP_TIMEOUT if options.existing is not None else OWN_DELETE_TIMEOUT

        async def delete_group() -> None:
            with narrator.step(f"deleting {group.group_id}") as show_delete:
                await group.delete(within=delete_within, show=show_delete)

        stack.push_async_callback(_cleanup, narrator, "deleting the group", delete_group)
        await group.wait("available", within=GROUP_TIMEOUT, show=show)
        described = await group.describe() or {}

    database_url = options.database_url or f"sqlite:///{work / 'shop.db'}"
    kind = database_kind(database_url)
    query_cost = options.query_cost if options.query_cost is not None else default_query_cost(kind)
    with narrator.step(f"seeding {kind}: {spec.products} products, {spec.users} users"):
        if kind == "postgresql":  # registered first: a seeding cut short may leave tables behind
            stack.push_async_callback(_cleanup, narrator, "dropping the demo tables", lambda: drop_tables(database_url))
        await seed_database(database_url, products=spec.products, users=spec.users, seed=spec.seed)

    with narrator.step("starting two app instances"):
        env = {**api.env(), **access.env(), ENV_SECRET: secrets.token_urlsafe(32)}
        instances = await start_instances(
            stack,
            work / "instances",
            count=spec.instances,
            database_url=database_url,
            query_cost=query_cost,
            target=["--group-id", group.group_id],
            env=env,
        )
    narrator.note(f"app instances: {', '.join(instances.urls)}", style="dim")

    ops = plan(spec)
    async with httpx.AsyncClient(timeout=30.0) as admin:
        urls = instances.urls
        await _each(admin, urls, "PUT", "/admin/cache", json={"enabled": False})
        with narrator.step(f"run 1, cache off: {len(ops)} requests"):
            stats0 = await _each(admin, urls, "GET", "/stats")
            uncached = await run_phase("without cache", urls, ops, spec)
            stats1 = await _each(admin, urls, "GET", "/stats")

        await _each(admin, urls, "PUT", "/admin/cache", json={"enabled": True})
        primary_before = await group.primary()
        with narrator.step(f"run 2, cache on: {len(ops)} requests, TestFailover halfway") as show:

            async def failover() -> None:
                show(f"TestFailover on {group.group_id} (primary {primary_before})")
                await group.test_failover()

            cached = await run_phase("with cache", urls, ops, spec, midway=failover)
            stats2 = await _each(admin, urls, "GET", "/stats")
        primary_after = await group.wait_for_new_primary(primary_before, within=NEW_PRIMARY_TIMEOUT)

        with narrator.step("checking the leaderboard and the cached products"):
            board = (await _each(admin, urls[:1], "GET", "/leaderboard", params={"n": 100}))[0]["top"]
            stale = await _stale_products(admin, urls, database_url, [uncached, cached])

    without, with_cache = _delta(stats0, stats1), _delta(stats1, stats2)
    served = with_cache.get("hits", 0) + with_cache.get("stale_hits", 0) + with_cache.get("negative_hits", 0)
    lookups = served + with_cache.get("misses", 0)
    acked = _sum_scores([uncached.scores_acked, cached.scores_acked])
    scores = {entry["player"]: entry["score"] for entry in board}
    return Report(
        database=kind,
        db_query_cost_ms=round(query_cost * 1000, 3),
        products=spec.products,
        zipf_s=spec.zipf_s,
        requests_per_run=len(ops),
        db_queries_without_cache=without["db_queries"],
        db_queries_with_cache=with_cache["db_queries"],
        hit_rate=served / lookups if lookups else 0.0,
        read_p50_ms_without_cache=_ms(percentile(uncached.read_latencies, 50)),
        read_p99_ms_without_cache=_ms(percentile(uncached.read_latencies, 99)),
        read_p50_ms_with_cache=_ms(percentile(cached.read_latencies, 50)),
        read_p99_ms_with_cache=_ms(percentile(cached.read_latencies, 99)),
        requests_without_cache=uncached.sent,
        requests_with_cache=cached.sent,
        failed_requests_without_cache=uncached.failed,
        failed_requests_with_cache=cached.failed,
        session_moved=cached.session_moved(spec.session_user),
        session_updates_lost=cached.session_updates_lost(),
        leaderboard_top3=board[:3],
        leaderboard_points_lost=sum(max(0.0, total - scores.get(p, 0.0)) for p, total in acked.items()),
        failover_happened=primary_before is not None and primary_after not in (None, primary_before),
        primary_before=primary_before,
        primary_after=primary_after,
        cache_errors_served_by_db=with_cache.get("errors", 0),
        stale_products=stale,
        group_id=group.group_id,
        elapsed_s=round(time.monotonic() - started, 1),
        failure_samples=uncached.failures + cached.failures,
        transit_encryption=str(described.get("TransitEncryptionMode", "")),
        cache_user=access.app_user,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _sum_scores(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for player, points in part.items():
            total[player] = total.get(player, 0) + points
    return total


async def _stale_products(
    client: httpx.AsyncClient, urls: Sequence[str], database_url: str, phases: Sequence[PhaseResult]
) -> int:
    """Written products whose page (through the cache, on any instance) differs from the database."""
    written = sorted({pid for phase in phases for pid in phase.written})
    database = await open_database(database_url, query_cost=0.0)
    stale = 0
    try:
        for pid in written:
            row = await database.product(pid)
            pages = await _each(client, urls, "GET", f"/product/{pid}")
            if any(page != row for page in pages):
                stale += 1
    finally:
        await database.aclose()
    return stale
