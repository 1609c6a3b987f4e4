"""Write outage and acknowledged-write loss when the primary of an auto-failover group is killed.

Run from the repository root (``tests.support`` must be importable)::

    PYTHONPATH=. .venv/bin/python bench/failover.py --trials 5 [--json] [--logs DIR]
    sudo PYTHONPATH=. .venv/bin/python bench/failover.py --fault host --trials 3
    sudo PYTHONPATH=. .venv/bin/python bench/failover.py --fault partition --trials 1 [--min-replicas]

``--fault kill9`` (the default, described below) runs on one machine. ``host`` (the loss of the
primary's host) and ``partition`` (its AZ cut off, processes alive) run a control plane and three
agent hosts in network namespaces: ``bench/host_faults.py`` says how.

One ``cachefleet server`` serves the whole run. Each trial creates a fresh group
(``AutomaticFailoverEnabled=True, NumCacheClusters=3``: three redis-servers, three sentinels, one
HAProxy endpoint), waits until it is ``available`` and until its sentinels know each other and both
replicas (and both replicas report their link up), then starts, at once:

- ``endpoint``: plain redis-py through ``PrimaryEndpoint``, ``SET e:<trial>:<i>`` in a loop;
- ``sentinel``: a Sentinel-aware client connecting direct (redis-py ``Sentinel.master_for``), keys ``s:``;
- ``wait``: through ``PrimaryEndpoint`` again, ``SET w:<trial>:<i>`` then ``WAIT 1 100``; a write
  counts as acknowledged only when WAIT says one replica has it;
- one subscriber per sentinel to its ``+odown``/``+switch-master`` events: the raw Sentinel switch
  time is the first ``+switch-master`` any of the three publishes (the failover leader's).

Every client has retries off (``Retry(NoBackoff(), 0)``), 0.3 s timeouts and sleeps 10 ms after an
error. After ~1.5 s of load the primary redis-server is killed with SIGKILL by PID; the writers keep
going for ~6 s more. A client's outage is from the kill to the end of its first successful write
issued after the kill. Once the group has settled (all sentinels name the same new primary and the
endpoint reaches it), every acknowledged key is looked up with ``MGET`` through the primary endpoint:
an acknowledged key that is absent is lost. Errors a client sees after it has recovered are listed
too (with ``--after`` above ~11 s they show HAProxy's old worker cutting its sessions 10 s after the
endpoint reload that follows a failover). The group is deleted (and gone) before the next trial.
``--neighbours N`` first creates N idle Multi-AZ groups (their nodes, Sentinels and endpoints) that
stay up through every trial: failover with other groups present.
The run exits 0 whether or not the targets are met: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel
from tests.support.server import ServerProcess, is_alive

from bench._common import unwind_on_sigterm
from bench._common import wait_for as _wait_for
from bench.scale import create_group

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.05
DEADLINE = 60.0  # any single wait; far above a normal step, so hitting it means something broke
CLIENT_TIMEOUT = 0.3
ERROR_SLEEP = 0.01
LOAD_BEFORE_KILL = 1.5
LOAD_AFTER_KILL = 6.0
WAIT_TIMEOUT_MS = 100
TARGET_OUTAGE_S = 3.0
MGET_CHUNK = 1000
STOP_JOIN = 5.0


# -- waiting -------------------------------------------------------------------------------------


# -- clients -------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    _wait_for(predicate, what, timeout, POLL_INTERVAL)


def plain_client(port: int, timeout: float = CLIENT_TIMEOUT, password: str | None = None) -> redis.Redis:
    # No retries: a failed call must show as a failure, not be hidden behind redis-py's backoff.
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def sentinel_client(sentinel_ports: list[int], master_name: str, password: str) -> redis.Redis:
    # Every Sentinel requires the installation's Sentinel password.
    sentinel = Sentinel(
        [(LOOPBACK, port) for port in sentinel_ports],
        socket_timeout=CLIENT_TIMEOUT,
        sentinel_kwargs={"password": password, "socket_timeout": CLIENT_TIMEOUT},
    )
    return sentinel.master_for(
        master_name,
        socket_timeout=CLIENT_TIMEOUT,
        socket_connect_timeout=CLIENT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def sentinel_master(port: int, master_name: str, password: str) -> dict[str, Any] | None:
    """``SENTINEL MASTER`` as redis-py parses it; None when the sentinel does not answer."""
    client = plain_client(port, timeout=1.0, password=password)
    try:
        return dict(client.sentinel_master(master_name))
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def _flags(master: dict[str, Any]) -> set[str]:
    """A master's flags, which redis-py hands over as a set or as comma-separated text."""
    flags = master.get("flags", "")
    return {f for f in flags.split(",") if f} if isinstance(flags, str) else set(flags)


