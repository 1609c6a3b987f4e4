"""Provisioning a 1-primary-2-replica group: cachefleet against the same three redis-servers by hand.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/provision.py --trials 7 [--json]

Each trial times, on the cachefleet side, ``CreateReplicationGroup(NumCacheClusters=3)`` until
``describe_replication_groups`` says ``available``; on the floor side, starting three ``redis-server``
processes (by default the replicas, configured with ``replicaof``, once the primary listens) until both
replicas report ``master_link_status:up``. Both sides poll every 10 ms. Trials alternate between the sides so that
machine noise lands on both alike. The run exits 0 whether or not the 1.5x target is met: it is a
measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
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
from tests.support.server import ServerProcess

from bench._common import unwind_on_sigterm
from bench._common import wait_for as _wait_for

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.01  # both sides look this often, so neither gains from a finer poll
DEADLINE = 60.0  # any single wait; far above a normal sync, so hitting it means something broke
TARGET_RATIO = 1.5
STOP_WAIT = 5.0
# How often the gated floor tries the primary's port before starting the replicas. Finer than
# POLL_INTERVAL because it is a step of the floor's own procedure, not the "is it done" observation.
GATE_INTERVAL = 0.001
FLOOR_MODES = ("gated", "concurrent")


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = DEADLINE, interval: float = POLL_INTERVAL
) -> None:
    _wait_for(predicate, what, timeout, interval)


@dataclass(frozen=True)
class Trial:
    cachefleet: float
    floor: float


# -- waiting -------------------------------------------------------------------------------------


# -- cachefleet side -----------------------------------------------------------------------------


def group_status(client: Any, group_id: str) -> str | None:
    """The group's Status, or None once it no longer exists."""
    try:
        groups = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault":
            return None
        raise
    return str(groups[0]["Status"]) if groups else None


def time_cachefleet(client: Any, group_id: str) -> float:
    """Seconds from the CreateReplicationGroup call to the first ``available`` seen by a poll."""
    t0 = time.perf_counter()
    client.create_replication_group(
        ReplicationGroupId=group_id, ReplicationGroupDescription="bench", NumCacheClusters=3
    )
    wait_for(lambda: group_status(client, group_id) == "available", f"{group_id} to become available")
    return time.perf_counter() - t0


def delete_group(client: Any, group_id: str) -> None:
    """Untimed: leave no nodes behind, so every trial starts from an empty fleet."""
    client.delete_replication_group(ReplicationGroupId=group_id)
    wait_for(lambda: group_status(client, group_id) is None, f"{group_id} to be deleted")


def cachefleet_trial(client: Any, index: int) -> float:
    group_id = f"bench{index}"
    try:
        return time_cachefleet(client, group_id)
    finally:
        delete_group(client, group_id)


# -- floor side ----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports the kernel says are free now: all bound at once, then released."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def floor_config(port: int, data_dir: Path, primary_port: int | None) -> str:
    """The data-path settings cachefleet renders (engines/redis.py), minus ACLs and maxmemory."""
    lines = [
        "daemonize no",
        'logfile ""',
        f"bind {LOOPBACK}",
        f"port {port}",
        "protected-mode no",
        f'dir "{data_dir}"',
        'save ""',
        "appendonly no",
        "replica-read-only yes",
        # Without this Redis 7 waits 5 s before the initial full sync; cachefleet renders it too.
        "repl-diskless-sync-delay 0",
    ]
    if primary_port is not None:
        lines.append(f"replicaof {LOOPBACK} {primary_port}")
    return "\n".join(lines) + "\n"


def write_configs(root: Path, ports: list[int]) -> list[Path]:
    """One node dir per port; the first port is the primary, the others replicate from it."""
    paths = []
    for i, port in enumerate(ports):
        node_dir = root / f"node{i}"
        node_dir.mkdir()
        conf = node_dir / "redis.conf"
        conf.write_text(floor_config(port, node_dir, None if i == 0 else ports[0]))
        paths.append(conf)
    return paths


