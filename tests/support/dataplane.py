"""Real redis-server and redis-sentinel processes inside a netns ``Topology``, and the writer that
measures outages through an endpoint. Shared by the namespace tests and ``bench/follower.py``.

Configs are the smallest that behave like the product's nodes for the data path (no ACLs: the
endpoint mechanics do not depend on them). Every process is started through ``Topology.popen`` and
so killed by PID at cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cachefleet.endpoints.base import Address
from cachefleet.endpoints.watch import SentinelWatch
from cachefleet.engines.installed import require_binaries
from cachefleet.engines.sentinel import ASK_PERIOD_MS
from tests.support.netns import Member, Topology

_BINARIES = require_binaries("redis-server", "redis-sentinel")
REDIS_SERVER = _BINARIES["redis-server"]
REDIS_SENTINEL = _BINARIES["redis-sentinel"]
WRITER = Path(__file__).with_name("netns_writer.py")


def free_port() -> int:
    """A port nothing listens on in the calling thread's namespace (use with ``Topology.call``)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    member: Member
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> tuple[str, int]:
        return (self.member.address, self.port)


def start_redis(topo: Topology, member: Member, work: Path, *, who: str, replicaof: Node | None = None,
                password: str | None = None, extra: Sequence[str] = ()) -> Node:  # fmt: skip
    """A redis-server on ``member`` (bound to its address and loopback) whose key ``who`` is ``who``
    (a replica gets its primary's). With ``password``: ``requirepass`` and ``masterauth``; ``extra``
    config lines go last."""
    port = topo.call(member, free_port)
    workdir = work / f"{member.role}-{port}"
    workdir.mkdir(parents=True)
    lines = [
        f"bind {member.address} 127.0.0.1",
        f"port {port}",
        f"dir {workdir}",
        'save ""',
        "appendonly no",
        "protected-mode no",
        "daemonize no",
        'logfile ""',
        "repl-diskless-sync-delay 0",
    ]
    if replicaof is not None:
        lines.append(f"replicaof {replicaof.member.address} {replicaof.port}")
    if password is not None:
        lines += [f"requirepass {password}", f"masterauth {password}"]
    lines += extra
    (workdir / "redis.conf").write_text("\n".join(lines) + "\n")
    with (workdir / "redis.log").open("wb") as log:
        process = topo.popen(member, [REDIS_SERVER, str(workdir / "redis.conf")], stdout=log, stderr=log)
    node = Node(member, port, process)
    wait(lambda: using(topo, member, node.address, lambda c: c.ping(), password=password) is True,
         f"redis on {member.role}:{port}")  # fmt: skip
    if replicaof is None:
        using(topo, member, node.address, lambda c: c.set("who", who), password=password)
    return node


def start_sentinels(topo: Topology, members: Sequence[Member], work: Path, *, master: str, primary: Node,
                    replicas: Sequence[Node], down_after_ms: int = 1000) -> list[Node]:  # fmt: skip
    """One Sentinel per member, quorum 2, knowing each other and the replicas from the start
    (``known-sentinel`` / ``known-replica``, so they are usable in about a second)."""
    ports = [topo.call(m, free_port) for m in members]
    ids = [f"{i + 1:040x}" for i in range(len(members))]
    sentinels = []
    for i, member in enumerate(members):
        workdir = work / f"sentinel-{member.role}-{ports[i]}"
        workdir.mkdir(parents=True)
        lines = [
            f"bind {member.address} 127.0.0.1",
            f"port {ports[i]}",
            f"dir {workdir}",
            "daemonize no",
            'logfile ""',
            "protected-mode no",
            f"sentinel myid {ids[i]}",
            f"sentinel monitor {master} {primary.member.address} {primary.port} 2",
            f"sentinel down-after-milliseconds {master} {down_after_ms}",
            f"sentinel failover-timeout {master} 10000",
            f"sentinel parallel-syncs {master} 1",
        ]
        lines += [f"sentinel known-replica {master} {r.member.address} {r.port}" for r in replicas]
        lines += [
            f"sentinel known-sentinel {master} {other.address} {ports[j]} {ids[j]}"
            for j, other in enumerate(members)
            if j != i
        ]
        (workdir / "sentinel.conf").write_text("\n".join(lines) + "\n")
        with (workdir / "sentinel.log").open("wb") as log:
            process = topo.popen(member, [REDIS_SENTINEL, str(workdir / "sentinel.conf")], stdout=log, stderr=log)
        sentinels.append(Node(member, ports[i], process))
    return sentinels