def replica_link_up(port: int) -> bool:
    client = plain_client(port, timeout=1.0)
    try:
        return client.info("replication").get("master_link_status") == "up"
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


# -- writers -------------------------------------------------------------------------------------


@dataclass
class Clock:
    """The kill time, shared with the writer threads (``None`` until the kill)."""

    kill_at: float | None = None


@dataclass
class Writer:
    name: str
    prefix: str
    client: redis.Redis
    clock: Clock
    stop: threading.Event
    deadline: float
    use_wait: bool = False
    acked: list[str] = field(default_factory=list)
    first_ok_after_kill: float | None = None
    attempts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    not_durable: int = 0  # WAIT answered 0: the SET happened but no replica confirmed it
    late_errors: list[float] = field(default_factory=list)  # after recovery, seconds after the kill
    crashed: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the driver; a thread must not die silently
            self.crashed = exc

    def _loop(self) -> None:
        i = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            key = f"{self.prefix}:{i}"
            i += 1
            self.attempts += 1
            started = time.monotonic()
            try:
                self.client.set(key, i)
                if self.use_wait and int(self.client.execute_command("WAIT", 1, WAIT_TIMEOUT_MS)) < 1:
                    self.not_durable += 1
                    continue
            except (redis.RedisError, OSError) as exc:
                self.errors[type(exc).__name__] += 1
                if self.first_ok_after_kill is not None and self.clock.kill_at is not None:
                    self.late_errors.append(time.monotonic() - self.clock.kill_at)
                time.sleep(ERROR_SLEEP)
                continue
            done = time.monotonic()
            self.acked.append(key)
            kill_at = self.clock.kill_at
            if self.first_ok_after_kill is None and kill_at is not None and started >= kill_at:
                self.first_ok_after_kill = done

    def outage(self) -> float | None:
        kill_at = self.clock.kill_at
        if kill_at is None or self.first_ok_after_kill is None:
            return None
        return self.first_ok_after_kill - kill_at


@dataclass
class EventWatcher:
    """Sentinel's pubsub events about the master, first time seen after the kill."""

    port: int
    password: str
    clock: Clock
    stop: threading.Event
    deadline: float
    master: str  # the group's: a shared Sentinel also publishes the events of other groups
    first_seen: dict[str, float] = field(default_factory=dict)
    crashed: BaseException | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = plain_client(self.port, timeout=2.0, password=self.password)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe("+odown", "+switch-master")
            self.subscribed.set()
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                message = pubsub.get_message(timeout=0.05)
                now = time.monotonic()
                if message is None or self.clock.kill_at is None:
                    continue
                channel, data = str(message["channel"]), str(message["data"])
                words = data.split()
                name = words[0] if channel == "+switch-master" else words[1] if words[:1] == ["master"] else None
                if name != self.master:
                    continue  # a replica or sentinel event, or another group's
                self.first_seen.setdefault(channel, now)
        except BaseException as exc:
            self.crashed = exc
        finally:
            pubsub.close()
            client.close()

    def after_kill(self, channel: str) -> float | None:
        at, kill_at = self.first_seen.get(channel), self.clock.kill_at
        return None if at is None or kill_at is None else at - kill_at


# -- one trial -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    endpoint_s: float | None
    sentinel_s: float | None
    wait_s: float | None  # first write after the kill that WAIT confirmed
    switch_s: float | None  # +switch-master seen on a sentinel
    odown_s: float | None
    lost_endpoint: int
    lost_wait: int
    lost_sentinel: int
    acked_endpoint: int
    acked_wait: int
    acked_sentinel: int
    not_durable: int
    errors: dict[str, dict[str, int]]
    late_errors: dict[str, list[float]]  # errors after the client's recovery, seconds after the kill
    ready_after_available_s: float  # sentinels and replicas converged, after Describe said available


def group_status(client: Any, group_id: str) -> str | None:
    """The group's Status, or None once it no longer exists."""
    try:
        groups = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ReplicationGroupNotFoundFault":
            return None
        raise
    return str(groups[0]["Status"]) if groups else None


