"""Provisioning a 1-primary-2-replica group: cachefleet against the same three redis-servers by hand.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/provision.py --trials 7 [--multi-az] [--json] [--hosts 3]

Each trial times, on the cachefleet side, ``CreateReplicationGroup(NumCacheClusters=3)`` (with
``--multi-az``: ``AutomaticFailoverEnabled`` and ``MultiAZEnabled`` too, so three Sentinels must watch
the group before it is ``available``) until ``describe_replication_groups`` says ``available``; on
the floor side, starting three ``redis-server`` processes (by default the replicas, configured with
``replicaof``, once the primary listens) until both replicas report ``master_link_status:up``. Both
sides poll every 10 ms. Trials alternate between the sides so that machine noise lands on both
alike. The run exits 0 whether or not the 1.5x target is met: it is a
measurement, not a test.

It also prints the CPU each side spends per creation, split between the cachefleet server, this
bench's own polling and everything else (engines, HAProxy, kernel), from /proc: on a small machine
the time is bounded by the CPU there is, and this shows where it goes.

``--hosts 3`` (root) does the same on three ``cachefleet agent`` hosts in network namespaces, the
nodes placed one per host, against the same three redis-servers started by hand on those hosts:
``bench/provision_hosts.py`` says how.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.server import ServerProcess

from bench._common import binaries, machine_busy, process_cpu, ratio_summary, unwind_on_sigterm
from bench._common import wait_for as _wait_for

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.01  # both sides look this often, so neither gains from a finer poll
DEADLINE = 60.0  # any single wait; far above a normal sync, so hitting it means something broke
TARGET_RATIO = 1.5
STOP_WAIT = 5.0
# How often the gated floor tries the primary's port before starting the replicas. Finer than
# POLL_INTERVAL because it is a step of the floor's own procedure, not the "is it done" observation.
GATE_INTERVAL = 0.001
FLOOR_MODES = ("gated", "concurrent", "gated+endpoint")
# Untimed pause before each timed region: the processes the other side just stopped finish exiting
# (HAProxy's old worker, Redis shutdowns) instead of taking CPU from, and being counted in, this one.
SETTLE = 0.3


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = DEADLINE, interval: float = POLL_INTERVAL
) -> None:
    _wait_for(predicate, what, timeout, interval)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds spent during one timed region, from /proc (ticks of 1/CLK_TCK s, 10 ms here):
    by the whole machine (kernel included), by the cachefleet server, by this bench process, and by
    the host agents (``--hosts``; their nodes are not counted there)."""

    machine: float
    server: float
    bench: float
    agents: float = 0.0


@dataclass(frozen=True)
class Trial:
    cachefleet: float
    floor: float
    cachefleet_cpu: Cpu
    floor_cpu: Cpu


# -- CPU accounting ------------------------------------------------------------------------------


class CpuMeter:
    """CPU spent between ``start`` and ``stop`` by the machine, a server process, this process and
    the agent processes."""

    def __init__(self, server_pid: int | None, agent_pids: Sequence[int] = ()) -> None:
        self._server_pid = server_pid
        self._agent_pids = tuple(agent_pids)
        self._start = (0.0, 0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float, float]:
        server = process_cpu(self._server_pid) if self._server_pid is not None else 0.0
        agents = sum(process_cpu(pid) for pid in self._agent_pids)
        return machine_busy(), server, process_cpu(os.getpid()), agents

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> Cpu:
        end = self._now()
        machine, server, bench, agents = (b - a for a, b in zip(self._start, end, strict=True))
        return Cpu(machine=machine, server=server, bench=bench, agents=agents)


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


def time_cachefleet(
    client: Any, group_id: str, meter: CpuMeter, *, multi_az: bool, placement: Mapping[str, Any]
) -> tuple[float, Cpu]:
    """Seconds from the CreateReplicationGroup call to the first ``available`` seen by a poll.
    ``placement``: more parameters for the call (a subnet group and AZs, with ``--hosts``)."""
    failover = {"AutomaticFailoverEnabled": True, "MultiAZEnabled": True} if multi_az else {}
    meter.start()
    t0 = time.perf_counter()
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="bench",
        NumCacheClusters=3,
        **failover,
        **placement,
    )
    wait_for(lambda: group_status(client, group_id) == "available", f"{group_id} to become available")
    elapsed = time.perf_counter() - t0
    return elapsed, meter.stop()


def delete_group(client: Any, group_id: str) -> None:
    """Untimed: leave no nodes behind, so every trial starts from an empty fleet."""
    client.delete_replication_group(ReplicationGroupId=group_id)
    wait_for(lambda: group_status(client, group_id) is None, f"{group_id} to be deleted")