def ask(topo: Topology, member: Member, address: tuple[str, int], *command: str) -> Any:
    """One command from inside ``member``'s namespace; None when it cannot be reached."""
    return using(topo, member, address, lambda client: client.execute_command(*command))


def using(topo: Topology, member: Member, address: tuple[str, int], fn: Callable[[redis.Redis], Any], *,
          password: str | None = None) -> Any:  # fmt: skip
    """``fn(client)`` with a short-lived client from inside ``member``'s namespace (redis-py's parsed
    replies: ``sentinel_master`` and the like); None when the server cannot be reached."""
    return topo.call(member, _using, address, fn, password)


def _using(address: tuple[str, int], fn: Callable[[redis.Redis], Any], password: str | None) -> Any:
    client = redis.Redis(*address, password=password, socket_timeout=0.5, socket_connect_timeout=0.5,
                         retry=Retry(NoBackoff(), 0), decode_responses=True)  # fmt: skip
    try:
        return fn(client)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_group_ready(topo: Topology, primary: Node, replicas: Sequence[Node], sentinels: Sequence[Node],
                     master: str) -> None:  # fmt: skip
    """Every replica's link up, every Sentinel sees every replica healthy and every peer connected."""
    observer = primary.member

    def replicas_up() -> bool:
        for r in replicas:
            info = ask(topo, observer, r.address, "INFO", "replication")
            if not isinstance(info, dict) or info.get("master_link_status") != "up":
                return False
        return True

    def sentinels_ready() -> bool:
        for s in sentinels:
            state = using(topo, observer, s.address, lambda c: c.sentinel_master(master))
            seen = using(topo, observer, s.address, lambda c: c.sentinel_slaves(master))
            peers = using(topo, observer, s.address, lambda c: c.sentinel_sentinels(master))
            if not (isinstance(state, dict) and isinstance(seen, list) and isinstance(peers, list)):
                return False
            if "s_down" in state.get("flags", set()) or len(seen) != len(replicas) or len(peers) != len(sentinels) - 1:
                return False
            if any("disconnected" in x["flags"] or x.get("master-link-status") != "ok" for x in seen):
                return False
            if any("disconnected" in x["flags"] for x in peers):
                return False
        return True

    wait(replicas_up, "the replicas' links")
    wait(sentinels_ready, "the sentinels to know the group")


class SentinelGroup:
    """A primary on h1, replicas on h2 and h3, one Sentinel per host (quorum 2), all synced and
    known to each other when the constructor returns."""

    def __init__(self, topo: Topology, work: Path, master: str, down_after_ms: int = 1000) -> None:
        h1, h2, h3 = topo.hosts[:3]
        self.topo, self.master = topo, master
        self.nodes = [start_redis(topo, h1, work, who="p1")]
        self.nodes += [start_redis(topo, m, work, who="", replicaof=self.nodes[0]) for m in (h2, h3)]
        self.sentinels = start_sentinels(topo, [h1, h2, h3], work, master=master, primary=self.nodes[0],
                                         replicas=self.nodes[1:], down_after_ms=down_after_ms)  # fmt: skip
        wait_group_ready(topo, self.nodes[0], self.nodes[1:], self.sentinels, master)
        for s in self.sentinels:
            if self._tune(s) is None:
                raise RuntimeError(f"the Sentinel on {s.member.role} did not take the ask period")

    def _tune(self, sentinel: Node) -> Any:
        """The product's ask period (``engines.sentinel.ASK_PERIOD_MS``); None when the Sentinel cannot
        be reached. With Sentinel's default, a peer's "down" answer about the old primary outlived the
        switch, and one Sentinel's brief false +sdown of the new primary started a second failover (two
        repoints in one kill). It is runtime only: a restarted Sentinel needs it again."""
        return ask(self.topo, sentinel.member, sentinel.address, "SENTINEL", "DEBUG", "ask-period", str(ASK_PERIOD_MS))

    def by_address(self, address: Address) -> Node:
        (node,) = [n for n in self.nodes if Address(*n.address) == address]
        return node

    def primary(self, observer: Member) -> Address:
        """What the second Sentinel names (asked from ``observer``'s namespace)."""
        named = using(self.topo, observer, self.sentinels[1].address,
                      lambda c: c.sentinel_get_master_addr_by_name(self.master))  # fmt: skip
        return Address(str(named[0]), int(named[1]))

    def restart_sentinel(self, sentinel: Node) -> Node:
        """The same Sentinel (its config, rewritten by itself, and port) started again, its ask period
        set as the control plane sets it on a Sentinel it restarts."""
        (conf,) = [Path(a) for a in sentinel.process.args if str(a).endswith("sentinel.conf")]
        with (conf.parent / "sentinel.log").open("ab") as log:
            process = self.topo.popen(sentinel.member, [REDIS_SENTINEL, str(conf)], stdout=log, stderr=log)
        restarted = Node(sentinel.member, sentinel.port, process)
        wait(lambda: self._tune(restarted) is not None, "the restarted Sentinel's ask period")
        return restarted

    def sentinel_addresses(self) -> dict[str, Address]:
        return {s.member.role: Address(*s.address) for s in self.sentinels}

    def stop(self) -> None:
        """SIGKILL every process of the group, by PID."""
        for node in (*self.nodes, *self.sentinels):
            if node.process.poll() is None:
                node.process.kill()
            node.process.wait(5)


