"""Throughput through a group's primary endpoint against direct access and a plain hand-made HAProxy,
and through the kernel DNAT endpoint (``cachefleet.endpoints``) against direct access in namespaces.

Run from the repository root (``tests.support`` must be importable), as root for the DNAT part::

    PYTHONPATH=. .venv/bin/python bench/endpoint.py --trials 3 [--json] [--no-netns]

One ``cachefleet server`` and one replication group (``NumCacheClusters=2``, automatic failover off)
serve the whole run. Three targets are measured with ``redis-benchmark -n 100000 -c 50 -t set,get
--csv`` without and with ``-P 16``:

- ``direct``: the primary redis-server's own port;
- ``endpoint``: the group's ``PrimaryEndpoint`` (cachefleet's HAProxy: TCP mode, ``nbthread 1``,
  health checks every 500 ms);
- ``haproxy``: a plain HAProxy started by this script from a minimal hand-written config (TCP mode,
  ``nbthread 1``, one frontend, one backend whose only server is the primary, no health check).

In the same run (unless ``--no-netns``), a namespace topology (``tests/support/netns.py``: hosts
h1-h3 and a client c on one bridge) holds three more redis-servers of the same config, one per host,
and seven more targets; only h1 has a ``table ip cachefleet`` (a namespace without a NAT table has
no connection tracking, as a host without cachefleet's endpoints):

- ``ns-lo direct``: redis-benchmark in h2 against h2's node on 127.0.0.1;
- ``ns-lo dnat``: redis-benchmark in h1 against an endpoint on 127.0.0.1 DNATed (output hook) to
  h1's node on 127.0.0.1: the single-host embedded case;
- ``xns direct``: redis-benchmark in c against h2's node at h2's address;
- ``xns dnat``: in c against a VIP held by h1, DNATed (prerouting) to h1's node: a primary
  endpoint on a multi-host install;
- ``xns dnat-fwd``: in c against an endpoint on h1's address DNATed to h3's node, forwarded and
  masqueraded by h1: a reader endpoint spreading to a replica on another host;
- ``ns-lo direct+ct`` and ``xns direct+ct``: as the direct ones, against h1's node: no DNAT, but the
  connection tracking h1's NAT table turns on for all its traffic (they split the DNAT cells' cost
  into tracking and rewriting; not targets).

Each DNAT target is compared with the direct one of its kind (``xns dnat-fwd`` with ``xns
direct``); the target is 0.9x of direct or better in every cell.

Trials are interleaved (the order of the targets rotates from one trial to the next) and the tables
show medians. For every run the CPU time used by the redis-server measured and by the proxy process
is read from ``/proc``, to show what the extra hop costs (DNAT's is in the kernel: not attributed).
The target "endpoint no slower than the plain HAProxy" counts as met when every endpoint/haproxy
ratio of the medians is at least ``TOLERANCE`` (run-to-run noise on this machine is a few percent).
The run exits 0 either way.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support import dataplane
from tests.support.netns import Member, Topology
from tests.support.server import ServerProcess, is_alive

from bench._common import binaries, free_port, stop_process, unwind_on_sigterm
from bench._common import wait_for as _wait_for
from cachefleet.endpoints import vip
from cachefleet.endpoints.base import Address
from cachefleet.endpoints.dnat import DnatTable, enable_forwarding
from cachefleet.endpoints.nft import LibNft

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.05
DEADLINE = 60.0  # any single wait
BENCH_TIMEOUT = 300.0  # one redis-benchmark run; it retries a dead port forever, so it needs a bound
STOP_WAIT = 5.0
TOLERANCE = 0.95
DNAT_TARGET = 0.9
DNAT_PAIRS = (("ns-lo dnat", "ns-lo direct"), ("xns dnat", "xns direct"), ("xns dnat-fwd", "xns direct"))
# Not targets: how much of the DNAT cells' cost is connection tracking, which a NAT table turns on
# for all traffic of its namespace, and how much the rewrite itself.
CONNTRACK_PAIRS = (("ns-lo direct+ct", "ns-lo direct"), ("xns direct+ct", "xns direct"),
                   ("ns-lo dnat", "ns-lo direct+ct"), ("xns dnat", "xns direct+ct"))  # fmt: skip
PIPELINES = (1, 16)
TESTS = ("SET", "GET")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    _wait_for(predicate, what, timeout, POLL_INTERVAL)


@dataclass(frozen=True)
class Result:
    trial: int
    target: str
    pipeline: int
    test: str
    rps: float
    p50_ms: float
    p99_ms: float
    redis_cpu_s: float  # the redis-server measured, whole run (SET and GET)
    proxy_cpu_s: float  # the proxy process (HAProxy worker), whole run; 0 for direct and DNAT


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    prefix: tuple[str, ...]  # () in the root namespace, else ("ip", "netns", "exec", <namespace>)
    redis_pid: int
    proxy_pid: Callable[[], int | None]


# -- waiting -------------------------------------------------------------------------------------


def answers_ping(port: int) -> bool:
    client = redis.Redis(
        host=LOOPBACK, port=port, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


# -- the group -----------------------------------------------------------------------------------


def group_status(client: Any, group_id: str) -> str | None:
    try:
        groups = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault":
            return None
        raise
    return str(groups[0]["Status"]) if groups else None


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (its own threads included, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the plain HAProxy ---------------------------------------------------------------------------


def plain_haproxy_config(port: int, primary_port: int) -> str:
    """The smallest sensible hand-written TCP proxy in front of one Redis: what an operator would write."""
    return "\n".join(
        [
            "global",
            "    nbthread 1",
            "    maxconn 4096",
            "defaults",
            "    mode tcp",
            "    timeout connect 1s",
            "    timeout client 1h",
            "    timeout server 1h",
            "frontend fe_redis",
            f"    bind {LOOPBACK}:{port}",
            "    default_backend be_redis",
            "backend be_redis",
            f"    server primary {LOOPBACK}:{primary_port}",
            "",
        ]
    )


def start_plain_haproxy(haproxy: str, work: Path, port: int, primary_port: int) -> subprocess.Popen[bytes]:
    conf = work / "haproxy.cfg"
    conf.write_text(plain_haproxy_config(port, primary_port))
    check = subprocess.run([haproxy, "-c", "-f", str(conf)], capture_output=True, timeout=30, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy rejected the config: {check.stderr.decode(errors='replace')}")
    with (work / "haproxy.log").open("ab") as log:
        # Own session, so Ctrl-C reaches only us; stopped by PID in the caller's finally block.
        return subprocess.Popen(
            [haproxy, "-db", "-f", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
            start_new_session=True,
        )


# -- redis-benchmark -----------------------------------------------------------------------------


def parse_csv(text: str) -> dict[str, dict[str, float]]:
    """``test -> {rps, p50, p99}`` from redis-benchmark 7's ``--csv`` output."""
    rows = list(csv.DictReader(io.StringIO(text)))
    parsed = {
        row["test"]: {
            "rps": float(row["rps"]),
            "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]),
        }
        for row in rows
    }
    missing = [t for t in TESTS if t not in parsed]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {missing} row: {text!r}")
    return parsed


