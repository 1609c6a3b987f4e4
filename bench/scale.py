"""What an installation costs as Multi-AZ groups are added, against a floor of the same redis-servers by hand.

Run from the repository root (``tests.support`` must be importable), under the bench lock::

    flock /work/helpers/bench.lock env PYTHONPATH=. .venv/bin/python bench/scale.py --steps 1,50,200 [--json]

One ``cachefleet server`` serves the whole run. At each step the fleet grows to N replication groups
(``NumCacheClusters=3, AutomaticFailoverEnabled, MultiAZEnabled``): all but the last few are created
in concurrent batches and waited for, the last ones one at a time, each timed from the
``CreateReplicationGroup`` call to the first ``available`` a ``DescribeReplicationGroups`` poll
(every 20 ms) sees (a step that adds fewer groups than ``--timed``, the first, times the others on
groups it deletes again after each). Then, with nothing asked of it:

- idle CPU over a window after a settle period, from /proc: the server's (of one core), the whole
  machine's (of all its cores) and the sum over the installation's own processes (server, Sentinels,
  HAProxy, redis-servers), which other users of a shared machine do not disturb;
- RSS of the server and of the whole installation;
- Describe-one (``DescribeReplicationGroups`` with an id) and Describe-all-page (no id, the first page
  of 100) latency, p50 and p99, as boto3 sees it (retries off);
- heal time: a replica's redis-server is killed with SIGKILL by PID; healed when its pidfile names a
  new live process whose replication link is up.

At each step a fresh server is also started beside the installation (``--no-beside`` skips it): one
group of its own first, then as many timed creations and Describe-one calls as the installation got.
It shares the machine and its load with the installation but has none of the control plane's work for
the installation's groups, so the ratio of the two tells the control plane's share of what grows with
the installation from the machine's. Then the same creation by hand (``bench/hand_sentinels.py``):
three redis-servers and a join to three Sentinels of its own, timed as many times, with no control
plane at all: its growth from the first step is what the machine alone does to a creation.

After the last step the installation is stopped (every process by PID) and the floor is measured for
each step in the same run: 3N redis-servers started by hand, a primary and two replicas per group
(the data-path settings cachefleet renders, ``hz 10``), with no control plane, Sentinel or endpoint,
idle over the same settle period and window; then the same groups watched by Sentinels by hand, in
sets as the installation's (``--sentinel-set-size``), each told its groups' replicas and peers in its
file, idle again (``--no-floor-sentinels`` skips it): what three Sentinels on every node cost with no
control plane or proxy.

Memory guard: before each creation the machine's ``MemAvailable`` is checked; under
``--min-available-mib`` the step stops where it is, says so, is measured with the groups it has, and
no further step runs. Every process started (the server, its nodes, the floor) is stopped by PID,
also on Ctrl-C or SIGTERM. The run exits 0 whether or not the targets are met: it is a measurement.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from tests.support.server import ServerProcess, is_alive

from bench import hand_sentinels
from bench._common import binaries, machine_busy, process_cpu, unwind_on_sigterm
from bench._common import wait_for as _wait_for
from bench.provision import LOOPBACK, free_ports, link_up, replica_client, start_floor, stop_processes, write_configs
from cachefleet.settings import Settings

DEFAULT_STEPS = "1,50,200"
NODE_TYPE = "cache.t4g.micro"
POLL = 0.02  # the creation poll: finer than Sentinel's or the reconciler's own steps
DEADLINE = 180.0  # any single wait; hitting it means something broke
CPUS = os.cpu_count() or 1
# The targets (at 200 groups).
TARGET_SERVER_IDLE = 0.05  # of one core
TARGET_MACHINE_VS_FLOOR = 1.3
TARGET_DESCRIBE_ONE_P50_MS = 5.0
TARGET_CREATION_VS_ONE = 1.2


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE, interval: float = POLL) -> None:
    _wait_for(predicate, what, timeout, interval)


# -- /proc: memory and the CPU of sets of processes ------------------------------------------------


def mem_available_mib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass  # gone since it was listed
    return 0.0


def _cpu_or_zero(pid: int) -> float:
    try:
        return process_cpu(pid)
    except OSError:
        return 0.0  # gone since it was listed


def processes_of(data_dir: Path, server_pid: int) -> list[int]:
    """The server and every live process of its data dir (children such as HAProxy's worker included):
    a node's command line names its config in the data dir, or it runs in its node dir."""
    root = str(data_dir.resolve())
    found = [server_pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server_pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (root in cmdline or cwd.startswith(root)) and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Idle:
    """CPU over the window, as a fraction of one core (``machine``: of all cores), and RSS in MiB."""

    machine: float
    processes: float  # the measured side's own processes, summed
    server: float | None
    rss_processes: float
    rss_server: float | None
    # The Sentinel processes among them (shared or per group: the cost shared Sentinels change).
    sentinels: float = 0.0
    rss_sentinels: float = 0.0
    sentinel_count: int = 0
    # CPU (of one core) and count of every kind of process: server, sentinel, haproxy, redis-server, other.
    kinds: dict[str, tuple[float, int]] = field(default_factory=dict)


def measure_idle(pids: Iterable[int], server_pid: int | None, settle: float, window: float) -> Idle:
    time.sleep(settle)
    listed = list(pids)
    before = {pid: _cpu_or_zero(pid) for pid in listed}
    busy0, t0 = machine_busy(), time.monotonic()
    time.sleep(window)
    busy1, elapsed = machine_busy(), time.monotonic() - t0
    spent = sum(max(0.0, _cpu_or_zero(pid) - before[pid]) for pid in listed)
    server = (_cpu_or_zero(server_pid) - before[server_pid]) / elapsed if server_pid is not None else None
    sentinels = [pid for pid in listed if pid != server_pid and _is_sentinel(pid)]
    kinds: dict[str, tuple[float, int]] = {}
    for pid in listed:
        kind = "server" if pid == server_pid else _kind(pid)
        cpu, count = kinds.get(kind, (0.0, 0))
        kinds[kind] = (cpu + max(0.0, _cpu_or_zero(pid) - before[pid]) / elapsed, count + 1)
    return Idle(
        kinds=kinds,
        sentinels=sum(max(0.0, _cpu_or_zero(pid) - before[pid]) for pid in sentinels) / elapsed,
        rss_sentinels=sum(rss_mib(pid) for pid in sentinels),
        sentinel_count=len(sentinels),
        machine=(busy1 - busy0) / elapsed / CPUS,
        processes=spent / elapsed,
        server=server,
        rss_processes=sum(rss_mib(pid) for pid in listed),
        rss_server=rss_mib(server_pid) if server_pid is not None else None,
    )


def _kind(pid: int) -> str:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return "other"
    if _is_sentinel(pid):
        return "sentinel"
    name = Path(argv0.decode(errors="replace")).name
    return name if name in ("haproxy", "redis-server") else "other"


def _is_sentinel(pid: int) -> bool:
    try:
        return b"sentinel" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# -- the cachefleet side ---------------------------------------------------------------------------


class MemoryLow(Exception):
    pass


def guard_memory(minimum: float) -> None:
    available = mem_available_mib()
    if available < minimum:
        raise MemoryLow(f"MemAvailable {available:.0f} MiB is under --min-available-mib {minimum:.0f}")


def group_status(client: Any, group_id: str) -> str | None:
    try:
        groups = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault":
            return None
        raise
    return str(groups[0]["Status"])


def create_group(client: Any, group_id: str) -> None:
    client.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="bench/scale.py",
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        CacheNodeType=NODE_TYPE,
    )


def timed_creation(client: Any, group_id: str) -> float:
    t0 = time.perf_counter()
    create_group(client, group_id)
    wait_for(lambda: group_status(client, group_id) == "available", f"{group_id} to become available")
    return time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies_ms(call: Callable[[], Any], count: int) -> tuple[float, float]:
    """p50 and p99 of ``count`` calls, in milliseconds (after two untimed warm-up calls)."""
    for _ in range(2):
        call()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), percentile(times, 0.99)


