"""Write outage through a DNAT primary endpoint re-pointed by the failover follower, after kill -9.

Run from the repository root, as root (network namespaces)::

    PYTHONPATH=. .venv/bin/python bench/follower.py --trials 5 [--down-after 1000,500,250] [--json]

The topology (``tests/support/netns.py``): hosts h1-h3, a client namespace c and a control-plane
namespace cp on one bridge, in a subnet that exists only inside them. For each trial a fresh group
starts: a primary on h1, replicas on h2 and h3, one Sentinel per host (quorum 2, the given
down-after, ``known-replica``/``known-sentinel`` lines). The primary endpoint is cp's address and a
port, DNATed by cp's ``table ip cachefleet`` to the primary (forwarded, masqueraded). The follower
(``cachefleet.endpoints.watch.SentinelWatch``) runs in cp, subscribed to the three Sentinels; its
re-point replaces the DNAT target and deletes the old target's conntrack entries. A writer in c
(``tests/support/netns_writer.py``: SET + GET in one round trip every 5 ms, no retries, 0.3 s
timeouts) writes through the endpoint; the primary redis-server is killed with SIGKILL by PID.

Per trial: the writer's outage (kill -> end of its first acknowledged write after it), when the
follower re-pointed and why, and, side by side, when the first ``+switch-master`` arrived from any
Sentinel (what an endpoint driven by ``+switch-master`` alone, e.g. Sentinel's reconfig script, could
do at best). The target for the product is a median outage of 2.0 s or less. The run exits 0 either
way: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from tests.support.dataplane import SentinelGroup, WatchThread, free_port, outage, start_writer, writer_ops
from tests.support.netns import Topology

from bench._common import unwind_on_sigterm
from cachefleet.endpoints import conntrack
from cachefleet.endpoints.base import Address
from cachefleet.endpoints.dnat import DnatTable, enable_forwarding
from cachefleet.endpoints.follower import Repoint
from cachefleet.endpoints.nft import LibNft
from cachefleet.endpoints.watch import SentinelWatch

MASTER = "g"
TARGET_S = 2.0


@dataclass(frozen=True)
class Trial:
    down_after_ms: int
    outage_s: float
    errors: int
    repoint_s: float
    repoint_reason: str
    first_switch_master_s: float
    wait_promotion_s: float


def trial(topo: Topology, work: Path, down_after_ms: int) -> Trial:
    cp, client = topo.control, topo.client
    assert cp is not None
    assert client is not None
    group = SentinelGroup(topo, work, MASTER, down_after_ms=down_after_ms)
    try:
        table: DnatTable = topo.call(cp, lambda: DnatTable(LibNft()))
        ep = Address(cp.address, topo.call(cp, free_port))  # nothing listens there
        primary = group.primary(cp)
        topo.call(cp, table.set_targets, ep, [primary])

        async def repoint(change: Repoint) -> None:
            table.set_targets(ep, [change.new])
            if change.old is not None:
                await conntrack.flush(ep, change.old)

        follower = WatchThread(topo, cp, SentinelWatch(group.sentinel_addresses(), repoint))
        try:
            follower.call(follower.watch.track, MASTER, primary)
            deadline = time.monotonic() + 10
            while len(follower.call(follower.watch.reachable)) < 3:
                if time.monotonic() > deadline:
                    raise TimeoutError("the follower's subscriptions")
                time.sleep(0.02)
            seconds = 0.3 + down_after_ms / 1000 + 3.0
            writer = start_writer(topo, client, ep.host, ep.port, seconds=seconds)
            stop_at = time.monotonic() + seconds
            listener = topo.submit(cp, _listen, group.sentinel_addresses(), stop_at)
            time.sleep(0.1)  # the listener's subscriptions
            fault = time.monotonic()
            group.by_address(primary).process.send_signal(signal.SIGKILL)
            result = outage(writer_ops(writer), fault)
            events = listener.result(timeout=30)
            repoints = follower.call(lambda: list(follower.watch.repoints))
        finally:
            follower.stop()
        topo.call(cp, table.remove, ep)
    finally:
        group.stop()
    (at, change), *_ = repoints
    return Trial(
        down_after_ms,
        round(result.recovered_after, 4),
        result.errors,
        round(at - fault, 4),
        change.reason,
        round(events.get("+switch-master", float("nan")) - fault, 4),
        round(events.get("+failover-state-wait-promotion", float("nan")) - fault, 4),
    )


def _listen(sentinels: dict[str, Address], stop_at: float) -> dict[str, float]:
    """Runs on a thread in cp: the first time each event of interest was published by any Sentinel."""
    subs = []
    for address in sentinels.values():
        pubsub = redis.Redis(address.host, address.port, socket_timeout=0.5, decode_responses=True).pubsub()
        pubsub.psubscribe("+switch-master", "+failover-state-wait-promotion")
        subs.append(pubsub)
    seen: dict[str, float] = {}
    try:
        while time.monotonic() < stop_at and len(seen) < 2:
            for pubsub in subs:
                message = pubsub.get_message(timeout=0.002)
                if message and message["type"] == "pmessage":
                    seen.setdefault(str(message["channel"]), time.monotonic())
    finally:
        for pubsub in subs:
            pubsub.close()
    return seen


def summarise(trials: list[Trial]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for down_after in sorted({t.down_after_ms for t in trials}, reverse=True):
        rows = [t for t in trials if t.down_after_ms == down_after]
        cells: dict[str, Any] = {"trials": len(rows)}
        for name in ("outage_s", "repoint_s", "first_switch_master_s", "wait_promotion_s"):
            values = [getattr(t, name) for t in rows]
            cells[name] = {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}
        cells["reasons"] = sorted({t.repoint_reason for t in rows})
        cells["errors_median"] = statistics.median(t.errors for t in rows)
        cells["target_met"] = cells["outage_s"]["median"] <= TARGET_S
        out[str(down_after)] = cells
    return out


def table(summary: dict[str, Any]) -> str:
    header = (
        f"{'down-after':>10}  {'outage (writer)':>22}  {'follower re-point':>22}  {'1st +switch-master':>22}  reason"
    )
    rows = [header, "-" * len(header)]
    for down_after, cells in summary.items():
        shown = {
            name: f"{c['median']:.3f} ({c['min']:.2f}-{c['max']:.2f})"
            for name, c in cells.items()
            if isinstance(c, dict)
        }
        rows.append(
            f"{down_after + ' ms':>10}  {shown['outage_s']:>22}  {shown['repoint_s']:>22}"
            f"  {shown['first_switch_master_s']:>22}  {','.join(cells['reasons'])}"
        )
    rows.append("seconds after the kill: median (min-max)")
    rows += [
        f"target: median outage <= {TARGET_S} s at {d} ms: {'met' if c['target_met'] else 'NOT met'}"
        for d, c in summary.items()
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5, help="trials per down-after (default 5)")
    parser.add_argument("--down-after", default="1000,500,250", help="milliseconds, comma-separated")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/follower.py needs root (network namespaces)")
    settings = [int(x) for x in args.down_after.split(",")]
    unwind_on_sigterm()
    trials: list[Trial] = []
    meta = {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="cachefleet-follower-") as tmp, Topology(3, control_plane=True) as topo:
        assert topo.control is not None
        topo.call(topo.control, enable_forwarding)
        for i in range(args.trials):
            for down_after in settings:
                work = Path(tmp) / f"t{i}-{down_after}"
                result = trial(topo, work, down_after)
                trials.append(result)
                print(f"trial {i + 1}/{args.trials} down-after {down_after} ms: {asdict(result)}", file=sys.stderr)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarise(trials)
    print(f"{args.trials} trials per setting, {meta['cpus']} CPUs, load average {meta['loadavg_start']} at the start,"
          f" {meta['loadavg_end']} at the end\n")  # fmt: skip
    print(table(summary))
    if args.json:
        print(json.dumps({**meta, "summary": summary, "trials": [asdict(t) for t in trials]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