def start_redis(binary: str, conf: Path) -> subprocess.Popen[bytes]:
    # Own session, as cachefleet's host driver does, so Ctrl-C reaches only us; we stop it by PID.
    with (conf.parent / "node.log").open("ab") as log:
        return subprocess.Popen(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=conf.parent,
            start_new_session=True,
        )


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port`` now."""
    try:
        socket.create_connection((LOOPBACK, port), timeout=0.1).close()
    except OSError:
        return False
    return True


def link_up(client: redis.Redis) -> bool:
    """Whether this replica reports master_link_status:up; not reachable yet counts as not up."""
    try:
        info = client.info("replication")
    except (redis.RedisError, OSError):
        return False  # expected while the process is still starting
    return info.get("master_link_status") == "up"


def replica_client(port: int) -> redis.Redis:
    # Short timeouts and no retries: a poll must report what the node says now, as cachefleet's probe.
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each by PID, then SIGKILL what did not exit; Popen has not reaped them, so PIDs are ours."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_WAIT)


def start_floor(
    binary: str, confs: list[Path], ports: list[int], mode: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Spawn primary then replicas into ``processes``, a list the caller cleans up, so no PID escapes.

    A replica whose first connect finds the primary not yet listening retries only on its next
    once-a-second replication cron, so spawning all three at once ("concurrent") races and costs
    either ~0 s or ~1 s. "gated" starts the replicas the moment the primary accepts connections,
    as a careful operator would: the fastest the same three processes can get there.
    """
    processes.append(start_redis(binary, confs[0]))
    if mode == "gated":
        wait_for(lambda: accepts(ports[0]), f"floor primary on port {ports[0]}", interval=GATE_INTERVAL)
    for conf in confs[1:]:
        processes.append(start_redis(binary, conf))


def floor_trial(binary: str, mode: str) -> float:
    """Seconds from spawning the primary to both replicas reporting their link up."""
    with tempfile.TemporaryDirectory(prefix="cachefleet-floor-") as tmp:
        ports = free_ports(3)
        confs = write_configs(Path(tmp), ports)
        clients = [replica_client(port) for port in ports[1:]]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            t0 = time.perf_counter()
            start_floor(binary, confs, ports, mode, processes)
            # A replica's link is up only after a full sync from the primary, so this also waits
            # for the primary to accept connections.
            pending = list(clients)

            def all_up() -> bool:
                pending[:] = [c for c in pending if not link_up(c)]
                return not pending

            wait_for(all_up, f"floor replicas on ports {ports[1:]} to link")
            return time.perf_counter() - t0
        finally:
            for client in clients:
                client.close()
            stop_processes(processes)


# -- reporting -----------------------------------------------------------------------------------


def summary(trials: list[Trial]) -> dict[str, Any]:
    cf = [t.cachefleet for t in trials]
    fl = [t.floor for t in trials]
    ratio = statistics.median(cf) / statistics.median(fl)
    return {
        "trials": len(trials),
        "cachefleet_median_s": round(statistics.median(cf), 4),
        "floor_median_s": round(statistics.median(fl), 4),
        "cachefleet_min_s": round(min(cf), 4),
        "cachefleet_max_s": round(max(cf), 4),
        "floor_min_s": round(min(fl), 4),
        "floor_max_s": round(max(fl), 4),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
    }


def table(trials: list[Trial], stats: dict[str, Any]) -> str:
    header = f"{'trial':>6}  {'cachefleet (s)':>14}  {'floor (s)':>10}"
    rows = [header, "-" * len(header)]
    rows += [f"{i:>6}  {t.cachefleet:>14.3f}  {t.floor:>10.3f}" for i, t in enumerate(trials, 1)]
    rows.append("-" * len(header))
    for label in ("median", "min", "max"):
        cf, fl = stats[f"cachefleet_{label}_s"], stats[f"floor_{label}_s"]
        rows.append(f"{label:>6}  {cf:>14.3f}  {fl:>10.3f}")
    verdict = "met" if stats["target_met"] else "NOT met"
    target = f"target <= {TARGET_RATIO}x: {verdict}"
    rows.append(f"\ncachefleet / floor (medians): {stats['ratio']:.2f}x  ({target})")
    return "\n".join(rows)


# -- driver --------------------------------------------------------------------------------------


def run(trials: int, floor_mode: str) -> list[Trial]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH")
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data")
        try:
            server.start()  # once, outside every timed region
            client = server.client()  # retries off (max_attempts=1): a failure must show, not hide
            for i in range(1, trials + 1):
                cf = cachefleet_trial(client, i)
                fl = floor_trial(binary, floor_mode)
                print(f"trial {i}/{trials}: cachefleet {cf:.3f}s  floor {fl:.3f}s", file=sys.stderr)
                results.append(Trial(cf, fl))
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.cleanup()  # the server and any node it recorded, by PID
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=7, help="trials per side (default 7)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    parser.add_argument(
        "--floor",
        choices=FLOOR_MODES,
        default="gated",
        help="gated (default): replicas start once the primary listens; concurrent: all three at once",
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    unwind_on_sigterm()
    trials = run(args.trials, args.floor)
    stats = {**summary(trials), "floor_mode": args.floor}
    print(f"1 primary + 2 replicas, {args.trials} trials, floor mode: {args.floor}\n")
    print(table(trials, stats))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