def node_dir(server: ServerProcess, cluster_id: str) -> Path:
    return server.data_dir / "nodes" / cluster_id / "0001"


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def heal_time(server: ServerProcess, client: Any, group_id: str) -> float:
    """Seconds from a SIGKILL of a replica's redis-server until a new process has its link up again."""
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    members = group["NodeGroups"][0]["NodeGroupMembers"]
    replica = next(m["CacheClusterId"] for m in members if m.get("CurrentRole") == "replica")
    directory = node_dir(server, replica)
    pid, port = read_int(directory / "pid"), read_int(directory / "port")
    if pid is None or port is None or not is_alive(pid):
        raise RuntimeError(f"{replica}: no live pid or no port in {directory}")
    connection = replica_client(port)
    try:
        wait_for(lambda: link_up(connection), f"{replica} to have its link up before the kill")
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)

        def healed() -> bool:
            new = read_int(directory / "pid")
            return new is not None and new != pid and is_alive(new) and link_up(connection)

        wait_for(healed, f"{replica} to be restarted with its link up", interval=0.01)
        return time.perf_counter() - t0
    finally:
        connection.close()


@dataclass
class Step:
    wanted: int
    groups: int = 0
    stopped: str | None = None  # why the step stopped short (memory)
    bulk_s: float = 0.0  # wall time of the untimed concurrent creations
    creations_s: list[float] = field(default_factory=list)
    idle: Idle | None = None
    describe_one_ms: tuple[float, float] = (0.0, 0.0)
    describe_page_ms: tuple[float, float] = (0.0, 0.0)
    heal_s: float | None = None
    floor: Idle | None = None
    # A fresh server started beside the installation, with one group of its own first: its timed
    # creations and Describe-one, on the same machine at the same moment (``measure_beside``).
    beside_creations_s: list[float] = field(default_factory=list)
    beside_describe_one_ms: tuple[float, float] | None = None
    # The same creation chain by hand beside the installation, with no control plane
    # (``bench/hand_sentinels.py``): what the machine alone does to it.
    hand_creations_s: list[float] = field(default_factory=list)
    # The floor's groups watched by Sentinels set up by hand as the installation's are.
    floor_sentinels: Idle | None = None


