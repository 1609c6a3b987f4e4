"""Sentinels by hand, set up as cachefleet sets up its shared ones, for the floors of ``bench/scale.py``.

Two floors use them, each the same engine work as the installation's without any control plane:

- **idle, with Sentinels**: the floor's groups watched by sets of three Sentinels, a set for every
  ``size`` groups, each Sentinel told its groups, their replicas and its two peers in its file
  (``known-replica``, ``known-sentinel``), so that nothing is left to discover while idle. Against the
  floor of redis-servers alone, it tells what watching every node with three Sentinels costs by itself.
- **a creation by hand**: three redis-servers (the primary first, the replicas once it listens), then
  the group joined to three running Sentinels as the control plane joins a shared set (``MONITOR``
  and ``SET``, then each Sentinel's hello published on the primary once all of them listen there),
  until every Sentinel lists both replicas ready and both peers linked: what cachefleet's
  ``available`` waits for from the engines (its endpoint proxy aside), with the bench's own polls in
  place of the reconciler.

Settings as cachefleet's: ``down-after-milliseconds`` 1000, ``failover-timeout`` 3000,
``parallel-syncs`` 1, Sentinel's ping period (1 s) and the short ask period (``SENTINEL DEBUG``).
No passwords: the floor's redis-servers have no ACLs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench._common import wait_for
from bench.provision import LOOPBACK, free_ports, link_up, replica_client, start_floor, stop_processes, write_configs
from cachefleet.engines import sentinel
from cachefleet.engines.redis import process_lines
from cachefleet.settings import Settings

QUORUM = 2
# What cachefleet sets for every group on a shared Sentinel (``engines/sentinel.py`` ``Monitor``), less
# the ACL user and the scripts: written in the files of the idle floor, SET at run time on a join.
SETTINGS = (
    ("down-after-milliseconds", str(Settings().sentinel_down_after_ms)),
    ("failover-timeout", str(sentinel.FAILOVER_TIMEOUT_MS)),
    ("parallel-syncs", "1"),
)
POLL = 0.01  # as bench/provision.py's floor
DEADLINE = 60.0


@dataclass(frozen=True)
class Group:
    """A floor group: its name and its nodes' ports, the primary first."""

    name: str
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Peer:
    port: int
    my_id: str


def config(me: Peer, peers: list[Peer], groups: list[Group], data_dir: Path) -> str:
    """A Sentinel's file: every group monitored, with its replicas and peers known from the start."""
    lines = [
        *process_lines(LOOPBACK, me.port, data_dir),
        f"sentinel myid {me.my_id}",
        "sentinel resolve-hostnames no",
        "sentinel announce-hostnames no",
    ]
    for group in groups:
        name, (primary, *replicas) = group.name, group.ports
        lines += [
            f"sentinel monitor {name} {LOOPBACK} {primary} {QUORUM}",
            *(f"sentinel {setting} {name} {value}" for setting, value in SETTINGS),
            *(f"sentinel known-replica {name} {LOOPBACK} {port}" for port in replicas),
            *(f"sentinel known-sentinel {name} {LOOPBACK} {p.port} {p.my_id}" for p in peers),
        ]
    return "\n".join(lines) + "\n"


def _wait(predicate: Callable[[], bool], what: str) -> None:
    wait_for(predicate, what, DEADLINE, POLL)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _fields(entry: object) -> dict[str, str]:
    """One entry of ``SENTINEL REPLICAS``/``SENTINELS``: a dict as redis-py parses it, or a flat
    name/value list as the server sends it."""
    if isinstance(entry, dict):
        return {str(k): str(v) for k, v in entry.items()}
    items = list(entry) if isinstance(entry, list) else []
    return {str(k): str(v) for k, v in zip(items[::2], items[1::2], strict=False)}


