"""What TLS costs, and whether our TLS endpoint keeps up with a hand-configured HAProxy doing the same job.

Run from the repository root, under the bench lock::

    flock /work/helpers/bench.lock env PYTHONPATH=. .venv/bin/python bench/tls.py --trials 3 [--json]

Everything measured is made through the API, as a user makes it: a ``cachefleet server`` (its own
data dir, its CA) and a replication group of one node created with ``TransitEncryptionEnabled``,
which each trial moves live between ``TransitEncryptionMode`` ``preferred`` and ``required``
(``ModifyReplicationGroup``; the node keeps its TLS port, its plain-text port exists in
``preferred`` only). One redis-server thus serves every target. Each is measured with
``redis-benchmark -n N -c 50 -t set,get --csv`` without and with ``-P 16`` (``--tls --cacert
ca.pem`` for every TLS target):

- ``direct``: the node's plain-text port (``preferred``), no TLS;
- ``direct-tls``: the node's TLS port, the one Describe gives as its ``ReadEndpoint``;
- ``endpoint``: the group's primary endpoint with TLS ``required`` (HAProxy in TCP mode: TLS
  passes through to the node; health checks over TLS every 500 ms);
- ``endpoint-preferred``: the primary endpoint in ``preferred`` (the first byte of each session
  picks the TLS or the plain backend; checks on the plain port);
- ``haproxy``: a hand-configured HAProxy doing the same TLS job (TCP mode, ``nbthread 1``, one
  frontend, one backend whose only server is the node's TLS port, no check), measured in the same
  phase as ``endpoint``, so that their paired ratio compares runs seconds apart;
- ``haproxy-2``: a second, identical hand-configured HAProxy (its own process and port), measured in
  the same phase. ``haproxy-2/haproxy`` compares two things that are the same: its spread is what
  the machine's noise alone does to a ratio, the yardstick for ``endpoint/haproxy``.

IAM authentication for Redis is measured on a second group of one node (TLS ``required``, a user
group with a password user and an IAM user), in a phase of its own:

- ``rbac-endpoint``: the password user through that group's primary endpoint, the path of every
  client that does not use IAM (the IAM endpoint is not on it; ``rbac-endpoint/endpoint`` shows
  that such clients pay nothing for IAM being there);
- ``iam-endpoint``: the IAM user through the IAM endpoint, with a token made as AWS documents it
  (redis-benchmark ``--user USER -a TOKEN``; the token, signed by an IAM user whose policy allows
  ``elasticache:Connect``, is checked at every connection). The proxy CPU is the control plane's,
  where that endpoint runs.

A last cell opens a new TLS session per request (``-k 0``, SET, P1): it shows what the first-byte
sniffing of ``preferred`` costs where it runs, at connection set-up, and what checking a token
costs on the IAM path.

Trials are interleaved (the order rotates within each phase from trial to trial); tables show
medians. A ``-P 16`` run lasts a tenth of a ``-P 1`` run (0.3 s against 3 s at 100,000 requests), so
on a shared machine one burst of someone else's work decides its figure: each trial makes
``--rounds`` of them (default 4), the order rotating from round to round, each round a pair of its
own for the paired ratios. CPU time of the redis-server and of the proxy process is read from ``/proc``. The target is
our endpoint at 0.95x or better of the hand-configured HAProxy in every cell. The run exits 0 either
way.
"""

from __future__ import annotations

import argparse
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

from botocore.credentials import Credentials
from tests.support.iam_tokens import connect_token
from tests.support.server import ServerProcess

from bench._common import binaries, free_port, stop_process, unwind_on_sigterm, wait_for
from bench.endpoint import children, cpu_seconds