class WatchThread:
    """A ``SentinelWatch`` running on its own event loop, on a thread inside ``member``'s namespace."""

    def __init__(self, topo: Topology, member: Member, watch: SentinelWatch) -> None:
        self.watch = watch
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._future: Future[None] = topo.submit(member, self._run)
        if not self._started.wait(10):
            raise TimeoutError("the follower's loop did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.watch.run())
        self.loop.call_soon(self._started.set)
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the watch's loop (its state is not thread-safe)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self._future.result(10)


# -- the writer ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    start: float
    end: float
    ok: bool
    detail: str  # the server's `who`, or the error


def start_writer(topo: Topology, member: Member, host: str, port: int, *, seconds: float,
                 baseline: float = 0.3) -> subprocess.Popen[bytes]:  # fmt: skip
    """The writer of ``netns_writer.py`` on ``member``, returned once it has been writing for
    ``baseline`` seconds (``seconds`` counts from its start)."""
    process = topo.popen(member, [sys.executable, str(WRITER), host, str(port), str(seconds)],
                         stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ""})  # fmt: skip
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"writing":
        raise RuntimeError(f"the writer on {member.role} never wrote to {host}:{port}")
    time.sleep(baseline)
    return process


def writer_ops(process: subprocess.Popen[bytes], timeout: float = 30.0) -> list[Op]:
    out, _ = process.communicate(timeout=timeout)
    return [Op(*op) for op in json.loads(out)["ops"]]


@dataclass(frozen=True)
class Outage:
    errors: int  # failed writes issued after the fault
    recovered_after: float  # fault -> end of the first acknowledged write issued after it
    served_by: str  # who answered that write
    max_gap_before: float  # the largest gap between acknowledged writes before the fault


def outage(ops: Sequence[Op], fault: float, served_by: str | None = None) -> Outage:
    """From the writer's record: what a fault at ``fault`` (CLOCK_MONOTONIC) cost it. With
    ``served_by``, recovery is the first acknowledged write answered by that server."""
    before = [op.end for op in ops if op.ok and op.end < fault]
    if len(before) < 10:
        raise AssertionError(f"the writer had only {len(before)} acknowledged writes before the fault")
    gaps = [b - a for a, b in itertools.pairwise(before)]
    after = [op for op in ops if op.start >= fault or (op.end >= fault and not op.ok)]
    recovered = next((op for op in after if op.ok and (served_by is None or op.detail == served_by)), None)
    if recovered is None:
        errors = [op.detail for op in after if not op.ok][:3]
        raise AssertionError(f"no acknowledged write after the fault ({len(after)} tries; first errors {errors})")
    errors = sum(1 for op in after if not op.ok and op.start <= recovered.start)
    return Outage(errors, recovered.end - fault, recovered.detail, max(gaps))