def grow(client: Any, step: Step, created: list[str], args: argparse.Namespace) -> None:
    """Create groups until ``step.wanted`` exist: in batches, then the last ``--timed`` one at a time.
    A step that adds fewer groups than ``--timed`` (the first, at 1) times the rest on groups
    deleted again after each, so that every step has as many timed creations."""
    new = step.wanted - len(created)
    timed = min(args.timed, new)
    names = [f"scale{len(created) + i:04d}" for i in range(new)]
    bulk, singles = names[: new - timed], names[new - timed :]
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.batch) as pool:
            for start in range(0, len(bulk), args.batch):
                batch = bulk[start : start + args.batch]
                guard_memory(args.min_available_mib)
                list(pool.map(lambda g: create_group(client, g), batch))
                created.extend(batch)
                for group_id in batch:
                    wait_for(lambda g=group_id: group_status(client, g) == "available", f"{group_id} available")
        step.bulk_s = time.perf_counter() - t0
        for group_id in singles:
            guard_memory(args.min_available_mib)
            time.sleep(args.pause)
            step.creations_s.append(timed_creation(client, group_id))
            created.append(group_id)
        for i in range(args.timed - len(singles)):
            time.sleep(args.pause)
            extra = f"extra{step.wanted:04d}x{i}"
            step.creations_s.append(timed_creation(client, extra))
            client.delete_replication_group(ReplicationGroupId=extra)
            wait_for(lambda g=extra: group_status(client, g) is None, f"{extra} deleted")
    except MemoryLow as exc:
        step.stopped = f"stopped at {len(created)} of {step.wanted} groups: {exc}"
        print(step.stopped, file=sys.stderr)
    step.groups = len(created)