LOOPBACK = "127.0.0.1"
BENCH_TIMEOUT = 300.0
TOLERANCE = 0.95
TARGETS = (
    "direct",
    "direct-tls",
    "endpoint",
    "endpoint-preferred",
    "haproxy",
    "haproxy-2",
    "rbac-endpoint",
    "iam-endpoint",
)
HAND_TARGETS = ("haproxy", "haproxy-2")
TLS_TARGETS = frozenset(TARGETS) - {"direct"}
PIPELINES = (1, 16)
TESTS = ("SET", "GET")
RECONNECT_TARGETS = ("endpoint", "endpoint-preferred", "haproxy", "haproxy-2", "rbac-endpoint", "iam-endpoint")
ROUNDS = 4  # -P 16 runs per target and trial
RECONNECT_REQUESTS = 1000


@dataclass(frozen=True)
class Result:
    trial: int
    round: int  # of the -P 16 runs within a trial (0 for every other run); (trial, round) pairs runs
    target: str
    cell: str  # "SET P1", "GET P16", "SET new-session"
    rps: float
    p50_ms: float
    p99_ms: float
    redis_cpu_s: float
    proxy_cpu_s: float
    control_cpu_s: float  # the control plane's process, where the IAM endpoint runs


@dataclass
class Setup:
    ports: dict[str, int]
    redis_pids: dict[str, int]
    proxies: dict[str, Callable[[], int | None]]
    ca: Path
    ec: Any  # the boto3 client of the server
    endpoint_master: Callable[[], int]
    auth: dict[str, Callable[[], list[str]]]  # redis-benchmark's --user/-a for a target, if it needs them
    control_plane: int  # its pid


def hand_config(port: int, node_tls_port: int) -> str:
    """What an operator would write to put HAProxy in front of a TLS Redis: pass TLS through."""
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
            "frontend fe_redis_tls",
            f"    bind {LOOPBACK}:{port}",
            "    default_backend be_redis_tls",
            "backend be_redis_tls",
            f"    server primary {LOOPBACK}:{node_tls_port}",
            "",
        ]
    )


