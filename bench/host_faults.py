"""Host faults in network namespaces: the loss of the primary's host, and a partition of its AZ.

Used by ``bench/failover.py --fault host`` and ``--fault partition`` (root: it builds namespaces with
``tests/support/netns.py``). One installation serves the run: a control plane, three hosts running
``cachefleet agent`` (AZs a, b, c) and a client namespace. Each trial creates a fresh 3-node Multi-AZ
group in a subnet group of the three hosts (optionally with ``min-replicas-to-write 1`` and
``min-replicas-max-lag``), waits until it is available, then runs writers with retries off, 0.3 s
timeouts and one write in flight each:

- ``endpoint``: plain ``SET`` through the group's ``PrimaryEndpoint``, from the client namespace;
- ``endpoint WAIT``: the same, each ``SET`` followed by ``WAIT 1 100``; acknowledged only when a
  replica has it;
- with ``partition``, two more inside the primary's own host namespace (clients in the cut-off AZ),
  straight to the primary node (the endpoint runs on the control plane's host, out of their reach):
  ``in-AZ`` plain and ``in-AZ WAIT``.

The fault comes after 1.5 s of load. ``host``: the primary's host is killed (its agent and every
process in its namespace by PID, then its link down); after 8 s its link comes back and its agent
starts again (``--host-lost-after`` is 60 s: the host returns before it is lost, and its agent
restarts the former primary only as a replica). ``partition``: the host's link goes down for 8 s with
every process alive, then comes back. Writers run 4 s more. Outage: from the moment the fault is
complete (the host's processes dead, its link down) to the acknowledgement of the first write sent
after it. Lost: acknowledged keys absent from the primary once the group is available
again. The group is deleted before the next trial. A measurement, not a test: it exits 0 either way.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.installation import Installation, Writer, values, wait
from tests.support.netns import Topology

ZONES = {"h1": "us-east-1a", "h2": "us-east-1b", "h3": "us-east-1c"}
LOST_AFTER = 60.0
LOAD_BEFORE = 1.5
FAULT_FOR = 8.0
LOAD_AFTER = 4.0
MIN_REPLICAS_GROUP = "min-replicas"


@dataclass
class Outcome:
    fault: str
    min_replicas: bool
    outage_s: dict[str, float | None] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    unreplicated: dict[str, int] = field(default_factory=dict)


def installation(work: Path) -> tuple[Topology, Installation]:
    topo = Topology(len(ZONES), client=True, control_plane=True)
    topo.create()
    inst = Installation(topo, work, ZONES, LOST_AFTER)
    inst.add_hosts("agents")
    return topo, inst


def min_replicas_group(inst: Installation, max_lag: int) -> None:
    inst.api("create_cache_parameter_group", CacheParameterGroupName=MIN_REPLICAS_GROUP,
             CacheParameterGroupFamily="redis7", Description="refuse writes no replica acknowledges")  # fmt: skip
    inst.api(
        "modify_cache_parameter_group",
        CacheParameterGroupName=MIN_REPLICAS_GROUP,
        ParameterNameValues=[
            {"ParameterName": "min-replicas-to-write", "ParameterValue": "1"},
            {"ParameterName": "min-replicas-max-lag", "ParameterValue": str(max_lag)},
        ],
    )


def trial(inst: Installation, index: int, fault: str, *, min_replicas: bool) -> Outcome:
    group = f"t{index}"
    extra: dict[str, Any] = {"CacheParameterGroupName": MIN_REPLICAS_GROUP} if min_replicas else {}
    inst.api("create_replication_group", ReplicationGroupId=group, ReplicationGroupDescription="fault trial",
             CacheNodeType="cache.t4g.micro", NumCacheClusters=3, PreferredCacheClusterAZs=list(ZONES.values()),
             AutomaticFailoverEnabled=True, MultiAZEnabled=True, CacheSubnetGroupName="agents", **extra)  # fmt: skip
    wait(lambda: inst.group_ready(group), f"group {group} available", 120, 0.5)
    primary = inst.primary(group)
    host = inst.host(inst.where(primary[0]))
    endpoint = inst.endpoint(group)
    writers = {"endpoint": Writer(endpoint, "p"), "endpoint WAIT": Writer(endpoint, "w", wait_replicas=True)}
    where = dict.fromkeys(writers, inst.client_ns)
    if fault == "partition":
        writers |= {"in-AZ": Writer(primary, "ap"), "in-AZ WAIT": Writer(primary, "aw", wait_replicas=True)}
        where |= {"in-AZ": host, "in-AZ WAIT": host}
    running = [inst.topo.submit(where[name], w.run) for name, w in writers.items()]
    outcome = Outcome(fault, min_replicas)
    try:
        time.sleep(LOAD_BEFORE)
        if fault == "host":
            inst.kill_host(host.role)
        else:
            inst.topo.link_down(host)
        at = time.monotonic()  # once the fault is complete: a write sent before may still be acknowledged
        time.sleep(FAULT_FOR)
        inst.topo.link_up(host)
        if fault == "host":
            inst.start_agent(host.role)
        time.sleep(LOAD_AFTER)
    finally:
        for writer in writers.values():
            writer.stop.set()
        for future in running:
            future.result(30)
    wait(lambda: inst.group_ready(group), f"group {group} whole again", 120, 0.5)
    now_primary = inst.settled_primary(group)
    for name, writer in writers.items():
        stored = inst.call(values, now_primary, list(writer.acked))
        outcome.outage_s[name] = writer.outage(at)
        outcome.acked[name] = len(writer.acked)
        outcome.lost[name] = sum(1 for k, v in writer.acked.items() if stored.get(k) != v)
        outcome.unreplicated[name] = writer.unreplicated
    inst.api("delete_replication_group", ReplicationGroupId=group)
    wait(lambda: not inst.members(group), f"group {group} deleted", 60, 0.5)
    return outcome


def run(fault: str, trials: int, *, min_replicas: bool, max_lag: int) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-hostfaults-") as tmp:
        topo, inst = installation(Path(tmp))
        try:
            if min_replicas:
                min_replicas_group(inst, max_lag)
            for index in range(1, trials + 1):
                outcome = trial(inst, index, fault, min_replicas=min_replicas)
                print(f"{fault} trial {index}/{trials}: {outcome}", file=sys.stderr)
                outcomes.append(outcome)
        finally:
            if inst.server is not None:
                inst.stop_server()
            topo.cleanup()
    return outcomes


def _s(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


def report(outcomes: list[Outcome], max_lag: int) -> str:
    names = list(outcomes[0].acked)
    fault = outcomes[0].fault
    setting = f"min-replicas-to-write 1, min-replicas-max-lag {max_lag}" if outcomes[0].min_replicas else "defaults"
    title = "loss of the primary's host" if fault == "host" else f"partition of the primary's AZ ({FAULT_FOR:.0f} s)"
    rows = [f"{title}, {setting}, {len(outcomes)} trials", ""]
    rows.append(f"{'writer':<14} {'median outage (s)':>18} {'max (s)':>8} {'acked':>8} {'lost':>6} {'WAIT=0':>7}")
    for name in names:
        outages = [o.outage_s[name] for o in outcomes]
        known = [v for v in outages if v is not None]
        median = statistics.median(known) if len(known) == len(outages) else None
        worst = max(known) if len(known) == len(outages) else None
        rows.append(
            f"{name:<14} {_s(median):>18} {_s(worst):>8} {sum(o.acked[name] for o in outcomes):>8}"
            f" {sum(o.lost[name] for o in outcomes):>6} {sum(o.unreplicated[name] for o in outcomes):>7}"
        )
    rows += [
        "",
        "outage: fault -> first write acknowledged after it ('none': some trial saw none);",
        "lost: acknowledged keys absent from the primary afterwards; WAIT=0: SETs WAIT said no replica had",
        "(not counted as acknowledged). The machine was shared with other work.",
    ]
    return "\n".join(rows)