def delete_group(client: Any, group_id: str) -> None:
    client.delete_replication_group(ReplicationGroupId=group_id)
    wait_for(lambda: group_status(client, group_id) is None, f"{group_id} to be deleted")


def sentinel_ports(server: ServerProcess, group_id: str) -> list[int]:
    """The group's own Sentinels (``CACHEFLEET_SHARED_SENTINELS=off``), else the shared ones that
    watch it (its set of three, among every set's)."""
    own = sorted((server.data_dir / "nodes" / f"rg.{group_id}").glob("sentinel-*/port"))
    if own:
        return [int(p.read_text().strip()) for p in own]
    shared = sorted((server.data_dir / "nodes" / "sentinels.shared").glob("shared-*/port"))
    ports = [int(p.read_text().strip()) for p in shared]
    return [port for port in ports if sentinel_master(port, group_id, server.sentinel_password()) is not None]


def wait_converged(ports: list[int], replica_ports: list[int], group_id: str, primary_port: int, password: str) -> None:
    """Every sentinel names the primary and knows both replicas and both other sentinels, and every
    replica's link is up: only then can a failover be agreed (the spike's arming gate)."""

    def ready() -> bool:
        for port in ports:
            master = sentinel_master(port, group_id, password)
            if master is None or int(master["port"]) != primary_port or _flags(master) != {"master"}:
                return False
            if int(master["num-other-sentinels"]) != len(ports) - 1:
                return False
            if int(master["num-slaves"]) != len(replica_ports):
                return False
        return all(replica_link_up(p) for p in replica_ports)

    wait_for(ready, f"the sentinels of {group_id} to converge")


def settled_primary(ports: list[int], group_id: str, killed_port: int, password: str) -> int | None:
    """The new primary's port once every sentinel names the same one, not the killed node."""
    named = set()
    for port in ports:
        master = sentinel_master(port, group_id, password)
        if master is None:
            return None
        named.add(int(master["port"]))
    if len(named) != 1 or killed_port in named:
        return None
    return named.pop()


def endpoint_reaches(endpoint_port: int, primary_port: int) -> bool:
    """The primary endpoint lands on ``primary_port`` and that node takes a write."""
    client = plain_client(endpoint_port, timeout=1.0)
    try:
        info = client.info()
        if info.get("role") != "master" or int(info.get("tcp_port", 0)) != primary_port:
            return False
        client.set("bench:settle", "1")
        return True
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def count_missing(endpoint_port: int, primary_port: int, keys: list[str]) -> int:
    client = plain_client(endpoint_port, timeout=5.0)
    try:
        missing = 0
        for start in range(0, len(keys), MGET_CHUNK):
            values = client.mget(keys[start : start + MGET_CHUNK])
            missing += sum(1 for v in values if v is None)
        # The answers came from the settled primary, not from some other node behind the endpoint.
        if int(client.info("server")["tcp_port"]) != primary_port:
            raise RuntimeError("the primary endpoint moved while the lost writes were counted")
        return missing
    finally:
        client.close()


