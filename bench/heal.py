"""Healing a kill -9: how long a replica's redis-server is gone, with the default resync and a slow one.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/heal.py --trials 7 [--slow-resync 30] [--json]

Two cachefleet servers, one after the other: one with the default resync interval (1 s) and one
with ``--slow-resync`` (30 s by default). Each creates one Multi-AZ group (3 nodes, automatic
failover) and then, ``--trials`` times, kills a replica's redis-server with SIGKILL by PID and times
until its pidfile names a new live process whose ``master_link_status`` is ``up``
(``bench/scale.py``'s ``heal_time``). The process exit wakes the group at once (a pidfd per process,
``control/exits.py``), so both should heal in well under a second; with only the resync to notice,
the slow server would take up to its interval. A measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.server import ServerProcess

from bench._common import unwind_on_sigterm
from bench._common import wait_for as _wait_for
from bench.scale import heal_time

TARGET_S = 1.0
GROUP = "heal"
PAUSE = 0.5  # untimed, between kills: the group's own passes after a heal settle first


def group_available(client: Any) -> bool:
    groups = client.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
    return bool(groups) and groups[0]["Status"] == "available"


def measure(resync: float | None, trials: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="cachefleet-heal-") as tmp:
        extra = ("--resync-interval", str(resync)) if resync is not None else ()
        server = ServerProcess(Path(tmp) / "data", *extra)
        try:
            server.start()
            client = server.client()
            client.create_replication_group(
                CacheNodeType="cache.t4g.micro",
                ReplicationGroupId=GROUP,
                ReplicationGroupDescription="heal bench",
                NumCacheClusters=3,
                AutomaticFailoverEnabled=True,
                MultiAZEnabled=True,
            )
            _wait_for(lambda: group_available(client), f"{GROUP} to become available", 60.0, 0.02)
            times = []
            for i in range(trials):
                time.sleep(PAUSE)
                times.append(heal_time(server, client, GROUP))
                print(f"resync {resync or 'default'}: trial {i + 1}/{trials}: {times[-1]:.3f} s", file=sys.stderr)
            return times
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.cleanup()  # the server and every node it recorded, by PID


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=7, help="kills per server (default 7)")
    parser.add_argument("--slow-resync", type=float, default=30.0, help="the slow server's interval (default 30)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    unwind_on_sigterm()
    results = {
        "default (1 s)": measure(None, args.trials),
        f"{args.slow_resync:g} s": measure(args.slow_resync, args.trials),
    }
    print(f"kill -9 of a replica -> back with its link up, {args.trials} trials per server\n")
    print(f"{'resync interval':>16}  {'median (s)':>10}  {'min':>6}  {'max':>6}  within {TARGET_S:g} s")
    summary = {}
    for label, times in results.items():
        median = statistics.median(times)
        summary[label] = {"median_s": round(median, 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3)}
        print(f"{label:>16}  {median:>10.3f}  {min(times):>6.3f}  {max(times):>6.3f}  {max(times) <= TARGET_S}")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