def ready(client: redis.Redis, group: Group, peers: int) -> bool:
    """Whether this Sentinel could fail the group over now, by cachefleet's own test
    (``engines/sentinel.py``): every replica listed, linked and synced; every peer linked."""
    try:
        replicas = client.execute_command("SENTINEL", "REPLICAS", group.name)
        others = client.execute_command("SENTINEL", "SENTINELS", group.name)
    except (redis.RedisError, OSError):
        return False  # not monitored yet, or not answering yet
    primary = (LOOPBACK, group.ports[0])
    return (
        sentinel.ready_replicas([_fields(r) for r in replicas], primary) >= len(group.ports) - 1
        and sentinel.connected_peers([_fields(p) for p in others]) >= peers
    )


@dataclass
class SentinelSet:
    """Three Sentinels by hand; the caller stops them (``stop``) by PID."""

    root: Path
    binary: str
    peers: list[Peer] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    clients: list[redis.Redis] = field(default_factory=list)

    def start(self, groups: list[Group], count: int = 3) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.peers = [Peer(port, os.urandom(20).hex()) for port in free_ports(count)]
        for me in self.peers:
            directory = self.root / f"sentinel{me.port}"
            directory.mkdir()
            conf = directory / "sentinel.conf"
            others = [p for p in self.peers if p is not me]
            conf.write_text(config(me, others, groups, directory))
            with (directory / "node.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        sentinel.argv(self.binary, conf),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=directory,
                        start_new_session=True,
                    )
                )
            self.clients.append(replica_client(me.port, decode=True))
        for client in self.clients:
            _wait(lambda c=client: _answers(c), "a hand Sentinel to answer")
            client.execute_command("SENTINEL", "DEBUG", "ask-period", str(sentinel.ASK_PERIOD_MS))

    def wait_ready(self, groups: list[Group]) -> None:
        peers = len(self.peers) - 1
        for client in self.clients:
            for group in groups:
                _wait(lambda c=client, g=group: ready(c, g, peers), f"hand Sentinels to watch {group.name}")

    def join(self, group: Group) -> None:
        """As the control plane joins a group to a shared set: monitored and set on each Sentinel,
        then each Sentinel's hello published on the primary, so that its peers know it at once."""
        name, primary = group.name, group.ports[0]
        for client in self.clients:
            client.execute_command("SENTINEL", "MONITOR", name, LOOPBACK, str(primary), str(QUORUM))
            client.execute_command("SENTINEL", "SET", name, *(word for pair in SETTINGS for word in pair))
        publisher = replica_client(primary, decode=True)
        try:
            # A hello reaches only the Sentinels subscribed on the primary by then (each subscribes at
            # its next timer tick after MONITOR), so it is published once all of them are.
            _wait(lambda: self._subscribed(publisher) >= len(self.peers), f"hand Sentinels to subscribe on {name}")
            for peer in self.peers:
                hello = sentinel.Hello(LOOPBACK, peer.port, peer.my_id)
                publisher.publish(sentinel.HELLO_CHANNEL, sentinel.hello_message(hello, name, (LOOPBACK, primary)))
        finally:
            publisher.close()

    @staticmethod
    def _subscribed(primary: redis.Redis) -> int:
        ((_, count),) = primary.pubsub_numsub(sentinel.HELLO_CHANNEL)
        return int(count)

    def leave(self, group: Group) -> None:
        for client in self.clients:
            client.execute_command("SENTINEL", "REMOVE", group.name)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        stop_processes(self.processes)


def creation(redis_binary: str, root: Path, sentinels: SentinelSet, name: str) -> float:
    """Seconds from spawning a group's primary to every Sentinel of the set ready to fail it over.
    The group's processes are stopped and it leaves the set again before this returns."""
    root.mkdir(parents=True)
    ports = free_ports(3)
    group = Group(name, tuple(ports))
    confs = write_configs(root, [(LOOPBACK, port) for port in ports])
    replicas = [replica_client(port) for port in ports[1:]]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        start_floor(redis_binary, confs, ports, "gated", processes)
        # Joined once the replicas are synced, as the control plane does (Sentinel's first INFO of
        # the primary then lists them).
        _wait(lambda: all(link_up(c) for c in replicas), f"{name}'s replicas to link")
        sentinels.join(group)
        sentinels.wait_ready([group])
        elapsed = time.perf_counter() - t0
        sentinels.leave(group)
        return elapsed
    finally:
        for client in replicas:
            client.close()
        stop_processes(processes)