def cachefleet_trial(
    client: Any,
    index: int,
    meter: CpuMeter,
    *,
    multi_az: bool,
    placement: Mapping[str, Any] | None = None,
    check: Callable[[str], None] | None = None,
) -> tuple[float, Cpu]:
    """One timed creation, then (untimed) ``check(group_id)`` if given, then the deletion."""
    group_id = f"bench{index}"
    try:
        timed = time_cachefleet(client, group_id, meter, multi_az=multi_az, placement=placement or {})
        if check is not None:
            check(group_id)
        return timed
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


Node = tuple[str, int]  # a floor node's address and port


def floor_config(node: Node, data_dir: Path, primary: Node | None) -> str:
    """The data-path settings cachefleet renders (engines/redis.py), minus ACLs and maxmemory."""
    address, port = node
    lines = [
        "daemonize no",
        'logfile ""',
        f"bind {address}",
        f"port {port}",
        "protected-mode no",
        f'dir "{data_dir}"',
        'save ""',
        "appendonly no",
        "replica-read-only yes",
        # Without this Redis 7 waits 5 s before the initial full sync; cachefleet renders it too.
        "repl-diskless-sync-delay 0",
    ]
    if primary is not None:
        lines.append(f"replicaof {primary[0]} {primary[1]}")
    return "\n".join(lines) + "\n"


def write_configs(root: Path, nodes: list[Node]) -> list[Path]:
    """One node dir per node; the first node is the primary, the others replicate from it."""
    paths = []
    for i, node in enumerate(nodes):
        node_dir = root / f"node{i}"
        node_dir.mkdir()
        conf = node_dir / "redis.conf"
        conf.write_text(floor_config(node, node_dir, None if i == 0 else nodes[0]))
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