def run_trial(server: ServerProcess, client: Any, index: int, after: float, logs: Path | None) -> Trial:
    group_id = f"ha{index}"
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="failover bench",
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
    )
    writers: list[Writer] = []
    threads: list[threading.Thread] = []
    stop = threading.Event()
    try:
        wait_for(lambda: group_status(client, group_id) == "available", f"{group_id} to become available")
        available_at = time.monotonic()
        (node_group,) = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0][
            "NodeGroups"
        ]
        endpoint_port = int(node_group["PrimaryEndpoint"]["Port"])
        members = node_group["NodeGroupMembers"]
        (primary,) = [m for m in members if m["CurrentRole"] == "primary"]
        primary_port = int(primary["ReadEndpoint"]["Port"])
        replica_ports = [int(m["ReadEndpoint"]["Port"]) for m in members if m is not primary]
        ports = sentinel_ports(server, group_id)
        if len(ports) != 3:
            raise RuntimeError(f"expected 3 sentinels for {group_id}, found ports {ports}")
        password = server.sentinel_password()
        wait_converged(ports, replica_ports, group_id, primary_port, password)
        ready_after = time.monotonic() - available_at
        primary_pid = server.node_pids()[f"{primary['CacheClusterId']}/{primary['CacheNodeId']}"]

        clock = Clock()
        deadline = time.monotonic() + LOAD_BEFORE_KILL + after + 10.0  # a bound if the driver stalls
        writers = [
            Writer("endpoint", f"e:{index}", plain_client(endpoint_port), clock, stop, deadline),
            Writer("sentinel", f"s:{index}", sentinel_client(ports, group_id, password), clock, stop, deadline),
            Writer("wait", f"w:{index}", plain_client(endpoint_port), clock, stop, deadline, use_wait=True),
        ]
        # Every sentinel: the leader announces +switch-master first, the others up to ~1 s later.
        watchers = [EventWatcher(port, password, clock, stop, deadline, group_id) for port in ports]
        threads = [threading.Thread(target=w.run, name=f"events-{w.port}", daemon=True) for w in watchers]
        for thread in threads:
            thread.start()
        for watcher in watchers:
            if not watcher.subscribed.wait(5.0):
                raise TimeoutError(f"the event subscription to sentinel {watcher.port} did not start")
        for writer in writers:
            threads.append(threading.Thread(target=writer.run, name=writer.name, daemon=True))
            threads[-1].start()

        time.sleep(LOAD_BEFORE_KILL)
        if not all(w.acked for w in writers):
            raise RuntimeError(f"a writer made no progress before the kill: {[len(w.acked) for w in writers]}")
        clock.kill_at = time.monotonic()
        os.kill(primary_pid, signal.SIGKILL)
        time.sleep(after)
        stop.set()
        for thread in threads:
            thread.join(STOP_JOIN)
        for crashed in [w.crashed for w in writers] + [w.crashed for w in watchers]:
            if crashed is not None:
                raise RuntimeError("a load thread failed") from crashed
        if is_alive(primary_pid):
            raise RuntimeError(f"the killed primary (pid {primary_pid}) is still running")

        new_primary: list[int] = []

        def settled() -> bool:
            port = settled_primary(ports, group_id, primary_port, password)
            if port is None or not endpoint_reaches(endpoint_port, port):
                return False
            new_primary[:] = [port]
            return True

        wait_for(settled, f"{group_id} to settle on a new primary")
        lost = {w.name: count_missing(endpoint_port, new_primary[0], w.acked) for w in writers}
        by_name = {w.name: w for w in writers}
        return Trial(
            endpoint_s=by_name["endpoint"].outage(),
            sentinel_s=by_name["sentinel"].outage(),
            wait_s=by_name["wait"].outage(),
            switch_s=_first([w.after_kill("+switch-master") for w in watchers]),
            odown_s=_first([w.after_kill("+odown") for w in watchers]),
            lost_endpoint=lost["endpoint"],
            lost_wait=lost["wait"],
            lost_sentinel=lost["sentinel"],
            acked_endpoint=len(by_name["endpoint"].acked),
            acked_wait=len(by_name["wait"].acked),
            acked_sentinel=len(by_name["sentinel"].acked),
            not_durable=by_name["wait"].not_durable,
            errors={w.name: dict(w.errors) for w in writers},
            late_errors={w.name: [round(t, 3) for t in w.late_errors] for w in writers},
            ready_after_available_s=ready_after,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(STOP_JOIN)
        for writer in writers:
            writer.client.close()
        if logs is not None:
            keep_logs(server, group_id, logs / f"trial{index}")
        delete_group(client, group_id)


def _first(values: list[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return min(seen) if seen else None


def keep_logs(server: ServerProcess, group_id: str, into: Path) -> None:
    """Copy the group's node, sentinel and endpoint logs before the delete removes them."""
    into.mkdir(parents=True, exist_ok=True)
    for log in (server.data_dir / "nodes").glob("*/*/node.log"):
        owner = log.parent.parent.name
        # The host's endpoint proxy and shared Sentinels serve every group, this one's too.
        if owner in (f"rg.{group_id}", "host.endpoints", "sentinels.shared") or owner.startswith(f"{group_id}-"):
            shutil.copy(log, into / f"{owner}.{log.parent.name}.log")


# -- reporting -----------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    """Median with a missing value (no recovery seen) counted as infinitely long."""
    if not values:
        return None
    result = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(result) else result


def _max(values: list[float | None]) -> float | None:
    """Largest value; None (no recovery seen) wins."""
    return None if None in values else max(v for v in values if v is not None)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summary(trials: list[Trial]) -> dict[str, Any]:
    endpoint = _median([t.endpoint_s for t in trials])
    return {
        "trials": len(trials),
        "median_endpoint_outage_s": _round(endpoint),
        "median_sentinel_client_outage_s": _round(_median([t.sentinel_s for t in trials])),
        "median_wait_client_outage_s": _round(_median([t.wait_s for t in trials])),
        "median_sentinel_switch_s": _round(_median([t.switch_s for t in trials])),
        "median_odown_s": _round(_median([t.odown_s for t in trials])),
        "max_endpoint_outage_s": _round(_max([t.endpoint_s for t in trials])),
        "lost_endpoint": sum(t.lost_endpoint for t in trials),
        "lost_wait": sum(t.lost_wait for t in trials),
        "lost_sentinel": sum(t.lost_sentinel for t in trials),
        "acked_endpoint": sum(t.acked_endpoint for t in trials),
        "acked_wait": sum(t.acked_wait for t in trials),
        "acked_sentinel": sum(t.acked_sentinel for t in trials),
        "wait_not_durable": sum(t.not_durable for t in trials),
        "median_ready_after_available_s": _round(statistics.median(t.ready_after_available_s for t in trials)),
        "target_outage_s": TARGET_OUTAGE_S,
        "outage_target_met": endpoint is not None and endpoint <= TARGET_OUTAGE_S,
        "no_wait_loss_target_met": all(t.lost_wait == 0 for t in trials),
        "late_errors": sum(len(v) for t in trials for v in t.late_errors.values()),
        "per_trial": [t.__dict__ for t in trials],
    }


def _s(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def table(trials: list[Trial], stats: dict[str, Any]) -> str:
    header = (
        f"{'trial':>6}  {'endpoint (s)':>12}  {'sentinel cl (s)':>15}  {'switch (s)':>10}  {'odown (s)':>9}"
        f"  {'WAIT cl (s)':>11}  {'lost plain':>10}  {'lost WAIT':>9}  {'lost sent.':>10}  {'acked p/W/s':>17}"
    )
    rows = [header, "-" * len(header)]
    for i, t in enumerate(trials, 1):
        acked = f"{t.acked_endpoint}/{t.acked_wait}/{t.acked_sentinel}"
        rows.append(
            f"{i:>6}  {_s(t.endpoint_s):>12}  {_s(t.sentinel_s):>15}  {_s(t.switch_s):>10}  {_s(t.odown_s):>9}"
            f"  {_s(t.wait_s):>11}  {t.lost_endpoint:>10}  {t.lost_wait:>9}  {t.lost_sentinel:>10}  {acked:>17}"
        )
    rows.append("-" * len(header))
    acked = f"{stats['acked_endpoint']}/{stats['acked_wait']}/{stats['acked_sentinel']}"
    rows.append(
        f"{'median':>6}  {_s(stats['median_endpoint_outage_s']):>12}"
        f"  {_s(stats['median_sentinel_client_outage_s']):>15}  {_s(stats['median_sentinel_switch_s']):>10}"
        f"  {_s(stats['median_odown_s']):>9}  {_s(stats['median_wait_client_outage_s']):>11}"
        f"  {'sum ' + str(stats['lost_endpoint']):>10}  {'sum ' + str(stats['lost_wait']):>9}"
        f"  {'sum ' + str(stats['lost_sentinel']):>10}  {acked:>17}"
    )
    outage = "met" if stats["outage_target_met"] else "NOT met"
    wait = "met" if stats["no_wait_loss_target_met"] else "NOT met"
    rows += [
        "",
        "endpoint / sentinel cl / WAIT cl: kill -> end of the client's first successful write issued after the kill;",
        "switch / odown: kill -> first +switch-master / +odown published by any sentinel;",
        "lost: acknowledged keys absent from the new primary; acked p/W/s: plain endpoint / WAIT / Sentinel client.",
        "",
        f"median write outage through the primary endpoint: {_s(stats['median_endpoint_outage_s'])} s"
        f"  (target <= {TARGET_OUTAGE_S:.0f} s: {outage})",
        f"acknowledged writes lost: plain endpoint writer {stats['lost_endpoint']}, WAIT 1 writer"
        f" {stats['lost_wait']} (target 0 with WAIT: {wait}), Sentinel client {stats['lost_sentinel']}",
        f"WAIT 1 {WAIT_TIMEOUT_MS} answered 0 (write not counted as acknowledged): {stats['wait_not_durable']} times",
        f"sentinels and replicas converged {_s(stats['median_ready_after_available_s'])} s (median) after"
        " Describe first said available",
    ]
    return "\n".join(rows)


def error_lines(trials: list[Trial]) -> str:
    lines = ["client errors per trial (exception: count):"]
    for i, t in enumerate(trials, 1):
        parts = [
            f"{name} " + (", ".join(f"{k} {v}" for k, v in sorted(errs.items())) or "none")
            for name, errs in t.errors.items()
        ]
        lines.append(f"  trial {i}: " + "; ".join(parts))
        late = {name: times for name, times in t.late_errors.items() if times}
        if late:
            lines.append("    after recovery (s after the kill): " + "; ".join(f"{k} {v}" for k, v in late.items()))
    return "\n".join(lines)


# -- driver --------------------------------------------------------------------------------------


def add_neighbours(client: Any, count: int, batch: int = 8) -> None:
    """``count`` idle Multi-AZ groups (3 nodes, Sentinels, endpoint) beside the trials' groups, created
    in concurrent batches and each waited for until ``available``."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (only with --neighbours)

    names = [f"neighbour{i:03d}" for i in range(count)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(batch) as pool:
        for start in range(0, count, batch):
            chunk = names[start : start + batch]
            list(pool.map(lambda g: create_group(client, g), chunk))
            for group_id in chunk:
                wait_for(lambda g=group_id: group_status(client, g) == "available", f"{group_id} available")
    print(f"{count} neighbour groups available in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def run(trials: int, after: float, logs: Path | None, neighbours: int = 0) -> list[Trial]:
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="cachefleet-failover-") as tmp:
        server = ServerProcess(Path(tmp) / "data")
        try:
            server.start()
            client = server.client()  # retries off (max_attempts=1): a failure must show, not hide
            add_neighbours(client, neighbours)
            for i in range(1, trials + 1):
                trial = run_trial(server, client, i, after, logs)
                print(
                    f"trial {i}/{trials}: endpoint {_s(trial.endpoint_s)}s  sentinel client {_s(trial.sentinel_s)}s"
                    f"  switch {_s(trial.switch_s)}s  lost plain/WAIT {trial.lost_endpoint}/{trial.lost_wait}",
                    file=sys.stderr,
                )
                results.append(trial)
        except BaseException:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            if logs is not None:
                logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(server.data_dir / "server.log", logs / "server.log")
            server.cleanup()  # the server and every node it recorded, by PID
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5, help="trials (default 5)")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON, last line")
    parser.add_argument(
        "--after", type=float, default=LOAD_AFTER_KILL, help=f"seconds of load after the kill ({LOAD_AFTER_KILL})"
    )
    parser.add_argument("--logs", type=Path, help="copy every trial's node, sentinel and endpoint logs here")
    parser.add_argument(
        "--neighbours", type=int, default=0, help="idle Multi-AZ groups created before the trials (default 0)"
    )
    parser.add_argument("--fault", choices=("kill9", "host", "partition"), default="kill9", help="the fault (kill9)")
    parser.add_argument(
        "--min-replicas", action="store_true", help="host/partition: min-replicas-to-write 1 on the group"
    )
    parser.add_argument("--max-lag", type=int, default=2, help="with --min-replicas: min-replicas-max-lag (2)")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    unwind_on_sigterm()
    if args.fault != "kill9":
        from bench import host_faults  # noqa: PLC0415 (root and namespaces only for these faults)

        outcomes = host_faults.run(args.fault, args.trials, min_replicas=args.min_replicas, max_lag=args.max_lag)
        print(host_faults.report(outcomes, args.max_lag))
        return 0
    if args.after < 4.0:
        parser.error("--after must be at least 4 s, or the clients may not have recovered yet")
    trials = run(args.trials, args.after, args.logs, args.neighbours)
    stats = summary(trials)
    print(
        f"kill -9 of the primary of a 1+2 group with automatic failover, {args.trials} trials,"
        f" {LOAD_BEFORE_KILL} s of load before and {args.after} s after the kill,"
        f" {args.neighbours} idle neighbour groups present\n"
    )
    print(table(trials, stats))
    print()
    print(error_lines(trials))
    if args.json:
        print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
