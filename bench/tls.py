"""What TLS costs, and whether our TLS endpoint keeps up with a hand-configured HAProxy doing the same job.

Run from the repository root, under the bench lock::

    flock /work/helpers/bench.lock env PYTHONPATH=. .venv/bin/python bench/tls.py --trials 3 [--json]

One redis-server serves every target. It runs the config ``engines.redis`` renders with TLS
``preferred`` (a plain port and a TLS port on the same process, the certificate from the
installation's CA made by ``tls.files``), so plain text and TLS are measured against the same
server. The targets, each measured with ``redis-benchmark -n N -c 50 -t set,get --csv`` without and
with ``-P 16`` (``--tls --cacert ca.pem`` for every TLS target):

- ``direct``: the node's plain port, no TLS;
- ``direct-tls``: the node's TLS port;
- ``endpoint``: an HAProxy running the config ``engines.haproxy`` renders for TLS ``required``
  (TCP mode: TLS passes through to the node; health checks over TLS every 500 ms);
- ``endpoint-preferred``: the config rendered for TLS ``preferred`` (the first byte of each
  session picks the TLS or the plain backend; checks on the plain port);
- ``haproxy``: a hand-configured HAProxy doing the same TLS job (TCP mode, ``nbthread 1``, one
  frontend, one backend whose only server is the node's TLS port, no check).

A last cell opens a new TLS session per request (``-k 0``, SET, P1): it shows what the first-byte
sniffing of ``preferred`` costs where it runs, at connection set-up.

Trials are interleaved (the order rotates from trial to trial); tables show medians. CPU time of
the redis-server and of the proxy process is read from ``/proc``. The target is our endpoint at
0.95x or better of the hand-configured HAProxy in every cell. The run exits 0 either way.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import binaries, free_port, stop_process, unwind_on_sigterm, wait_for
from bench.endpoint import children, cpu_seconds
from cachefleet.engines import haproxy
from cachefleet.engines import redis as redis_engine
from cachefleet.engines.redis import NodeTls, RedisNodeConfig
from cachefleet.model.transit import TransitMode
from cachefleet.tls import certs, files

LOOPBACK = "127.0.0.1"
BENCH_TIMEOUT = 300.0
TOLERANCE = 0.95
TARGETS = ("direct", "direct-tls", "endpoint", "endpoint-preferred", "haproxy")
TLS_TARGETS = frozenset(TARGETS) - {"direct"}
PIPELINES = (1, 16)
TESTS = ("SET", "GET")
RECONNECT_TARGETS = ("endpoint", "endpoint-preferred", "haproxy")
RECONNECT_REQUESTS = 1000


@dataclass(frozen=True)
class Result:
    trial: int
    target: str
    cell: str  # "SET P1", "GET P16", "SET new-session"
    rps: float
    p50_ms: float
    p99_ms: float
    redis_cpu_s: float
    proxy_cpu_s: float


@dataclass
class Setup:
    ports: dict[str, int]
    redis_pid: int
    proxies: dict[str, Callable[[], int | None]]
    ca: Path


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


def ready(binary: str, port: int, ca: Path | None) -> bool:
    argv = [binary, "-h", LOOPBACK, "-p", str(port), "PING"]
    if ca is not None:
        argv[1:1] = ["--tls", "--cacert", str(ca)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return done.stdout.strip() == "PONG"


def start(work: Path, tools: dict[str, str], started: list[subprocess.Popen[bytes]]) -> Setup:
    cli, haproxy_binary = tools["redis-cli"], tools["haproxy"]
    now = dt.datetime.now(dt.UTC)
    authority = files.ensure_authority(work, now, files.Validity())
    ca = files.ca_path(work)
    node_dir = work / "node"
    node_dir.mkdir(mode=0o700)
    pem = node_dir / "tls.pem"
    identity = certs.Identity("bench-node", certs.Role.NODE, ips=(LOOPBACK,))
    files.write_atomic(pem, certs.issue(authority, identity, now, dt.timedelta(days=1)), 0o600)
    plain_port, tls_port = free_port(), free_port()
    admin = secrets.token_hex(16)
    config = RedisNodeConfig(
        port=plain_port,
        bind=LOOPBACK,
        data_dir=node_dir,
        maxmemory_bytes=1 << 30,
        admin_user="cachefleet-admin",
        admin_password=admin,
        tls=NodeTls(tls_port, TransitMode.PREFERRED, pem, ca),
    )
    (node_dir / redis_engine.CONFIG_FILE).write_text(redis_engine.render_config(config))
    node = spawn([tools["redis-server"], str(node_dir / redis_engine.CONFIG_FILE)], node_dir, node_dir / "node.log")
    started.append(node)
    wait_for(lambda: ready(cli, plain_port, None), "the node")

    ports = {"direct": plain_port, "direct-tls": tls_port}
    proxies: dict[str, Callable[[], int | None]] = {"direct": lambda: None, "direct-tls": lambda: None}
    for target, mode in (("endpoint", TransitMode.REQUIRED), ("endpoint-preferred", TransitMode.PREFERRED)):
        endpoint_dir = work / target
        endpoint_dir.mkdir(mode=0o700)
        primary, reader = free_port(), free_port()
        plain = ((tls_port, plain_port),) if mode is TransitMode.PREFERRED else ()
        cfg = haproxy.EndpointConfig(
            bind=LOOPBACK,
            primary_port=primary,
            reader_port=reader,
            nodes=((LOOPBACK, tls_port),),
            primary=(LOOPBACK, tls_port),
            admin_user="cachefleet-admin",
            admin_password=admin,
            tls=haproxy.EndpointTls(mode, ca, plain_ports=plain),
        )
        conf = endpoint_dir / haproxy.CONFIG_FILE
        conf.write_text(haproxy.render_config(cfg))
        master = spawn(list(haproxy.argv(haproxy_binary, conf)), endpoint_dir, endpoint_dir / "haproxy.log")
        started.append(master)
        ports[target] = primary
        proxies[target] = _worker_of(master.pid)
    hand_dir = work / "haproxy"
    hand_dir.mkdir(mode=0o700)
    hand_port = free_port()
    (hand_dir / "haproxy.cfg").write_text(hand_config(hand_port, tls_port))
    hand = spawn([haproxy_binary, "-db", "-f", str(hand_dir / "haproxy.cfg")], hand_dir, hand_dir / "haproxy.log")
    started.append(hand)
    ports["haproxy"] = hand_port
    proxies["haproxy"] = lambda: hand.pid
    for target in TLS_TARGETS:
        wait_for(lambda target=target: ready(cli, ports[target], ca), f"{target} to answer over TLS")  # type: ignore[misc]
    return Setup(ports=ports, redis_pid=node.pid, proxies=proxies, ca=ca)


def _worker_of(master: int) -> Callable[[], int | None]:
    def worker() -> int | None:
        workers = children(master)
        if len(workers) != 1:
            raise RuntimeError(f"expected one HAProxy worker under {master}, found {workers}")
        return workers[0]

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


def benchmark(binary: str, port: int, args: list[str], ca: Path | None) -> dict[str, dict[str, float]]:
    argv = [binary, "-h", LOOPBACK, "-p", str(port), "--csv", *args]
    if ca is not None:
        argv += ["--tls", "--cacert", str(ca)]
    done = subprocess.run(argv, capture_output=True, timeout=BENCH_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return parse_csv(done.stdout.decode())


def measure(
    binary: str, setup: Setup, target: str, *, trial: int, args: list[str], cells: dict[str, str]
) -> list[Result]:
    """One redis-benchmark run; ``cells`` maps its test names (SET, GET) to the cells they fill."""
    proxy = setup.proxies[target]()
    redis_before = cpu_seconds(setup.redis_pid)
    proxy_before = cpu_seconds(proxy) if proxy is not None else 0.0
    parsed = benchmark(binary, setup.ports[target], args, setup.ca if target in TLS_TARGETS else None)
    redis_cpu = cpu_seconds(setup.redis_pid) - redis_before
    proxy_cpu = cpu_seconds(proxy) - proxy_before if proxy is not None else 0.0
    missing = [test for test in cells if test not in parsed]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {missing} row for {target}")
    return [
        Result(trial, target, cell, parsed[test]["rps"], parsed[test]["p50"], parsed[test]["p99"], redis_cpu, proxy_cpu)
        for test, cell in cells.items()
    ]


def run(trials: int, requests: int, clients: int) -> tuple[list[Result], dict[str, Any]]:
    tools = binaries("redis-benchmark", "redis-cli", "redis-server", "haproxy")
    binary = tools["redis-benchmark"]
    results: list[Result] = []
    started: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-tls-bench-") as tmp:
        try:
            setup = start(Path(tmp), tools, started)
            meta: dict[str, Any] = {
                "cpus": os.cpu_count(),
                "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                "requests": requests,
                "clients": clients,
                "redis_benchmark": subprocess.run(
                    [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
                ).stdout.strip(),
            }
            for trial in range(trials):
                order = TARGETS[trial % len(TARGETS) :] + TARGETS[: trial % len(TARGETS)]
                for pipeline in PIPELINES:
                    for target in order:
                        args = ["-n", str(requests), "-c", str(clients), "-t", "set,get"]
                        args += ["-P", str(pipeline)] if pipeline > 1 else []
                        got = measure(
                            binary, setup, target, trial=trial, args=args, cells={t: f"{t} P{pipeline}" for t in TESTS}
                        )
                        results += got
                        line = "  ".join(f"{r.cell} {r.rps:,.0f} rps" for r in got)
                        print(f"trial {trial + 1}/{trials} {target}: {line}", file=sys.stderr)
                for target in [t for t in order if t in RECONNECT_TARGETS]:
                    args = ["-n", str(RECONNECT_REQUESTS), "-c", str(clients), "-t", "set", "-k", "0"]
                    got = measure(binary, setup, target, trial=trial, args=args, cells={"SET": "SET new-session"})
                    results += got
                    print(
                        f"trial {trial + 1}/{trials} {target}: SET new-session {got[0].rps:,.0f} rps", file=sys.stderr
                    )
            meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            for process in reversed(started):
                stop_process(process)
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
}


def paired_ratio(results: list[Result], num: str, den: str, cell: str) -> float | None:
    """Median over trials of num/den measured in the same trial (seconds apart), which cancels the
    slow drifts of a shared machine's load that a ratio of medians keeps."""
    by_trial = {(r.trial, r.target): r.rps for r in results if r.cell == cell}
    pairs = [
        by_trial[(t, num)] / by_trial[(t, den)] for t, target in by_trial if target == num and (t, den) in by_trial
    ]
    return round(statistics.median(pairs), 3) if pairs else None


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
    for num in ("endpoint", "endpoint-preferred"):
        ratios[f"{num}/haproxy, paired*"] = {c: paired_ratio(results, num, "haproxy", c) for c in ALL_CELLS}
    per_request = 1e6 / (len(TESTS) * meta["requests"])
    cpu = {
        f"{t} P{p}": {
            "redis": round((median_of(results, t, f"SET P{p}", "redis_cpu_s") or 0) * per_request, 2),
            "proxy": round((median_of(results, t, f"SET P{p}", "proxy_cpu_s") or 0) * per_request, 2),
        }
        for t in TARGETS
        for p in PIPELINES
    }
    return {
        **meta,
        "trials": trials,
        "medians": medians,
        "ratios": ratios,
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
    rows.append("* median of the ratios of runs made in the same trial, seconds apart")
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
    rows.append("")
    for name, key in (("ratio of medians", "endpoint/haproxy"), ("paired", "endpoint/haproxy, paired*")):
        met = "met" if _lowest(stats["ratios"][key]) >= TOLERANCE else "NOT met"
        rows.append(
            f"our TLS endpoint at >= {TOLERANCE}x of the hand-configured HAProxy in every cell ({name}): {met}"
            f" (lowest {_lowest(stats['ratios'][key]):.2f}x)"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3, help="trials per target and cell (default 3)")
    parser.add_argument("--requests", type=int, default=100_000, help="redis-benchmark -n (default 100000)")
    parser.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    unwind_on_sigterm()
    results, meta = run(args.trials, args.requests, args.clients)
    stats = summary(results, meta, args.trials)
    print(
        f"redis-benchmark -n {args.requests} -c {args.clients} -t set,get [-P 16] [--tls --cacert ca.pem],"
        f" {args.trials} trials per cell, new-session cell -n {RECONNECT_REQUESTS} -k 0, {meta['cpus']} CPUs;"
        f" load average (1/5/15 min) {meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end\n"
    )
    print(table(stats))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