def accepts(port: int, address: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on ``address:port`` (loopback by default) now."""
    try:
        socket.create_connection((address, port), timeout=0.1).close()
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


def replica_client(port: int, address: str = LOOPBACK, *, decode: bool = False) -> redis.Redis:
    # Short timeouts and no retries: a poll must report what the node says now, as cachefleet's probe.
    return redis.Redis(
        host=address,
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode,
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


def endpoint_config(root: Path, port: int, nodes: list[int]) -> Path:
    """A hand-written HAProxy for the "gated+endpoint" floor: one frontend routing to the primary,
    master-worker mode and the admin socket, as cachefleet runs it (no health checks: nothing waits
    for them, only for the port to listen)."""
    conf = root / "haproxy.cfg"
    servers = [f"    server n{i} {LOOPBACK}:{node}{'' if i == 0 else ' disabled'}" for i, node in enumerate(nodes)]
    lines = [
        "global",
        "    httpclient.ssl.verify none",
        "    maxconn 4096",
        f"    stats socket unix@{root / 'admin.sock'} mode 600 level admin",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",
        "    timeout client 1h",
        "    timeout server 1h",
        "frontend fe_primary",
        f"    bind {LOOPBACK}:{port}",
        "    default_backend be_primary",
        "backend be_primary",
        *servers,
    ]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def start_endpoint(conf: Path) -> subprocess.Popen[bytes]:
    haproxy = binaries("haproxy")["haproxy"]
    with (conf.parent / "haproxy.log").open("ab") as log:
        return subprocess.Popen(
            [haproxy, "-W", "-db", "-f", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


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
    if mode == "gated+endpoint":
        processes.append(start_endpoint(endpoint_config(confs[0].parent.parent, ports[3], ports[:3])))
    if mode in ("gated", "gated+endpoint"):
        wait_for(lambda: accepts(ports[0]), f"floor primary on port {ports[0]}", interval=GATE_INTERVAL)
    for conf in confs[1:]:
        processes.append(start_redis(binary, conf))


def floor_trial(binary: str, mode: str, meter: CpuMeter) -> tuple[float, Cpu]:
    """Seconds from spawning the primary to both replicas reporting their link up (and, with
    "gated+endpoint", the endpoint listening)."""
    with tempfile.TemporaryDirectory(prefix="cachefleet-floor-") as tmp:
        ports = free_ports(4)  # the fourth is the endpoint's, used by "gated+endpoint" only
        confs = write_configs(Path(tmp), [(LOOPBACK, port) for port in ports[:3]])
        clients = [replica_client(port) for port in ports[1:3]]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            meter.start()
            t0 = time.perf_counter()
            start_floor(binary, confs, ports, mode, processes)
            # A replica's link is up only after a full sync from the primary, so this also waits
            # for the primary to accept connections.
            pending = list(clients)

            def all_up() -> bool:
                pending[:] = [c for c in pending if not link_up(c)]
                return not pending and (mode != "gated+endpoint" or accepts(ports[3]))

            wait_for(all_up, f"floor replicas on ports {ports[1:3]} to link")
            elapsed = time.perf_counter() - t0
            return elapsed, meter.stop()
        finally:
            for client in clients:
                client.close()
            stop_processes(processes)


# -- reporting -----------------------------------------------------------------------------------


def summary(trials: list[Trial]) -> dict[str, Any]:
    times = {"cachefleet": [t.cachefleet for t in trials], "floor": [t.floor for t in trials]}
    return {**ratio_summary(times, TARGET_RATIO), "cpu_ms_per_creation": _cpu_means(trials)}


def _cpu_means(trials: list[Trial]) -> dict[str, dict[str, float]]:
    """Mean CPU milliseconds per trial, by side and by consumer. A single trial spans only a few
    10 ms ticks, so only the mean over many trials says much."""
    means: dict[str, dict[str, float]] = {}
    for side in ("cachefleet", "floor"):
        cpus: list[Cpu] = [getattr(t, f"{side}_cpu") for t in trials]
        machine = statistics.fmean(c.machine for c in cpus) * 1000
        server = statistics.fmean(c.server for c in cpus) * 1000
        bench = statistics.fmean(c.bench for c in cpus) * 1000
        agents = statistics.fmean(c.agents for c in cpus) * 1000
        means[side] = {
            "machine": round(machine, 1),
            "server": round(server, 1),
            "bench": round(bench, 1),
            "agents": round(agents, 1),
            "rest": round(machine - server - bench - agents, 1),
        }
    return means


def table(trials: list[Trial], stats: dict[str, Any], *, agents: bool = False) -> str:
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
    cpu = stats["cpu_ms_per_creation"]
    rows.append("\nCPU per creation, mean ms (2 cores give 2 ms of CPU per ms of wall time):")
    rows.append(f"{'':>34}{'cachefleet':>12}{'floor':>8}")
    consumers = [
        ("machine", "whole machine"),
        ("server", "cachefleet server"),
        ("bench", "this bench (boto3 / redis-py polls)"),
        ("rest", "the rest (engines, HAProxy, kernel)"),
    ]
    if agents:
        consumers.insert(3, ("agents", "the three agents"))
    for key, label in consumers:
        rows.append(f"{label:>34}{cpu['cachefleet'][key]:>12.1f}{cpu['floor'][key]:>8.1f}")
    return "\n".join(rows)


# -- driver --------------------------------------------------------------------------------------


def run(trials: int, floor_mode: str, *, multi_az: bool) -> list[Trial]:
    binary = binaries("redis-server")["redis-server"]
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data")
        try:
            server.start()  # once, outside every timed region
            client = server.client()  # retries off (max_attempts=1): a failure must show, not hide
            assert server.process is not None
            cachefleet_meter, floor_meter = CpuMeter(server.process.pid), CpuMeter(None)
            for i in range(1, trials + 1):
                time.sleep(SETTLE)
                cf, cf_cpu = cachefleet_trial(client, i, cachefleet_meter, multi_az=multi_az)
                time.sleep(SETTLE)
                fl, fl_cpu = floor_trial(binary, floor_mode, floor_meter)
                print(f"trial {i}/{trials}: cachefleet {cf:.3f}s  floor {fl:.3f}s", file=sys.stderr)
                results.append(Trial(cf, fl, cf_cpu, fl_cpu))
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
        "--multi-az",
        action="store_true",
        help="create the group with AutomaticFailoverEnabled and MultiAZEnabled (three Sentinels watch it)",
    )
    parser.add_argument(
        "--hosts",
        type=int,
        choices=(3,),
        help="3: on three agent hosts in network namespaces, one node per host, against the same "
        "redis-servers by hand on those hosts (root; gated floor only)",
    )
    parser.add_argument(
        "--floor",
        choices=FLOOR_MODES,
        default="gated",
        help="gated (default): replicas start once the primary listens; concurrent: all three at once; "
        "gated+endpoint: gated, plus an HAProxy started beside the primary, done once it listens too",
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if args.hosts and args.floor != "gated":
        parser.error("--hosts runs the gated floor only")
    unwind_on_sigterm()
    if args.hosts:
        from bench import provision_hosts  # noqa: PLC0415 (root and namespaces only for --hosts)

        trials = provision_hosts.run(args.trials, multi_az=args.multi_az)
    else:
        trials = run(args.trials, args.floor, multi_az=args.multi_az)
    stats = {**summary(trials), "floor_mode": args.floor, "multi_az": args.multi_az, "hosts": args.hosts or 0}
    group = "Multi-AZ (3 Sentinels)" if args.multi_az else "no automatic failover"
    where = f", on {args.hosts} agent hosts (one node each)" if args.hosts else ""
    print(f"1 primary + 2 replicas, {group}{where}, {args.trials} trials, floor mode: {args.floor}\n")
    print(table(trials, stats, agents=bool(args.hosts)))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