def answers(target: Target) -> bool:
    done = subprocess.run([*target.prefix, "redis-cli", "-h", target.host, "-p", str(target.port), "PING"],
                          capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    return done.stdout.strip() == "PONG"


def benchmark(binary: str, target: Target, pipeline: int, requests: int, clients: int) -> dict[str, dict[str, float]]:
    if not answers(target):
        raise RuntimeError(f"nothing answers PING at {target.name}; redis-benchmark would wait forever")
    argv = [*target.prefix, binary, "-h", target.host, "-p", str(target.port), "-n", str(requests)]
    argv += ["-c", str(clients), "-t", ",".join(t.lower() for t in TESTS), "--csv"]
    if pipeline > 1:
        argv += ["-P", str(pipeline)]
    done = subprocess.run(argv, capture_output=True, timeout=BENCH_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return parse_csv(done.stdout.decode())


# -- driver --------------------------------------------------------------------------------------


def measure(binary: str, target: Target, *, trial: int, pipeline: int, requests: int, clients: int) -> list[Result]:
    proxy = target.proxy_pid()
    redis_before = cpu_seconds(target.redis_pid)
    proxy_before = cpu_seconds(proxy) if proxy is not None else 0.0
    parsed = benchmark(binary, target, pipeline, requests, clients)
    redis_cpu = cpu_seconds(target.redis_pid) - redis_before
    proxy_cpu = cpu_seconds(proxy) - proxy_before if proxy is not None else 0.0
    if proxy is not None and target.proxy_pid() != proxy:
        raise RuntimeError(f"the {target.name} proxy process changed during the run (a reload?)")
    return [
        Result(
            trial,
            target.name,
            pipeline,
            test,
            parsed[test]["rps"],
            parsed[test]["p50"],
            parsed[test]["p99"],
            redis_cpu,
            proxy_cpu,
        )
        for test in TESTS
    ]


def netns_targets(topo: Topology, work: Path) -> list[Target]:
    """The DNAT targets and their direct baselines (module doc); only h1 gets a nat table."""
    h1, h2, h3 = topo.hosts
    client = topo.client
    assert client is not None
    nodes = {m.role: dataplane.start_redis(topo, m, work, who=m.role) for m in (h1, h2, h3)}
    table: DnatTable = topo.call(h1, lambda: DnatTable(LibNft()))
    topo.call(h1, enable_forwarding)
    address = topo.vip(0)
    topo.call(h1, vip.add, address, h1.interface)
    ports = [topo.call(h1, dataplane.free_port) for _ in range(3)]
    lo_ep, vip_ep, fwd_ep = Address(LOOPBACK, ports[0]), Address(address, ports[1]), Address(h1.address, ports[2])
    topo.call(h1, table.set_targets, lo_ep, [Address(LOOPBACK, nodes["h1"].port)])
    topo.call(h1, table.set_targets, vip_ep, [Address(*nodes["h1"].address)])
    topo.call(h1, table.set_targets, fwd_ep, [Address(*nodes["h3"].address)])

    def inside(member: Member) -> tuple[str, ...]:
        return ("ip", "netns", "exec", member.namespace)

    def target(name: str, where: Member, at: Address, node: str) -> Target:
        return Target(name, at.host, at.port, inside(where), nodes[node].process.pid, lambda: None)

    return [
        target("ns-lo direct", h2, Address(LOOPBACK, nodes["h2"].port), "h2"),
        target("ns-lo direct+ct", h1, Address(LOOPBACK, nodes["h1"].port), "h1"),
        target("ns-lo dnat", h1, lo_ep, "h1"),
        target("xns direct", client, Address(*nodes["h2"].address), "h2"),
        target("xns direct+ct", client, Address(*nodes["h1"].address), "h1"),
        target("xns dnat", client, vip_ep, "h1"),
        target("xns dnat-fwd", client, fwd_ep, "h3"),
    ]


def run(trials: int, requests: int, clients: int, with_netns: bool) -> tuple[list[Result], dict[str, Any]]:
    found = binaries("redis-benchmark", "haproxy")
    binary, haproxy = found["redis-benchmark"], found["haproxy"]
    if with_netns and os.geteuid() != 0:
        raise SystemExit("the DNAT targets need root (network namespaces); --no-netns measures without them")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-endpoint-") as tmp, contextlib.ExitStack() as stack:
        server = ServerProcess(Path(tmp) / "data")
        plain: subprocess.Popen[bytes] | None = None
        try:
            server.start()
            client = server.client()
            group_id = "ep"
            client.create_replication_group(
                CacheNodeType="cache.t4g.micro",
                ReplicationGroupId=group_id, ReplicationGroupDescription="endpoint bench", NumCacheClusters=2
            )
            wait_for(lambda: group_status(client, group_id) == "available", f"{group_id} to become available")
            (node_group,) = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0][
                "NodeGroups"
            ]
            (primary,) = [m for m in node_group["NodeGroupMembers"] if m["CurrentRole"] == "primary"]
            primary_port = int(primary["ReadEndpoint"]["Port"])
            pids = server.node_pids()
            redis_pid = pids[f"{primary['CacheClusterId']}/{primary['CacheNodeId']}"]
            endpoint_master = pids["host.endpoints/haproxy"]  # the host's endpoint proxy, serving the group

            def endpoint_worker() -> int | None:
                workers = [p for p in children(endpoint_master) if is_alive(p)]
                if len(workers) != 1:
                    raise RuntimeError(f"expected one HAProxy worker under {endpoint_master}, found {workers}")
                return workers[0]

            plain_port = free_port()
            plain = start_plain_haproxy(haproxy, Path(tmp), plain_port, primary_port)
            plain_pid = plain.pid
            wait_for(lambda: answers_ping(plain_port), f"the plain HAProxy on port {plain_port}")
            targets = [
                Target("direct", LOOPBACK, primary_port, (), redis_pid, lambda: None),
                Target(
                    "endpoint", LOOPBACK, int(node_group["PrimaryEndpoint"]["Port"]), (), redis_pid, endpoint_worker
                ),
                Target("haproxy", LOOPBACK, plain_port, (), redis_pid, lambda: plain_pid),
            ]
            if with_netns:
                topo = stack.enter_context(Topology(3, client=True))
                targets += netns_targets(topo, Path(tmp) / "netns")
            meta = {
                "group_nodes": 2,
                "cpus": os.cpu_count(),
                # Other work on the machine shows up in every target's numbers: record it.
                "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                "requests": requests,
                "clients": clients,
                "targets": [t.name for t in targets],
                "redis_benchmark": subprocess.run(
                    [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
                ).stdout.strip(),
            }
            for trial in range(trials):
                shift = trial % len(targets)
                order = targets[shift:] + targets[:shift]
                for pipeline in PIPELINES:
                    for target in order:
                        got = measure(
                            binary, target, trial=trial, pipeline=pipeline, requests=requests, clients=clients
                        )
                        results += got
                        line = "  ".join(f"{r.test} {r.rps:,.0f} rps" for r in got)
                        print(f"trial {trial + 1}/{trials} P{pipeline} {target.name}: {line}", file=sys.stderr)
            meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            if plain is not None:
                stop_process(plain)
            server.cleanup()  # the server, the group's nodes and its HAProxy, by PID
    return results, meta


# -- reporting -----------------------------------------------------------------------------------


def medians(results: list[Result], targets: list[str]) -> dict[tuple[str, int, str], dict[str, float]]:
    out: dict[tuple[str, int, str], dict[str, float]] = {}
    for target in targets:
        for pipeline in PIPELINES:
            for test in TESTS:
                rs = [r for r in results if (r.target, r.pipeline, r.test) == (target, pipeline, test)]
                out[(target, pipeline, test)] = {
                    "rps": statistics.median(r.rps for r in rs),
                    "p50_ms": statistics.median(r.p50_ms for r in rs),
                    "p99_ms": statistics.median(r.p99_ms for r in rs),
                    # the whole redis-benchmark run (SET and GET), the same in both tests' rows
                    "redis_cpu_s": statistics.median(r.redis_cpu_s for r in rs),
                    "proxy_cpu_s": statistics.median(r.proxy_cpu_s for r in rs),
                }
    return out


COLUMNS = [(p, t) for p in PIPELINES for t in TESTS]


def paired_ratio(results: list[Result], num: str, den: str, pipeline: int, test: str) -> float:
    """Median over trials of num/den measured in the same trial (minutes apart at most), which
    cancels slow drifts in the machine's load that the ratio of medians does not."""
    by_trial = {(r.trial, r.target): r.rps for r in results if (r.pipeline, r.test) == (pipeline, test)}
    trials = sorted({trial for trial, _ in by_trial})
    return statistics.median(by_trial[(t, num)] / by_trial[(t, den)] for t in trials)


def summary(results: list[Result], meta: dict[str, Any], trials: int) -> dict[str, Any]:
    targets: list[str] = meta["targets"]
    med = medians(results, targets)
    pairs = [("endpoint", "haproxy"), ("endpoint", "direct"), ("haproxy", "direct")]
    dnat_pairs = [pair for pair in DNAT_PAIRS if pair[0] in targets]
    conntrack_pairs = [pair for pair in CONNTRACK_PAIRS if pair[0] in targets]
    ratios: dict[str, dict[str, float]] = {}
    paired: dict[str, dict[str, float]] = {}
    for num, den in pairs + dnat_pairs + conntrack_pairs:
        name = f"{num}/{den}"
        ratios[name] = {}
        paired[name] = {}
        for pipeline, test in COLUMNS:
            col = f"{test} P{pipeline}"
            ratios[name][col] = round(med[(num, pipeline, test)]["rps"] / med[(den, pipeline, test)]["rps"], 3)
            paired[name][col] = round(paired_ratio(results, num, den, pipeline, test), 3)
    # CPU per request is far less sensitive to other load on the machine than requests per second.
    per_request = 1e6 / (len(TESTS) * meta["requests"])
    cpu_us = {
        f"{target} P{pipeline}": {
            "redis": round(med[(target, pipeline, TESTS[0])]["redis_cpu_s"] * per_request, 2),
            "proxy": round(med[(target, pipeline, TESTS[0])]["proxy_cpu_s"] * per_request, 2),
        }
        for target in targets
        for pipeline in PIPELINES
    }
    dnat_names = [f"{num}/{den}" for num, den in dnat_pairs]
    return {
        **meta,
        "trials": trials,
        "medians": {f"{t} {test} P{p}": v for (t, p, test), v in med.items()},
        "ratios": ratios,
        "paired_ratios": paired,
        "cpu_us_per_request": cpu_us,
        "tolerance": TOLERANCE,
        "target_met": all(r >= TOLERANCE for r in ratios["endpoint/haproxy"].values()),
        "dnat_target": DNAT_TARGET,
        "dnat_ratios": dnat_names,
        "dnat_target_met": all(r >= DNAT_TARGET for name in dnat_names for r in ratios[name].values())
        if dnat_names
        else None,
    }


def table(stats: dict[str, Any]) -> str:
    med = stats["medians"]
    targets: list[str] = stats["targets"]
    cols = [f"{test} P{p}" for p, test in COLUMNS]
    width = 12
    name_width = 28
    header = f"{'rps (median)':<{name_width}}" + "".join(f"{c:>{width}}" for c in cols)
    rows = [header, "-" * len(header)]
    for target in targets:
        rows.append(f"{target:<{name_width}}" + "".join(f"{med[f'{target} {c}']['rps']:>{width},.0f}" for c in cols))
    rows.append("-" * len(header))
    for name, values in stats["ratios"].items():
        rows.append(f"{name:<{name_width}}" + "".join(f"{values[c]:.2f}x".rjust(width) for c in cols))
    rows.append("-" * len(header))
    for name, values in stats["paired_ratios"].items():
        rows.append(f"{name + '*':<{name_width}}" + "".join(f"{values[c]:.2f}x".rjust(width) for c in cols))
    rows.append("* median of the ratios of runs made in the same trial, a few seconds apart")
    rows += ["", f"{'p50 / p99 (ms)':<{name_width}}" + "".join(f"{c:>{width + 2}}" for c in cols), "-" * len(header)]
    for target in targets:
        cells = [f"{med[f'{target} {c}']['p50_ms']:.3f}/{med[f'{target} {c}']['p99_ms']:.3f}" for c in cols]
        rows.append(f"{target:<{name_width}}" + "".join(f"{cell:>{width + 2}}" for cell in cells))
    cpu = stats["cpu_us_per_request"]
    rows += [
        "",
        "CPU microseconds per request (median run): the redis-server measured + proxy process",
        "-" * len(header),
    ]
    for target in targets:
        cells = [
            f"P{p}: {cpu[f'{target} P{p}']['redis']:.2f} + {cpu[f'{target} P{p}']['proxy']:.2f}" for p in PIPELINES
        ]
        rows.append(f"{target:<{name_width}}" + "".join(f"{cell:>22}" for cell in cells))
    verdict = "met" if stats["target_met"] else "NOT met"
    worst = min(stats["ratios"]["endpoint/haproxy"].values())
    rows += [
        "",
        f"endpoint no slower than the plain HAProxy (every endpoint/haproxy of the medians >= {TOLERANCE}): {verdict}"
        f" (lowest {worst:.2f}x)",
    ]
    if stats["dnat_target_met"] is not None:
        lowest = min(r for name in stats["dnat_ratios"] for r in stats["ratios"][name].values())
        verdict = "met" if stats["dnat_target_met"] else "NOT met"
        rows.append(
            f"DNAT endpoint >= {DNAT_TARGET}x of direct in every cell (medians): {verdict} (lowest {lowest:.2f}x)"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3, help="trials per target and pipeline depth (default 3)")
    parser.add_argument("--requests", type=int, default=100_000, help="redis-benchmark -n (default 100000)")
    parser.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    parser.add_argument("--no-netns", action="store_true", help="leave out the DNAT targets (they need root)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    unwind_on_sigterm()
    results, meta = run(args.trials, args.requests, args.clients, with_netns=not args.no_netns)
    stats = summary(results, meta, args.trials)
    print(
        f"redis-benchmark -n {args.requests} -c {args.clients} -t set,get [-P 16], {args.trials} trials per cell,"
        f" {meta['cpus']} CPUs, group of 2 nodes (primary + 1 replica);"
        f" load average (1/5/15 min) {meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end\n"
    )
    print(table(stats))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
