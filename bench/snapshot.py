"""Snapshot and restore of 1,000,000 keys: cachefleet against BGSAVE and redis-server by hand.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/snapshot.py --trials 3 [--keys 1000000] [--json]

Two comparisons, each trial alternating between the sides so that machine noise lands on both alike:

- **snapshot**: ``CreateSnapshot`` of a standalone cluster holding the keys, until
  ``DescribeSnapshots`` says ``available`` (the RDB saved by the node, streamed into the snapshot
  store with its sha256, fsynced); against ``BGSAVE`` on a plain ``redis-server`` holding the same
  keys, polled until ``rdb_bgsave_in_progress:0``, then a copy of its ``dump.rdb`` elsewhere.
- **restore**: ``CreateReplicationGroup(SnapshotName=..., NumCacheClusters=1)`` until
  ``DescribeReplicationGroups`` says ``available`` (the file verified, placed, the node loaded and
  serving behind its endpoint); against starting ``redis-server`` on the same RDB, already in its
  directory, until it answers ``PING`` with ``loading:0``.

The keys are made with ``DEBUG POPULATE`` (as the control plane's admin user on the cachefleet
side). Both sides poll every 10 ms. The run exits 0 whether or not the 1.3x target is met: it is a
measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.server import ADMIN_USER, ServerProcess

from bench._common import binaries, free_port, ratio_summary, unwind_on_sigterm
from bench._common import stop_process as _stop_process
from bench._common import wait_for as _wait_for
from cachefleet.engines.nodetypes import memory_bytes

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.01  # both sides look this often, so neither gains from a finer poll (--poll)
DEADLINE = 120.0
TARGET_RATIO = 1.3
STOP_WAIT = 10.0
NODE_TYPE = "cache.r7g.large"  # 13 GiB maxmemory: room for the keys, no eviction
VALUE_SIZE = 16  # DEBUG POPULATE's value size: "value:<n>" padded


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    _wait_for(predicate, what, timeout, _poll)  # --poll may change _poll


def stop(process: subprocess.Popen[bytes]) -> None:
    _stop_process(process, STOP_WAIT)


@dataclass(frozen=True)
class Trial:
    cachefleet: float
    raw: float


# -- waiting and clients ---------------------------------------------------------------------------


_poll = POLL_INTERVAL


def connect(port: int, user: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        username=user,
        password=password,
        socket_timeout=30,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def serving(port: int, user: str | None = None, password: str | None = None) -> bool:
    """PING answered and the dataset loaded (INFO is served while loading; PING is refused)."""
    try:
        with connect(port, user, password) as client:
            return bool(client.ping()) and int(client.info("persistence")["loading"]) == 0
    except (redis.RedisError, OSError):
        return False


# -- cachefleet side -------------------------------------------------------------------------------


def snapshot_status(client: Any, name: str) -> str | None:
    try:
        return str(client.describe_snapshots(SnapshotName=name)["Snapshots"][0]["SnapshotStatus"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "SnapshotNotFoundFault":
            return None
        raise


def group_status(client: Any, group_id: str) -> str | None:
    try:
        return str(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault":
            return None
        raise


def cluster_status(client: Any, cluster_id: str) -> str:
    return str(client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheClusterStatus"])


def cachefleet_snapshot(client: Any, name: str) -> float:
    t0 = time.perf_counter()
    client.create_snapshot(CacheClusterId="source", SnapshotName=name)
    wait_for(lambda: snapshot_status(client, name) == "available", f"snapshot {name}")
    elapsed = time.perf_counter() - t0
    # Untimed: the source back to available, and the snapshot gone, before the next trial.
    wait_for(lambda: cluster_status(client, "source") == "available", "the source cluster available")
    client.delete_snapshot(SnapshotName=name)
    wait_for(lambda: snapshot_status(client, name) is None, f"snapshot {name} deleted")
    return elapsed


def cachefleet_restore(client: Any, group_id: str, keys: int) -> float:
    t0 = time.perf_counter()
    client.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="bench",
        NumCacheClusters=1,
        SnapshotName="seed",
        CacheNodeType=NODE_TYPE,
    )
    try:
        wait_for(lambda: group_status(client, group_id) == "available", f"group {group_id}")
        elapsed = time.perf_counter() - t0
        group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
        port = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
        with connect(port) as app:
            loaded = app.dbsize()
        if loaded != keys:
            raise RuntimeError(f"restored group {group_id} holds {loaded} keys, not {keys}")
        return elapsed
    finally:
        client.delete_replication_group(ReplicationGroupId=group_id)
        wait_for(lambda: group_status(client, group_id) is None, f"group {group_id} deleted")


# -- raw side --------------------------------------------------------------------------------------


def start_redis(binary: str, node_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """A plain redis-server with the data-path settings cachefleet renders, no ACLs.

    ``maxmemory`` and ``maxmemory-policy volatile-lru`` as cachefleet sets them: with an LRU policy
    Redis stores each key's idle time in the RDB (2 MB more for 1M keys), so both sides save and
    load the same format.
    """
    conf = node_dir / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "daemonize no",
                'logfile ""',
                f"bind {LOOPBACK}",
                f"port {port}",
                "protected-mode no",
                f'dir "{node_dir}"',
                "dbfilename dump.rdb",
                'save ""',
                "appendonly no",
                f"maxmemory {memory_bytes(NODE_TYPE)}",
                "maxmemory-policy volatile-lru",
                "enable-debug-command local",
            ]
        )
        + "\n"
    )
    with (node_dir / "node.log").open("ab") as log:
        return subprocess.Popen(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=node_dir,
            start_new_session=True,
        )


def raw_snapshot(port: int, node_dir: Path, copy_to: Path) -> float:
    with connect(port) as client:
        t0 = time.perf_counter()
        saves = int(client.info("persistence")["rdb_saves"])
        client.bgsave(schedule=False)

        def done() -> bool:
            info = client.info("persistence")
            return int(info["rdb_saves"]) > saves and int(info["rdb_bgsave_in_progress"]) == 0

        wait_for(done, "the raw BGSAVE")
        if client.info("persistence")["rdb_last_bgsave_status"] != "ok":
            raise RuntimeError("the raw BGSAVE failed")
        shutil.copyfile(node_dir / "dump.rdb", copy_to)
        elapsed = time.perf_counter() - t0
    copy_to.unlink()
    return elapsed


def raw_restore(binary: str, seed: Path, root: Path, index: int, keys: int) -> float:
    node_dir = root / f"restore{index}"
    node_dir.mkdir()
    shutil.copyfile(seed, node_dir / "dump.rdb")  # untimed: the server starts "on the RDB"
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        process = start_redis(binary, node_dir, port)
        wait_for(lambda: serving(port), "the raw restore")
        elapsed = time.perf_counter() - t0
        with connect(port) as client:
            loaded = client.dbsize()
        if loaded != keys:
            raise RuntimeError(f"the raw restore holds {loaded} keys, not {keys}")
        return elapsed
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(node_dir, ignore_errors=True)


# -- reporting -------------------------------------------------------------------------------------


def summary(trials: list[Trial]) -> dict[str, Any]:
    times = {"cachefleet": [t.cachefleet for t in trials], "raw": [t.raw for t in trials]}
    return ratio_summary(times, TARGET_RATIO)


def table(title: str, left: str, right: str, trials: list[Trial], stats: dict[str, Any]) -> str:
    header = f"{'trial':>6}  {left:>22}  {right:>24}"
    rows = [title, "", header, "-" * len(header)]
    rows += [f"{i:>6}  {t.cachefleet:>22.3f}  {t.raw:>24.3f}" for i, t in enumerate(trials, 1)]
    rows.append("-" * len(header))
    for label in ("median", "min", "max"):
        rows.append(f"{label:>6}  {stats[f'cachefleet_{label}_s']:>22.3f}  {stats[f'raw_{label}_s']:>24.3f}")
    verdict = "met" if stats["target_met"] else "NOT met"
    rows.append(f"\ncachefleet / raw (medians): {stats['ratio']:.2f}x  (target <= {TARGET_RATIO}x: {verdict})")
    return "\n".join(rows)


# -- driver ----------------------------------------------------------------------------------------


def run(trials: int, keys: int) -> tuple[list[Trial], list[Trial], int]:
    binary = binaries("redis-server")["redis-server"]
    snapshots: list[Trial] = []
    restores: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-bench-") as tmp:
        root = Path(tmp)
        server = ServerProcess(root / "data")
        raw_dir = root / "raw"
        raw_dir.mkdir()
        raw_port = free_port()
        raw_process: subprocess.Popen[bytes] | None = None
        try:
            # Untimed set-up: both sides hold the same keys, and each has a seed RDB to restore.
            server.start()
            client = server.client()
            client.create_cache_cluster(CacheClusterId="source", Engine="redis", CacheNodeType=NODE_TYPE)
            wait_for(lambda: cluster_status(client, "source") == "available", "the source cluster")
            node = client.describe_cache_clusters(CacheClusterId="source", ShowCacheNodeInfo=True)["CacheClusters"][0]
            source_port = node["CacheNodes"][0]["Endpoint"]["Port"]
            with connect(source_port, ADMIN_USER, server.admin_password()) as admin:
                admin.execute_command("DEBUG", "POPULATE", keys, "key", VALUE_SIZE)
            raw_process = start_redis(binary, raw_dir, raw_port)
            wait_for(lambda: serving(raw_port), "the raw server")
            with connect(raw_port) as raw:
                raw.execute_command("DEBUG", "POPULATE", keys, "key", VALUE_SIZE)
            client.create_snapshot(CacheClusterId="source", SnapshotName="seed")
            wait_for(lambda: snapshot_status(client, "seed") == "available", "the seed snapshot")
            wait_for(lambda: cluster_status(client, "source") == "available", "the source cluster available")
            raw_snapshot(raw_port, raw_dir, root / "warm.rdb")  # the raw side's first save, untimed too
            seed_rdb = root / "seed.rdb"
            shutil.copyfile(raw_dir / "dump.rdb", seed_rdb)
            rdb_size = seed_rdb.stat().st_size

            for i in range(1, trials + 1):
                cf = cachefleet_snapshot(client, f"bench-{i}")
                raw_s = raw_snapshot(raw_port, raw_dir, root / f"copy-{i}.rdb")
                snapshots.append(Trial(cf, raw_s))
                print(f"snapshot trial {i}/{trials}: cachefleet {cf:.3f}s  raw {raw_s:.3f}s", file=sys.stderr)
            for i in range(1, trials + 1):
                cf = cachefleet_restore(client, f"restore{i}", keys)
                raw_r = raw_restore(binary, seed_rdb, root, i, keys)
                restores.append(Trial(cf, raw_r))
                print(f"restore trial {i}/{trials}: cachefleet {cf:.3f}s  raw {raw_r:.3f}s", file=sys.stderr)
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            if raw_process is not None:
                stop(raw_process)
            server.cleanup()  # the server and any node it recorded, by PID
    return snapshots, restores, rdb_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3, help="trials per side and comparison (default 3)")
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys made by DEBUG POPULATE (default 1M)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    parser.add_argument("--poll", type=float, default=POLL_INTERVAL, help="seconds between looks, both sides")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.keys < 1:
        parser.error("--trials and --keys must be at least 1")
    global _poll  # noqa: PLW0603 (one setting for every wait of the run)
    _poll = args.poll
    unwind_on_sigterm()
    snapshots, restores, rdb_size = run(args.trials, args.keys)
    snap_stats, restore_stats = summary(snapshots), summary(restores)
    print(f"{args.keys:,} keys (DEBUG POPULATE, {VALUE_SIZE}-byte values), RDB {rdb_size:,} bytes, ", end="")
    print(f"{args.trials} trials, polling every {args.poll * 1000:g} ms\n")
    print(table("Snapshot", "CreateSnapshot (s)", "BGSAVE + copy (s)", snapshots, snap_stats))
    print()
    print(table("Restore", "restore to available (s)", "redis-server serving (s)", restores, restore_stats))
    if args.json:
        print(json.dumps({"keys": args.keys, "rdb_bytes": rdb_size, "snapshot": snap_stats, "restore": restore_stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