def measure_cachefleet(
    server: ServerProcess, client: Any, step: Step, created: list[str], args: argparse.Namespace
) -> None:
    assert server.process is not None
    pid = server.process.pid
    step.idle = measure_idle(processes_of(server.data_dir, pid), pid, args.settle, args.window)
    if not created:
        return
    rng = random.Random(step.groups)
    step.describe_one_ms = latencies_ms(
        lambda: client.describe_replication_groups(ReplicationGroupId=rng.choice(created)), args.describe
    )
    step.describe_page_ms = latencies_ms(lambda: client.describe_replication_groups(MaxRecords=100), args.pages)
    if args.heal:
        step.heal_s = heal_time(server, client, rng.choice(created))


def measure_beside(root: Path, step: Step, flags: list[str], args: argparse.Namespace) -> None:
    """What a fresh server (no group but one of its own) measures beside the installation: the same
    machine, carrying the installation's processes, with none of the control plane's work for them.
    What the installation measures beyond it is the control plane's doing; what both measure beyond
    the first step is the machine's."""
    fresh = ServerProcess(root / f"beside{step.groups:04d}", *flags)
    try:
        fresh.start()
        client = fresh.client()
        timed_creation(client, "warm")  # its Sentinel set and proxy start with its first group
        names = [f"beside{i:02d}" for i in range(args.timed)]
        for group_id in names:
            time.sleep(args.pause)
            step.beside_creations_s.append(timed_creation(client, group_id))
        rng = random.Random(step.groups)
        step.beside_describe_one_ms = latencies_ms(
            lambda: client.describe_replication_groups(ReplicationGroupId=rng.choice(names)), args.describe
        )
    finally:
        fresh.cleanup()  # the server and every node process it recorded, by PID


def measure_hand_beside(root: Path, step: Step, args: argparse.Namespace) -> None:
    """A group's creation by hand beside the installation: three redis-servers, then joined to three
    Sentinels of its own (started first, like the fresh server's set), timed as many times as the
    installation's creations; no control plane. Its growth from the first step is the machine's."""
    found = binaries("redis-server", "redis-sentinel")
    where = root / f"hand{step.groups:04d}"
    sentinels = hand_sentinels.SentinelSet(where / "sentinels", found["redis-sentinel"])
    try:
        sentinels.start([])
        hand_sentinels.creation(found["redis-server"], where / "warm", sentinels, "warm")
        for i in range(args.timed):
            time.sleep(args.pause)
            name = f"hand{i:02d}"
            step.hand_creations_s.append(hand_sentinels.creation(found["redis-server"], where / name, sentinels, name))
    finally:
        sentinels.stop()