def spawn(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # Own session, so Ctrl-C reaches only us; stopped by PID in the caller's finally block.
        return subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def ready(binary: str, port: int, ca: Path | None, auth: list[str]) -> bool:
    argv = [binary, "-h", LOOPBACK, "-p", str(port), *auth, "--no-auth-warning", "PING"]
    if ca is not None:
        argv[1:1] = ["--tls", "--cacert", str(ca)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return done.stdout.strip() == "PONG"


GROUP = "tlsbench"
IAM_GROUP = "iambench"
IAM_USER = "bench-iam"
PASSWORD_USER = "bench-pw"
PASSWORD = "bench-password-" + "0" * 16
PHASES: dict[str, tuple[str, ...]] = {
    "preferred": ("direct", "direct-tls", "endpoint-preferred"),
    "required": ("endpoint", "haproxy", "haproxy-2"),
    "iam": ("rbac-endpoint", "iam-endpoint"),  # the other group: the mode of GROUP does not matter
}


def start(work: Path, tools: dict[str, str], started: list[subprocess.Popen[bytes]], server: ServerProcess) -> Setup:
    """The server, its group (TLS preferred), and the hand-configured HAProxy in front of the node."""
    cli, haproxy_binary = tools["redis-cli"], tools["haproxy"]
    server.start()
    ec = server.client()
    ec.create_replication_group(
        ReplicationGroupId=GROUP,
        ReplicationGroupDescription="bench/tls.py",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=1,
        TransitEncryptionEnabled=True,
        TransitEncryptionMode="preferred",
    )
    group = settle(ec)
    node_group = group["NodeGroups"][0]
    (member,) = node_group["NodeGroupMembers"]
    tls_port = int(member["ReadEndpoint"]["Port"])
    node_dir = server.data_dir / "nodes" / member["CacheClusterId"] / member["CacheNodeId"]
    plain_port = int((node_dir / "port-plain").read_text())
    endpoint_dir = server.data_dir / "nodes" / "host.endpoints" / "haproxy"  # the proxy of every group
    ca = server.data_dir / "ca.pem"
    endpoint = int(node_group["PrimaryEndpoint"]["Port"])
    ports = {"direct": plain_port, "direct-tls": tls_port, "endpoint": endpoint, "endpoint-preferred": endpoint}
    endpoint_worker = _worker_of(endpoint_dir)
    proxies: dict[str, Callable[[], int | None]] = {
        "direct": lambda: None,
        "direct-tls": lambda: None,
        "endpoint": endpoint_worker,
        "endpoint-preferred": endpoint_worker,
    }
    for target in HAND_TARGETS:
        hand_dir = work / target
        hand_dir.mkdir(mode=0o700)
        ports[target] = free_port()
        (hand_dir / "haproxy.cfg").write_text(hand_config(ports[target], tls_port))
        hand = spawn([haproxy_binary, "-db", "-f", str(hand_dir / "haproxy.cfg")], hand_dir, hand_dir / "haproxy.log")
        started.append(hand)
        proxies[target] = _constant(hand.pid)
    redis_pid = int((node_dir / "pid").read_text())
    redis_pids = {target: redis_pid for target in ports}
    auth: dict[str, Callable[[], list[str]]] = {}
    iam_group = start_iam(server, ec)
    iam_member = iam_group["NodeGroups"][0]["NodeGroupMembers"][0]
    iam_node_dir = server.data_dir / "nodes" / iam_member["CacheClusterId"] / iam_member["CacheNodeId"]
    ports["rbac-endpoint"] = int(iam_group["NodeGroups"][0]["PrimaryEndpoint"]["Port"])
    ports["iam-endpoint"] = int(
        json.loads((server.data_dir / "server.json").read_text())["redis_iam_endpoint"].rpartition(":")[2]
    )
    redis_pids["rbac-endpoint"] = redis_pids["iam-endpoint"] = int((iam_node_dir / "pid").read_text())
    proxies["rbac-endpoint"] = endpoint_worker  # the same proxy serves both groups
    assert server.process is not None
    control_plane = server.process.pid
    proxies["iam-endpoint"] = lambda: control_plane
    auth["rbac-endpoint"] = lambda: ["--user", PASSWORD_USER, "-a", PASSWORD]
    signer = iam_signer(server)
    auth["iam-endpoint"] = lambda: ["--user", IAM_USER, "-a", signer()]
    for target in ("direct-tls", "endpoint-preferred", *HAND_TARGETS, "rbac-endpoint", "iam-endpoint"):
        how = auth.get(target, list)()
        wait_for(lambda target=target, how=how: ready(cli, ports[target], ca, how), f"{target} to answer over TLS")  # type: ignore[misc]
    return Setup(
        ports=ports,
        redis_pids=redis_pids,
        proxies=proxies,
        ca=ca,
        ec=ec,
        endpoint_master=lambda: int((endpoint_dir / "pid").read_text()),
        auth=auth,
        control_plane=control_plane,
    )


def start_iam(server: ServerProcess, ec: Any) -> dict[str, Any]:
    """The IAM phase's group: TLS required, a user group with a password user and an IAM user."""
    ec.create_user(
        UserId=PASSWORD_USER, UserName=PASSWORD_USER, Engine="redis", AccessString="on ~* +@all", Passwords=[PASSWORD]
    )
    ec.create_user(
        UserId=IAM_USER,
        UserName=IAM_USER,
        Engine="redis",
        AccessString="on ~* +@all",
        AuthenticationMode={"Type": "iam"},
    )
    ec.create_user_group(UserGroupId="bench-users", Engine="redis", UserIds=["default", PASSWORD_USER, IAM_USER])
    ec.create_replication_group(
        ReplicationGroupId=IAM_GROUP,
        ReplicationGroupDescription="bench/tls.py, IAM",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=1,
        TransitEncryptionEnabled=True,
        UserGroupIds=["bench-users"],
    )
    return settle(ec, IAM_GROUP)


def iam_signer(server: ServerProcess) -> Callable[[], str]:
    """Tokens of an IAM user whose policy allows Connect on the group and the user (evaluated at
    every connection, as the root key's would not be), made as AWS documents them."""
    iam = server.client("iam")
    iam.create_user(UserName="bench")
    arns = [
        f"arn:aws:elasticache:us-east-1:000000000000:replicationgroup:{IAM_GROUP}",
        f"arn:aws:elasticache:us-east-1:000000000000:user:{IAM_USER}",
    ]
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "elasticache:Connect", "Resource": arns}],
    }
    iam.put_user_policy(UserName="bench", PolicyName="connect", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    return lambda: connect_token(credentials, IAM_GROUP, IAM_USER)


def settle(ec: Any, group_id: str = GROUP) -> dict[str, Any]:
    """Wait until the group is available with nothing pending (a move between modes done)."""
    found: dict[str, Any] = {}

    def done() -> bool:
        (group,) = ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
        found.update(group)
        return bool(group["Status"] == "available" and not group["PendingModifiedValues"])

    wait_for(done, f"{group_id} available", timeout=120.0)
    return found


def move(setup: Setup, mode: str) -> None:
    """The group to ``mode`` through ModifyReplicationGroup, live; returns once the endpoint runs the
    new config alone (its reload forks a new worker; the old one leaves once its sessions have)."""
    (group,) = setup.ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
    if mode not in ("preferred", "required") or group.get("TransitEncryptionMode") == mode:
        return
    before = setup.proxies["endpoint"]()
    setup.ec.modify_replication_group(ReplicationGroupId=GROUP, TransitEncryptionMode=mode, ApplyImmediately=True)
    settle(setup.ec)
    master = setup.endpoint_master()
    wait_for(lambda: children(master) not in ([], [before]) and len(children(master)) == 1, "the endpoint's reload")


def _constant(pid: int) -> Callable[[], int | None]:
    return lambda: pid


def _worker_of(endpoint_dir: Path) -> Callable[[], int | None]:
    """The newest worker of the endpoint's HAProxy master (a reload replaces it)."""

    def worker() -> int | None:
        master = int((endpoint_dir / "pid").read_text())
        workers = children(master)
        if not workers:
            raise RuntimeError(f"no HAProxy worker under {master}")
        return max(workers)

    return worker


def parse_csv(text: str) -> dict[str, dict[str, float]]:
    """``test -> {rps, p50, p99}`` from redis-benchmark 7's ``--csv`` output (whichever tests ran)."""
    return {
        row["test"]: {
            "rps": float(row["rps"]),
            "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]),
        }
        for row in csv.DictReader(io.StringIO(text))
    }


def benchmark(binary: str, port: int, args: list[str], ca: Path | None, auth: list[str]) -> dict[str, dict[str, float]]:
    argv = [binary, "-h", LOOPBACK, "-p", str(port), "--csv", *auth, *args]
    if ca is not None:
        argv += ["--tls", "--cacert", str(ca)]
    done = subprocess.run(argv, capture_output=True, timeout=BENCH_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return parse_csv(done.stdout.decode())


def measure(
    binary: str, setup: Setup, target: str, *, trial: int, args: list[str], cells: dict[str, str], round_: int = 0
) -> list[Result]:
    """One redis-benchmark run; ``cells`` maps its test names (SET, GET) to the cells they fill."""
    proxy = setup.proxies[target]()
    redis_pid = setup.redis_pids[target]
    redis_before = cpu_seconds(redis_pid)
    proxy_before = cpu_seconds(proxy) if proxy is not None else 0.0
    control_before = cpu_seconds(setup.control_plane)
    auth = setup.auth[target]() if target in setup.auth else []
    parsed = benchmark(binary, setup.ports[target], args, setup.ca if target in TLS_TARGETS else None, auth)
    redis_cpu = cpu_seconds(redis_pid) - redis_before
    control_cpu = cpu_seconds(setup.control_plane) - control_before
    proxy_cpu = cpu_seconds(proxy) - proxy_before if proxy is not None else 0.0
    missing = [test for test in cells if test not in parsed]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {missing} row for {target}")
    return [
        Result(
            trial,
            round_,
            target,
            cell,
            parsed[test]["rps"],
            parsed[test]["p50"],
            parsed[test]["p99"],
            redis_cpu,
            proxy_cpu,
            control_cpu,
        )
        for test, cell in cells.items()
    ]


def run(trials: int, requests: int, clients: int, rounds: int) -> tuple[list[Result], dict[str, Any]]:
    tools = binaries("redis-benchmark", "redis-cli", "haproxy")
    binary = tools["redis-benchmark"]
    results: list[Result] = []
    started: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-tls-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "cf")
        try:
            setup = start(Path(tmp), tools, started, server)
            meta: dict[str, Any] = {
                "cpus": os.cpu_count(),
                "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                "requests": requests,
                "clients": clients,
                "rounds": rounds,
                "redis_benchmark": subprocess.run(
                    [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
                ).stdout.strip(),
            }
            for trial in range(trials):
                phases = list(PHASES.items())
                for mode, targets in phases[trial % 2 :] + phases[: trial % 2]:
                    move(setup, mode)
                    order = targets[trial % len(targets) :] + targets[: trial % len(targets)]
                    for pipeline in PIPELINES:
                        for round_ in range(rounds if pipeline > 1 else 1):
                            # Each round rotates the order once more, so no target always runs first.
                            turned = order[round_ % len(order) :] + order[: round_ % len(order)]
                            for target in turned:
                                args = ["-n", str(requests), "-c", str(clients), "-t", "set,get"]
                                args += ["-P", str(pipeline)] if pipeline > 1 else []
                                cells = {t: f"{t} P{pipeline}" for t in TESTS}
                                got = measure(binary, setup, target, trial=trial, args=args, cells=cells, round_=round_)
                                results += got
                                line = "  ".join(f"{r.cell} {r.rps:,.0f} rps" for r in got)
                                print(f"trial {trial + 1}/{trials} {target}: {line}", file=sys.stderr)
                    for target in [t for t in order if t in RECONNECT_TARGETS]:
                        args = ["-n", str(RECONNECT_REQUESTS), "-c", str(clients), "-t", "set", "-k", "0"]
                        got = measure(binary, setup, target, trial=trial, args=args, cells={"SET": "SET new-session"})
                        results += got
                        rps = got[0].rps
                        print(f"trial {trial + 1}/{trials} {target}: SET new-session {rps:,.0f} rps", file=sys.stderr)
            meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            for process in reversed(started):
                stop_process(process)
            server.cleanup()
    return results, meta


# -- reporting -----------------------------------------------------------------------------------

CELLS = [f"{t} P{p}" for p in PIPELINES for t in TESTS]
ALL_CELLS = [*CELLS, "SET new-session"]


def median_of(results: list[Result], target: str, cell: str, field: str) -> float | None:
    values = [getattr(r, field) for r in results if (r.target, r.cell) == (target, cell)]
    return statistics.median(values) if values else None


def ratio(results: list[Result], num: str, den: str, cell: str) -> float | None:
    a, b = median_of(results, num, cell, "rps"), median_of(results, den, cell, "rps")
    return round(a / b, 3) if a is not None and b else None


RATIOS = {
    "endpoint/haproxy": ("endpoint", "haproxy"),
    "endpoint-preferred/haproxy": ("endpoint-preferred", "haproxy"),
    "direct-tls/direct (TLS cost)": ("direct-tls", "direct"),
    "endpoint/direct": ("endpoint", "direct"),
    "haproxy/direct-tls": ("haproxy", "direct-tls"),
    "rbac-endpoint/endpoint": ("rbac-endpoint", "endpoint"),
    "iam-endpoint/rbac-endpoint": ("iam-endpoint", "rbac-endpoint"),
}


def pairs(results: list[Result], num: str, den: str, cell: str) -> list[float]:
    """num/den of every two runs made in the same trial and round (seconds apart)."""
    by_run = {(r.trial, r.round, r.target): r.rps for r in results if r.cell == cell}
    return sorted(
        rps / by_run[(t, n, den)] for (t, n, target), rps in by_run.items() if target == num and (t, n, den) in by_run
    )


def paired_ratio(results: list[Result], num: str, den: str, cell: str) -> float | None:
    """Median of ``pairs``, which cancels the slow drifts of a shared machine's load that a ratio of
    medians keeps."""
    found = pairs(results, num, den, cell)
    return round(statistics.median(found), 3) if found else None


def spread(values: list[float]) -> dict[str, float]:
    """Lowest, quartiles and highest of a sorted list (inclusive quartiles)."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {
        "pairs": len(values),
        "min": round(values[0], 3),
        "q1": round(q1, 3),
        "median": round(q2, 3),
        "q3": round(q3, 3),
        "max": round(values[-1], 3),
    }


SPREAD_PAIRS = {"endpoint/haproxy": ("endpoint", "haproxy"), "haproxy-2/haproxy (A/A)": ("haproxy-2", "haproxy")}


def summary(results: list[Result], meta: dict[str, Any], trials: int) -> dict[str, Any]:
    medians = {
        f"{t} {c}": {
            "rps": median_of(results, t, c, "rps"),
            "p50_ms": median_of(results, t, c, "p50_ms"),
            "p99_ms": median_of(results, t, c, "p99_ms"),
        }
        for t in TARGETS
        for c in ALL_CELLS
        if median_of(results, t, c, "rps") is not None
    }
    ratios = {name: {c: ratio(results, num, den, c) for c in ALL_CELLS} for name, (num, den) in RATIOS.items()}
    for num in ("endpoint", "endpoint-preferred", "haproxy-2"):
        ratios[f"{num}/haproxy, paired*"] = {c: paired_ratio(results, num, "haproxy", c) for c in ALL_CELLS}
    iam_pair = ("iam-endpoint", "rbac-endpoint")
    ratios["iam-endpoint/rbac-endpoint, paired*"] = {c: paired_ratio(results, *iam_pair, c) for c in ALL_CELLS}
    per_request = 1e6 / (len(TESTS) * meta["requests"])
    cpu = {
        f"{t} P{p}": {
            "redis": round((median_of(results, t, f"SET P{p}", "redis_cpu_s") or 0) * per_request, 2),
            "proxy": round((median_of(results, t, f"SET P{p}", "proxy_cpu_s") or 0) * per_request, 2),
            "control": round((median_of(results, t, f"SET P{p}", "control_cpu_s") or 0) * per_request, 2),
        }
        for t in TARGETS
        for p in PIPELINES
    }
    spreads = {
        name: {c: spread(found) for c in ALL_CELLS if (found := pairs(results, num, den, c))}
        for name, (num, den) in SPREAD_PAIRS.items()
    }
    return {
        **meta,
        "trials": trials,
        "medians": medians,
        "ratios": ratios,
        "paired_spread": spreads,
        "cpu_us_per_request": cpu,
        "tolerance": TOLERANCE,
        "target_met_medians": _lowest(ratios["endpoint/haproxy"]) >= TOLERANCE,
        "target_met_paired": _lowest(ratios["endpoint/haproxy, paired*"]) >= TOLERANCE,
    }


def _lowest(values: dict[str, float | None]) -> float:
    """The lowest ratio over the throughput cells (P1 and P16)."""
    return min(v for c, v in values.items() if v is not None and c in CELLS)


def table(stats: dict[str, Any]) -> str:
    med = stats["medians"]
    width = 12
    header = f"{'rps (median)':<30}" + "".join(f"{c:>{width + 4 if 'new' in c else width}}" for c in ALL_CELLS)
    rows = [header, "-" * len(header)]

    def cell(value: float | None, fmt: str, c: str) -> str:
        text = "-" if value is None else format(value, fmt)
        return text.rjust(width + 4 if "new" in c else width)

    for target in TARGETS:
        rows.append(
            f"{target:<30}" + "".join(cell(med.get(f"{target} {c}", {}).get("rps"), ",.0f", c) for c in ALL_CELLS)
        )
    rows.append("-" * len(header))
    for name, values in stats["ratios"].items():
        rows.append(f"{name:<30}" + "".join(cell(values[c], ".2f", c).replace(" -", "  -") for c in ALL_CELLS))
    rows.append("* median of the ratios of runs made in the same trial (and round, for -P 16), seconds apart")
    rows += ["", "spread of the paired ratios: lowest / quartiles / highest (how many pairs)", "-" * len(header)]
    for name, cells in stats["paired_spread"].items():
        for c, s in cells.items():
            rows.append(
                f"{name:<30}{c:<16}{s['min']:>6.2f}  {s['q1']:.2f} / {s['median']:.2f} / {s['q3']:.2f}  {s['max']:.2f}"
                f"  ({s['pairs']:.0f})"
            )
    rows += ["", f"{'p50 / p99 (ms)':<30}" + "".join(f"{c:>{width + 4}}" for c in CELLS), "-" * len(header)]
    for target in TARGETS:
        cells = [f"{med[f'{target} {c}']['p50_ms']:.3f}/{med[f'{target} {c}']['p99_ms']:.3f}" for c in CELLS]
        rows.append(f"{target:<30}" + "".join(f"{x:>{width + 4}}" for x in cells))
    cpu = stats["cpu_us_per_request"]
    rows += ["", "CPU microseconds per request (median run): redis-server + proxy process", "-" * len(header)]
    for target in TARGETS:
        parts = [
            f"P{p}: {cpu[f'{target} P{p}']['redis']:.2f} + {cpu[f'{target} P{p}']['proxy']:.2f}" for p in PIPELINES
        ]
        rows.append(f"{target:<30}" + "".join(f"{x:>22}" for x in parts))
    rows += [
        "",
        "CPU microseconds per request of the control plane, where the IAM endpoint runs (its reconcile loop",
        "runs meanwhile: a non-IAM target shows that alone)",
        "-" * len(header),
    ]
    for target in TARGETS:
        parts = [f"P{p}: {cpu[f'{target} P{p}']['control']:.2f}" for p in PIPELINES]
        rows.append(f"{target:<30}" + "".join(f"{x:>22}" for x in parts))
    rows.append("")
    for name, key in (("ratio of medians", "endpoint/haproxy"), ("paired", "endpoint/haproxy, paired*")):
        met = "met" if _lowest(stats["ratios"][key]) >= TOLERANCE else "NOT met"
        rows.append(
            f"our TLS endpoint at >= {TOLERANCE}x of the hand-configured HAProxy in every cell ({name}): {met}"
            f" (lowest {_lowest(stats['ratios'][key]):.2f}x)"
        )
    floor = stats["ratios"]["haproxy-2/haproxy, paired*"]
    rows.append(
        "two identical hand-configured HAProxies (haproxy-2/haproxy, paired), the noise alone: lowest"
        f" {_lowest(floor):.2f}x, highest {max(v for c, v in floor.items() if v is not None and c in CELLS):.2f}x"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3, help="trials per target and cell (default 3)")
    parser.add_argument("--requests", type=int, default=100_000, help="redis-benchmark -n (default 100000)")
    parser.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"-P 16 runs per target and trial (default {ROUNDS})"
    )
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.rounds < 1:
        parser.error("--trials and --rounds must be at least 1")
    unwind_on_sigterm()
    results, meta = run(args.trials, args.requests, args.clients, args.rounds)
    stats = summary(results, meta, args.trials)
    print(
        f"redis-benchmark -n {args.requests} -c {args.clients} -t set,get [-P 16] [--tls --cacert ca.pem],"
        f" {args.trials} trials per cell ({args.rounds} rounds of -P 16 each),"
        f" new-session cell -n {RECONNECT_REQUESTS} -k 0, {meta['cpus']} CPUs;"
        f" load average (1/5/15 min) {meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end\n"
    )
    print(table(stats))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
