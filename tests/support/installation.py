"""A cachefleet installation in network namespaces: a control plane and ``cachefleet agent`` hosts
(``tests/support/netns.py``), driven as an operator and a client would, for the namespace tests
(``tests/integration/test_hosts_netns.py``) and the host-fault benches (``bench/failover.py``).

Every client runs inside the topology's client namespace; processes are killed by PID; the
namespaces are the harness's. Needs root.
"""

from __future__ import annotations

import configparser
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config
from redis.backoff import NoBackoff
from redis.retry import Retry

from cachefleet.cli.connection import ConnectionOptions, make_admin
from tests.support.netns import Member, Topology

AGENT_PORT = 7080
API_PORT = 8787
GROUP = "g"
Address = tuple[str, int]


def wait(predicate: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Installation:
    """A control plane (namespace ``cp``) and one ``cachefleet agent`` per host namespace; every
    client (the CLI, boto3, writers, samplers) runs in the client namespace."""

    topo: Topology
    work: Path
    zones: Mapping[str, str]  # host name -> its AZ
    lost_after: float = 3.0  # the server's --host-lost-after
    server: subprocess.Popen[bytes] | None = None
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _ec: Any = None

    @property
    def data_dir(self) -> Path:
        return self.work / "cp"

    @property
    def client_ns(self) -> Member:
        assert self.topo.client is not None
        return self.topo.client

    def host(self, name: str) -> Member:
        return next(h for h in self.topo.hosts if h.role == name)

    def agent_dir(self, name: str) -> Path:
        return self.work / f"agent-{name}"

    # -- processes ---------------------------------------------------------------------------------

    def start_server(self) -> None:
        control = self.topo.control
        assert control is not None
        (self.data_dir / "server.json").unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.work / "server.log").open("ab") as log:
            self.server = self.topo.popen(
                control,
                [sys.executable, "-m", "cachefleet", "server", "--data-dir", str(self.data_dir), "--listen",
                 f"{control.address}:{API_PORT}", "--node-address", control.address, "--host-lost-after",
                 str(self.lost_after)],
                stdout=log,
                stderr=log,
            )  # fmt: skip
        url = f"http://{control.address}:{API_PORT}/healthz"
        wait(lambda: (self.data_dir / "server.json").exists() and self.call(_healthy, url), "the server", 30)

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(30)

    def start_agent(self, name: str) -> None:
        member = self.host(name)
        with (self.work / f"agent-{name}.log").open("ab") as log:
            self.agents[name] = self.topo.popen(
                member,
                [sys.executable, "-m", "cachefleet", "agent", "--data-dir", str(self.agent_dir(name)), "--listen",
                 f"{member.address}:{AGENT_PORT}", "--zone", self.zones[name]],
                stdout=log,
                stderr=log,
            )  # fmt: skip

    def kill_host(self, name: str) -> None:
        """The whole host goes: its agent and every process in its namespace by PID, then its link."""
        self.agents[name].kill()
        self.agents[name].wait(10)
        listed = subprocess.run(
            ["ip", "netns", "pids", self.host(name).namespace], capture_output=True, text=True, check=True
        )
        for pid in listed.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        self.topo.link_down(self.host(name))

    # -- clients, all inside the client namespace --------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.topo.call(self.client_ns, fn, *args)

    def cli(self, *args: str, check: bool = True) -> str:
        done = self.topo.run(
            self.client_ns, [sys.executable, "-m", "cachefleet", "--data-dir", str(self.data_dir), *args],
            check=False, timeout=120,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"cachefleet {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def hosts(self, *, through_cli: bool = False) -> dict[str, dict[str, Any]]:
        """The hosts as ``cachefleet host list`` has them. Polls ask the admin API the CLI asks (from
        the client namespace too) rather than start a Python process per look, which under load
        took about a second each."""
        if through_cli:
            listed = json.loads(self.cli("--json", "host", "list"))
        else:
            admin = make_admin(ConnectionOptions(data_dir=self.data_dir))
            listed = self.call(admin.call, "GET", "hosts")
        return {h["id"]: h for h in listed["hosts"]}

    def api(self, operation: str, **params: Any) -> Any:
        if self._ec is None:
            server = json.loads((self.data_dir / "server.json").read_text())
            key, secret = _credentials(self.data_dir / "credentials")
            self._ec = boto3.client(
                "elasticache",
                endpoint_url=server["endpoint_url"],
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            )
        return self.call(lambda: getattr(self._ec, operation)(**params))

    def add_hosts(self, subnet_group: str = "agents") -> None:
        """Start the server, add every host as an operator does (``cachefleet host add``, the bundle
        handed to its agent), start the agents, and make a cache subnet group of their subnets."""
        self.start_server()
        for member in self.topo.hosts:
            self.cli("host", "add", member.role, "--address", member.address, "--zone", self.zones[member.role],
                     "--agent-port", str(AGENT_PORT), "--bundle-dir", str(self.agent_dir(member.role)))  # fmt: skip
            self.start_agent(member.role)
        wait(lambda: all(h["status"] == "active" for h in self.hosts().values()), "every host active", 60)
        subnets = sorted({f"subnet-{zone}" for zone in self.zones.values()})
        self.api("create_cache_subnet_group", CacheSubnetGroupName=subnet_group,
                 CacheSubnetGroupDescription="the agents", SubnetIds=subnets)  # fmt: skip

    def members(self, group: str = GROUP) -> dict[str, dict[str, Any]]:
        """Each member as DescribeCacheClusters shows it (its node's endpoint and AZ)."""
        clusters = self.api("describe_cache_clusters", ShowCacheNodeInfo=True)["CacheClusters"]
        return {c["CacheClusterId"]: c for c in clusters if c.get("ReplicationGroupId") == group}

    def node_of(self, member: str) -> tuple[Address | None, str]:
        group = member.rsplit("-", 1)[0]
        (node,) = self.members(group)[member]["CacheNodes"]
        endpoint = node.get("Endpoint")
        address = (endpoint["Address"], endpoint["Port"]) if endpoint else None
        return address, node["CustomerAvailabilityZone"]

    def where(self, address: str) -> str:
        return next(h.role for h in self.topo.hosts if h.address == address)

    def sentinels(self, group: str = GROUP) -> list[Address]:
        """Every Sentinel of the group the agents run now (read from their node directories)."""
        found = []
        for member in self.topo.hosts:
            for sentinel in (self.agent_dir(member.role) / "nodes" / f"rg.{group}").glob("sentinel-*"):
                with contextlib.suppress(OSError, ValueError):
                    found.append((member.address, int((sentinel / "port").read_text())))
        return found

    def endpoint(self, group: str = GROUP) -> Address:
        """The group's primary endpoint, as Describe gives it."""
        described = self.api("describe_replication_groups", ReplicationGroupId=group)["ReplicationGroups"][0]
        endpoint = described["NodeGroups"][0]["PrimaryEndpoint"]
        return endpoint["Address"], int(endpoint["Port"])

    def primary(self, group: str = GROUP) -> Address:
        """The member node that reports master now."""
        nodes = [self.node_of(m)[0] for m in self.members(group)]
        return wait(lambda: next((a for a in nodes if self.call(role, a) == "master"), None), "a primary", 30)

    def settled_primary(self, group: str = GROUP, timeout: float = 60.0) -> Address:
        """The primary once the group has one only: one member reports master, every other one is its
        replica (a primary cut off by a partition is demoted by the Sentinels after the heal)."""
        nodes = [self.node_of(m)[0] for m in self.members(group)]

        def one() -> Address | None:
            roles = {a: self.call(role, a) for a in nodes}
            masters = [a for a, r in roles.items() if r == "master"]
            return (
                masters[0]
                if len(masters) == 1 and all(r == "slave" for a, r in roles.items() if a != masters[0])
                else None
            )

        found: Address = wait(one, f"one primary in {group}", timeout, 0.2)
        return found

    def events(self, source: str, kind: str) -> list[str]:
        listed = self.api("describe_events", SourceType=kind, SourceIdentifier=source, Duration=60)
        return [e["Message"] for e in listed["Events"]]

    def group_ready(self, group: str = GROUP) -> bool:
        described = self.api("describe_replication_groups", ReplicationGroupId=group)["ReplicationGroups"][0]
        if described["Status"] != "available":
            return False
        members = self.members(group)
        return all(m["CacheClusterStatus"] == "available" for m in members.values()) and all(
            self.call(role, self.node_of(m)[0]) in ("master", "slave") for m in members
        )


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
        return response.status == 200
    return False


def _credentials(path: Path) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["cachefleet"]["aws_access_key_id"], parser["cachefleet"]["aws_secret_access_key"]


def connection(address: Address, timeout: float = 0.25) -> redis.Redis:
    return redis.Redis(
        host=address[0], port=address[1], socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=True,
    )  # fmt: skip


def role(address: Address | None) -> str | None:
    if address is None:
        return None
    client = connection(address)
    try:
        return str(client.info("replication")["role"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


# -- the writer and the role sampler ---------------------------------------------------------------


@dataclass
class Writer:
    """Writes ``w:<n>`` through the group's primary endpoint, no retries, 0.3 s timeouts, one write at
    a time (bounded: at most one unacknowledged write in flight); remembers each acknowledged write and
    when it was acknowledged."""

    endpoint: Address
    prefix: str = "w"
    wait_replicas: bool = False  # SET then WAIT 1 100: acknowledged only when a replica has it
    acked: dict[str, str] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # when each acknowledged write was acknowledged
    issued: list[float] = field(default_factory=list)  # and when it was sent
    errors: int = 0
    unreplicated: int = 0  # SETs that WAIT said no replica had (not counted as acknowledged)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = connection(self.endpoint, 0.3)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key, value = f"{self.prefix}:{n}", str(n)
                sent = time.monotonic()
                try:
                    client.set(key, value)
                    if self.wait_replicas and int(client.execute_command("WAIT", 1, 100)) < 1:
                        self.unreplicated += 1
                        continue
                except (redis.RedisError, OSError):
                    self.errors += 1
                    client.close()  # a new connection next time: the endpoint routes it afresh
                    time.sleep(0.05)
                    continue
                self.acked[key] = value
                self.times.append(time.monotonic())
                self.issued.append(sent)
                time.sleep(0.005)
        finally:
            client.close()

    def resumed_after(self, moment: float) -> bool:
        return any(t > moment for t in self.times[-50:])

    def outage(self, fault: float) -> float | None:
        """From the fault to the acknowledgement of the first write sent after it (None: none yet)."""
        return next((t - fault for t, sent in zip(self.times, self.issued, strict=True) if sent > fault), None)

    def longest_gap(self, since: float) -> float:
        after = [t for t in self.times if t > since]
        return max((b - a for a, b in itertools.pairwise(after)), default=0.0)


@dataclass
class EndpointSampler:
    """What the primary endpoint answers every 50 ms: the role and run id of the node behind it (one
    connection, opened again after an error). ``masters`` lists the primaries it showed, in order."""

    endpoint: Address
    period: float = 0.05
    samples: list[tuple[float, str | None, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = connection(self.endpoint, 0.25)
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                role = run_id = None
                try:
                    role = str(client.info("replication")["role"])
                    run_id = str(client.info("server")["run_id"])
                except (redis.RedisError, OSError):
                    client.close()
                self.samples.append((started, role, run_id))
                self.stop.wait(max(0.0, self.period - (time.monotonic() - started)))
        finally:
            client.close()

    def masters(self) -> list[str]:
        """The run ids of the masters shown, consecutive repeats folded: a primary shown again after
        another one was (a stale primary served beside or after the promoted one) appears twice."""
        shown = [run_id for _, role, run_id in self.samples if role == "master" and run_id is not None]
        return [run_id for run_id, _ in itertools.groupby(shown)]


@dataclass
class Sampler:
    """The role of every node address ever seen, each polled every 50 ms by a thread of its own (so a
    dead address's timeouts never slow the others). ``second_primaries`` replays the samples: at every
    sample, the latest role of each address seen in the last 0.3 s; two masters at once is a failure."""

    period: float = 0.05
    samples: dict[Address, list[tuple[float, str | None]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def watch(self, address: Address) -> None:
        """Start polling ``address`` (call from a thread inside the client namespace: the poller,
        created there, stays there)."""
        if address in self.samples:
            return
        self.samples[address] = []
        thread = threading.Thread(target=self._poll, args=(address,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self, address: Address) -> None:
        series = self.samples[address]
        while not self.stop.is_set():
            started = time.monotonic()
            series.append((started, role(address)))
            self.stop.wait(max(0.0, self.period - (time.monotonic() - started)))

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(5)

    def second_primaries(self) -> list[tuple[float, list[Address]]]:
        found = []
        moments = sorted(t for series in self.samples.values() for t, _ in series)
        for moment in moments:
            masters = []
            for address, series in self.samples.items():
                latest = [role for t, role in series if moment - 0.3 <= t <= moment]
                if latest and latest[-1] == "master":
                    masters.append(address)
            if len(masters) > 1:
                found.append((moment, masters))
        return found


def values(address: Address, keys: list[str]) -> dict[str, str]:
    client = connection(address, 5.0)
    try:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            found.update({k: v for k, v in zip(chunk, client.mget(chunk), strict=True) if v is not None})
        return found
    finally:
        client.close()