def pid_of(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def run_cachefleet(root: Path, steps: list[Step], args: argparse.Namespace) -> None:
    flags = [*(["--sentinel-set-size", str(args.set_size)] if args.set_size else [])]
    flags += ["--endpoint-proxy-size", str(args.proxy_size)] if args.proxy_size else []
    server = ServerProcess(root / "data", *flags)
    created: list[str] = []
    try:
        server.start()
        client = server.client()  # retries off: a failure must show, not hide
        for step in steps:
            grow(client, step, created, args)
            measure_cachefleet(server, client, step, created, args)
            if args.beside:
                measure_beside(root, step, flags, args)
                measure_hand_beside(root, step, args)
            print(_progress(step), file=sys.stderr)
            if step.stopped:
                break
        if args.hold:
            # For a profiler or a look by hand at the largest installation, before it is stopped.
            where = f"server pid {pid_of(server)}, data dir {server.data_dir}"
            print(f"holding {args.hold:.0f} s: {where}", file=sys.stderr)
            time.sleep(args.hold)
    except BaseException:
        print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.cleanup()  # the server and every node process it recorded, by PID


# -- the floor ---------------------------------------------------------------------------------------


def run_floor(root: Path, steps: list[Step], args: argparse.Namespace) -> None:
    """For each measured step, 3N redis-servers by hand (grown from the previous step's), then idle;
    then the same watched by Sentinels by hand (``measure_floor_sentinels``), idle again."""
    binary = binaries("redis-server")["redis-server"]
    processes: list[subprocess.Popen[bytes]] = []
    groups: list[hand_sentinels.Group] = []
    started = 0
    root.mkdir()
    try:
        for step in steps:
            if step.idle is None:
                continue
            while started < step.groups:
                group_dir = root / f"floor{started:04d}"
                group_dir.mkdir()
                ports = free_ports(3)
                confs = write_configs(group_dir, [(LOOPBACK, port) for port in ports])
                start_floor(binary, confs, ports, "gated", processes)
                clients = [replica_client(port) for port in ports[1:]]
                try:
                    wait_for(lambda cs=clients: all(link_up(c) for c in cs), f"floor group {started} to link")
                finally:
                    for connection in clients:
                        connection.close()
                groups.append(hand_sentinels.Group(f"floor{started:04d}", tuple(ports)))
                started += 1
            step.floor = measure_idle([p.pid for p in processes], None, args.settle, args.window)
            print(f"floor {step.groups} groups: {_pct(step.floor.machine)} of the machine", file=sys.stderr)
            if args.floor_sentinels:
                measure_floor_sentinels(root / f"sentinels{step.groups:04d}", step, groups, processes, args)
    finally:
        stop_processes(processes)


def measure_floor_sentinels(
    root: Path,
    step: Step,
    groups: list[hand_sentinels.Group],
    processes: list[subprocess.Popen[bytes]],
    args: argparse.Namespace,
) -> None:
    """The floor's groups watched by sets of three Sentinels by hand, a set per ``--sentinel-set-size``
    groups as the installation's, each knowing its groups' replicas and peers from its file; idle over
    the same window once every Sentinel could fail every group over. Stopped again after."""
    binary = binaries("redis-sentinel")["redis-sentinel"]
    size = args.set_size or Settings().sentinel_set_size
    chunks = [groups[i : i + size] for i in range(0, len(groups), size)]
    sets = [hand_sentinels.SentinelSet(root / f"set{k:02d}", binary) for k in range(len(chunks))]
    try:
        for hand_set, chunk in zip(sets, chunks, strict=True):
            hand_set.start(chunk)
        for hand_set, chunk in zip(sets, chunks, strict=True):
            hand_set.wait_ready(chunk)
        pids = [p.pid for p in processes] + [pid for hand_set in sets for pid in hand_set.pids]
        step.floor_sentinels = measure_idle(pids, None, args.settle, args.window)
        print(f"floor with Sentinels {step.groups} groups: {_pct(step.floor_sentinels.machine)}", file=sys.stderr)
    finally:
        for hand_set in sets:
            hand_set.stop()


# -- reporting ---------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.1f} / {pair[1]:.1f}"


def _progress(step: Step) -> str:
    idle = step.idle
    assert idle is not None
    return (
        f"{step.groups} groups: server {_pct(idle.server)} of a core, machine {_pct(idle.machine)}, "
        f"describe-one {_ms(step.describe_one_ms)} ms, page {_ms(step.describe_page_ms)} ms, "
        f"creations {[round(c, 2) for c in step.creations_s]}, heal {step.heal_s}"
    )


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def report(steps: list[Step]) -> str:
    measured = [s for s in steps if s.idle is not None]
    rows = [
        f"Idle, over the window (machine: {CPUS} cores; processes and server: of one core)",
        f"{'groups':>6} {'server':>8} {'machine':>8} {'floor':>8} {'ratio':>6} "
        f"{'fleet procs':>11} {'floor procs':>11} {'ratio':>6} {'server RSS':>10} {'fleet RSS':>10} {'floor RSS':>10}",
    ]
    for s in measured:
        idle, floor = s.idle, s.floor
        assert idle is not None
        rows.append(
            f"{s.groups:>6} {_pct(idle.server):>8} {_pct(idle.machine):>8} {_pct(floor and floor.machine):>8} "
            f"{_ratio(idle.machine, floor and floor.machine):>6} {_pct(idle.processes):>11} "
            f"{_pct(floor and floor.processes):>11} {_ratio(idle.processes, floor and floor.processes):>6} "
            f"{idle.rss_server or 0:>7.0f} MiB {idle.rss_processes:>6.0f} MiB "
            f"{(floor.rss_processes if floor else 0):>6.0f} MiB"
        )
    rows += ["", "Sentinels, idle over the window (CPU of one core, summed; RSS summed)"]
    rows += [f"{'groups':>6} {'processes':>9} {'CPU':>8} {'RSS':>10}"]
    for s in measured:
        assert s.idle is not None
        rows.append(
            f"{s.groups:>6} {s.idle.sentinel_count:>9} {_pct(s.idle.sentinels):>8} {s.idle.rss_sentinels:>6.0f} MiB"
        )
    rows += ["", "By kind of process, idle over the window (CPU of one core, summed; count)"]
    for s in measured:
        assert s.idle is not None
        parts = [f"{kind} {_pct(cpu)} ({count})" for kind, (cpu, count) in sorted(s.idle.kinds.items())]
        floor_part = f"; floor {_pct(s.floor.processes)}" if s.floor else ""
        rows.append(f"{s.groups:>6} " + ", ".join(parts) + floor_part)
    rows += [
        "",
        "API and lifecycle (ms: p50 / p99; creation: median, max of the timed ones, s)",
        f"{'groups':>6} {'Describe one':>14} {'Describe page':>14} {'create median':>13} {'create max':>10} "
        f"{'heal':>7}",
    ]
    for s in measured:
        creations = s.creations_s
        median = f"{statistics.median(creations):.2f}" if creations else "-"
        worst = f"{max(creations):.2f}" if creations else "-"
        heal = f"{s.heal_s:.2f}" if s.heal_s is not None else "-"
        rows.append(
            f"{s.groups:>6} {_ms(s.describe_one_ms):>14} {_ms(s.describe_page_ms):>14} {median:>13} {worst:>10} "
            f"{heal:>7}"
        )
    beside = [s for s in measured if s.beside_describe_one_ms is not None]
    if beside:
        rows += [
            "",
            "A fresh server beside the installation (its own groups only, on the same machine at the same moment)",
            f"{'groups':>6} {'create median':>13} {'fresh':>6} {'ratio':>6} {'Describe one p50':>16} {'fresh':>6} "
            f"{'ratio':>6}",
        ]
        for s in beside:
            assert s.beside_describe_one_ms is not None
            mine = statistics.median(s.creations_s) if s.creations_s else None
            fresh = statistics.median(s.beside_creations_s) if s.beside_creations_s else None
            rows.append(
                f"{s.groups:>6} {_secs(mine):>13} {_secs(fresh):>6} "
                f"{_ratio(mine, fresh):>6} {s.describe_one_ms[0]:>16.1f} {s.beside_describe_one_ms[0]:>6.1f} "
                f"{_ratio(s.describe_one_ms[0], s.beside_describe_one_ms[0]):>6}"
            )
    rows += hand_rows(measured)
    rows += ["", *targets(measured)]
    rows += [s.stopped for s in steps if s.stopped]
    return "\n".join(rows)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def hand_rows(measured: list[Step]) -> list[str]:
    """The floors by hand: Sentinels' idle cost on the floor's groups, and a creation's growth from the
    first step for the installation, a fresh server and the chain by hand, side by side."""
    rows: list[str] = []
    watched = [s for s in measured if s.floor and s.floor_sentinels]
    if watched:
        rows += [
            "",
            "Floors by hand, idle: redis-servers alone; the same watched by Sentinels; the installation",
            "(machine: of its cores; processes: their own CPU, of one core, which other users of the machine",
            "do not add to)",
            f"{'':>6} {'machine':^37} {'processes':^37}",
            f"{'groups':>6} " + f"{'floor':>7} {'+Sent.':>7} {'ratio':>6} {'inst.':>7} {'ratio':>6} " * 2,
        ]
        for s in watched:
            assert s.floor
            assert s.floor_sentinels
            assert s.idle
            cells = []
            for floor, hand, mine in (
                (s.floor.machine, s.floor_sentinels.machine, s.idle.machine),
                (s.floor.processes, s.floor_sentinels.processes, s.idle.processes),
            ):
                cells.append(
                    f"{_pct(floor):>7} {_pct(hand):>7} {_ratio(hand, floor):>6} {_pct(mine):>7} {_ratio(mine, hand):>6}"
                )
            rows.append(f"{s.groups:>6} " + " ".join(cells))
    timed = [s for s in measured if s.hand_creations_s]
    if timed:
        first = timed[0]
        base = (_median(first.creations_s), _median(first.beside_creations_s), _median(first.hand_creations_s))
        rows += [
            "",
            f"Creation, median (s), and its growth from {first.groups} group(s): the installation, a fresh server "
            "beside it, by hand beside it",
            f"{'groups':>6} {'installation':>12} {'growth':>6} {'fresh':>6} {'growth':>6} {'by hand':>7} {'growth':>6}",
        ]
        for s in timed:
            now = (_median(s.creations_s), _median(s.beside_creations_s), _median(s.hand_creations_s))
            cells = [
                f"{_secs(value):>{width}} {_ratio(value, was):>6}"
                for value, was, width in zip(now, base, (12, 6, 7), strict=True)
            ]
            rows.append(f"{s.groups:>6} " + " ".join(cells))
    return rows


def targets(measured: list[Step]) -> list[str]:
    """The issue's targets (set for 200 groups), checked at the largest step measured."""
    if not measured:
        return ["no step was measured"]
    last, first = measured[-1], measured[0]
    idle, floor = last.idle, last.floor
    assert idle is not None
    lines = [f"Targets (for 200 groups; checked at {last.groups}):"]

    def line(name: str, value: str, target: str, met: bool | None) -> None:
        verdict = "-" if met is None else "met" if met else "NOT met"
        lines.append(f"  {name:<44} {value:>10}   target {target:<22} {verdict}")

    line("server idle CPU (of a core)", _pct(idle.server), f"<= {_pct(TARGET_SERVER_IDLE)}",
         idle.server is not None and idle.server <= TARGET_SERVER_IDLE)
    ratio = idle.machine / floor.machine if floor and floor.machine else None
    line("whole machine idle / floor", "-" if ratio is None else f"{ratio:.2f}x",
         f"<= {TARGET_MACHINE_VS_FLOOR}x", None if ratio is None else ratio <= TARGET_MACHINE_VS_FLOOR)
    procs = idle.processes / floor.processes if floor and floor.processes else None
    line("  (installation's processes / floor's)", "-" if procs is None else f"{procs:.2f}x",
         f"<= {TARGET_MACHINE_VS_FLOOR}x", None if procs is None else procs <= TARGET_MACHINE_VS_FLOOR)
    watched = last.floor_sentinels
    if watched and floor and floor.machine and floor.processes:
        # Not targets: the same bound applied to Sentinels by hand, with no control plane or proxy.
        by_hand = watched.machine / floor.machine
        line("  (floor watched by Sentinels by hand / floor)", f"{by_hand:.2f}x",
             f"<= {TARGET_MACHINE_VS_FLOOR}x", by_hand <= TARGET_MACHINE_VS_FLOOR)
        by_hand = watched.processes / floor.processes
        line("  (the same, processes)", f"{by_hand:.2f}x", f"<= {TARGET_MACHINE_VS_FLOOR}x",
             by_hand <= TARGET_MACHINE_VS_FLOOR)
    one = last.describe_one_ms[0]
    line("Describe-one p50", f"{one:.1f} ms", f"<= {TARGET_DESCRIBE_ONE_P50_MS} ms",
         one <= TARGET_DESCRIBE_ONE_P50_MS)
    if first.creations_s and last.creations_s and last is not first:
        growth = statistics.median(last.creations_s) / statistics.median(first.creations_s)
        line(f"creation vs creation at {first.groups} (medians)", f"{growth:.2f}x", f"<= {TARGET_CREATION_VS_ONE}x",
             growth <= TARGET_CREATION_VS_ONE)
    if first.hand_creations_s and last.hand_creations_s and last is not first:
        # Not a target: the same bound applied to the creation chain by hand beside the installation.
        by_hand = statistics.median(last.hand_creations_s) / statistics.median(first.hand_creations_s)
        line("  (creation by hand, beside it)", f"{by_hand:.2f}x", f"<= {TARGET_CREATION_VS_ONE}x",
             by_hand <= TARGET_CREATION_VS_ONE)
    return lines


def as_json(steps: list[Step]) -> str:
    return json.dumps([asdict(s) for s in steps if s.idle is not None])


# -- driver ------------------------------------------------------------------------------------------


def parse_steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--steps takes counts separated by commas, not {text!r}") from exc
    if not steps or any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] < 1:
        raise argparse.ArgumentTypeError("--steps must be increasing counts of at least 1, e.g. 1,10,50")
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=parse_steps, default=parse_steps(DEFAULT_STEPS),
                        help=f"group counts to measure at, increasing (default {DEFAULT_STEPS})")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before an idle window (default 10)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of an idle window (default 20)")
    parser.add_argument("--describe", type=int, default=200, help="Describe-one calls per step (default 200)")
    parser.add_argument("--pages", type=int, default=50, help="Describe-all-page calls per step (default 50)")
    parser.add_argument("--timed", type=int, default=3, help="creations timed one at a time per step (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="concurrent untimed creations (default 8)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each timed creation (default 1)")
    parser.add_argument("--min-available-mib", type=float, default=4096.0,
                        help="stop a step when the machine's MemAvailable drops under this (default 4096)")
    parser.add_argument("--no-heal", dest="heal", action="store_false", help="skip the kill -9 heal time")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the floor")
    parser.add_argument("--no-beside", dest="beside", action="store_false",
                        help="skip the fresh server and the creation by hand beside the installation at each step")
    parser.add_argument("--no-floor-sentinels", dest="floor_sentinels", action="store_false",
                        help="skip the floor watched by Sentinels by hand")
    parser.add_argument("--json", action="store_true", help="also print the steps as JSON, last line")
    parser.add_argument("--sentinel-set-size", dest="set_size", type=int, default=None,
                        help="groups per set of shared Sentinels (default: the server's, 25)")
    parser.add_argument("--endpoint-proxy-size", dest="proxy_size", type=int, default=None,
                        help="groups per endpoint proxy (default: the server's, 25)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="seconds to keep the installation after the last step, to profile it (default 0)")
    args = parser.parse_args(argv)
    if args.timed < 1 or args.batch < 1 or args.describe < 1 or args.pages < 1:
        parser.error("--timed, --batch, --describe and --pages must be at least 1")
    unwind_on_sigterm()
    steps = [Step(n) for n in args.steps]
    with tempfile.TemporaryDirectory(prefix="cachefleet-scale-") as tmp:
        run_cachefleet(Path(tmp), steps, args)
        if args.floor:
            run_floor(Path(tmp) / "floor", steps, args)
    print(f"Multi-AZ groups (3 nodes, automatic failover), steps {','.join(map(str, args.steps))}; "
          f"settle {args.settle:.0f} s, window {args.window:.0f} s\n")
    print(report(steps))
    if args.json:
        print(as_json(steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
