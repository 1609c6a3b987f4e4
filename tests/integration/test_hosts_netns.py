"""Hosts as real fault domains: a control plane and four ``cachefleet agent`` hosts in network namespaces.

One topology for the module (``tests/support/netns.py``, root; CI runs it, never skipped): the
control plane in ``cp``, hosts ``h1``-``h4`` (AZs a, b, c, a: two hosts in the first AZ), a client
namespace ``c`` where every client runs (the CLI, boto3, the writer, the role sampler). Hosts are
added as an operator adds them (``cachefleet host add``, the bundle handed to each agent), and a
3-node Multi-AZ group is created in a cache subnet group of the four agents' subnets.

The tests run in order on that one installation (each leaves it as the next expects):

1. one member per host and AZ, Sentinels likewise, Describe naming each node's host address;
2. the host of the primary killed (its agent and nodes by PID, its link down) under a bounded writer
   through the group's primary endpoint: writes resume, the host is lost after ``--host-lost-after``,
   the member is replaced on the other host of its AZ with the same member id; when the host returns,
   its stale nodes are removed; the role is sampled every 50 ms through the primary endpoint and at
   every node over the whole test, and two primaries are never seen;
3. a node killed on a host while the control plane is down comes back by its agent;
4. drains: a replica's host, then the primary's, with a writer whose acknowledged writes must all be
   there at the end.

The group's endpoints are still the HAProxy process on the control plane's host (``HostMap.endpoint``),
which the control plane re-points on its next pass after Sentinel's failover (the Sentinels run on the
agents, away from its admin socket). The floating-address endpoints (``endpoints/``, DNAT + VIP) that
would survive the loss of the control plane's host too are not wired yet.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.support.netns import Member, Topology

pytestmark = pytest.mark.integration

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
ZONES = {"h1": A, "h2": B, "h3": C, "h4": A}
AGENT_PORT = 7080
API_PORT = 8787
LOST_AFTER = 3.0
GROUP = "g"
MEMBERS = ("g-001", "g-002", "g-003")
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
    topo: Topology
    work: Path
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
                 str(LOST_AFTER)],
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
                 f"{member.address}:{AGENT_PORT}", "--zone", ZONES[name]],
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

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["id"]: h for h in json.loads(self.cli("--json", "host", "list"))["hosts"]}

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

    def members(self) -> dict[str, dict[str, Any]]:
        """Each member as DescribeCacheClusters shows it (its node's endpoint and AZ)."""
        clusters = self.api("describe_cache_clusters", ShowCacheNodeInfo=True)["CacheClusters"]
        return {c["CacheClusterId"]: c for c in clusters if c.get("ReplicationGroupId") == GROUP}

    def node_of(self, member: str) -> tuple[Address | None, str]:
        (node,) = self.members()[member]["CacheNodes"]
        endpoint = node.get("Endpoint")
        address = (endpoint["Address"], endpoint["Port"]) if endpoint else None
        return address, node["CustomerAvailabilityZone"]

    def where(self, address: str) -> str:
        return next(h.role for h in self.topo.hosts if h.address == address)

    def sentinels(self) -> list[Address]:
        """Every Sentinel of the group the agents run now (read from their node directories)."""
        found = []
        for member in self.topo.hosts:
            for sentinel in (self.agent_dir(member.role) / "nodes" / f"rg.{GROUP}").glob("sentinel-*"):
                with contextlib.suppress(OSError, ValueError):
                    found.append((member.address, int((sentinel / "port").read_text())))
        return found

    def endpoint(self) -> Address:
        """The group's primary endpoint, as Describe gives it."""
        group = self.api("describe_replication_groups", ReplicationGroupId=GROUP)["ReplicationGroups"][0]
        endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
        return endpoint["Address"], int(endpoint["Port"])

    def primary(self) -> Address:
        """The member node that reports master now."""
        nodes = [self.node_of(m)[0] for m in MEMBERS]
        return wait(lambda: next((a for a in nodes if self.call(_role, a) == "master"), None), "a primary", 30)

    def events(self, source: str, kind: str) -> list[str]:
        listed = self.api("describe_events", SourceType=kind, SourceIdentifier=source, Duration=60)
        return [e["Message"] for e in listed["Events"]]

    def group_ready(self) -> bool:
        group = self.api("describe_replication_groups", ReplicationGroupId=GROUP)["ReplicationGroups"][0]
        if group["Status"] != "available":
            return False
        members = self.members()
        return all(m["CacheClusterStatus"] == "available" for m in members.values()) and all(
            self.call(_role, self.node_of(m)[0]) in ("master", "slave") for m in MEMBERS
        )


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
        return response.status == 200
    return False


def _credentials(path: Path) -> tuple[str, str]:
    import configparser  # noqa: PLC0415

    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["cachefleet"]["aws_access_key_id"], parser["cachefleet"]["aws_secret_access_key"]


def _connection(address: Address, timeout: float = 0.25) -> redis.Redis:
    return redis.Redis(
        host=address[0], port=address[1], socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=True,
    )  # fmt: skip


def _role(address: Address | None) -> str | None:
    if address is None:
        return None
    client = _connection(address)
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
    acked: dict[str, str] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = _connection(self.endpoint, 0.3)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                key, value = f"w:{n}", str(n)
                try:
                    client.set(key, value)
                except (redis.RedisError, OSError):
                    self.errors += 1
                    client.close()  # a new connection next time: the endpoint routes it afresh
                    time.sleep(0.05)
                    continue
                self.acked[key] = value
                self.times.append(time.monotonic())
                time.sleep(0.005)
        finally:
            client.close()

    def resumed_after(self, moment: float) -> bool:
        return any(t > moment for t in self.times[-50:])

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
        client = _connection(self.endpoint, 0.25)
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
            series.append((started, _role(address)))
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


# -- the installation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inst(netns: Callable[..., Topology], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    topo = netns(4, client=True, control_plane=True)
    installation = Installation(topo, tmp_path_factory.mktemp("hosts-netns"))
    installation.start_server()
    for member in topo.hosts:
        installation.cli(
            "host",
            "add",
            member.role,
            "--address",
            member.address,
            "--zone",
            ZONES[member.role],
            "--agent-port",
            str(AGENT_PORT),
            "--bundle-dir",
            str(installation.agent_dir(member.role)),
        )
        installation.start_agent(member.role)  # fmt: skip
    wait(lambda: all(h["status"] == "active" for h in installation.hosts().values()), "every host active", 60)
    subnets = sorted({f"subnet-{zone}" for zone in ZONES.values()})
    installation.api("create_cache_subnet_group", CacheSubnetGroupName="agents",
                     CacheSubnetGroupDescription="the four agents", SubnetIds=subnets)  # fmt: skip
    installation.api(
        "create_replication_group",
        ReplicationGroupId=GROUP,
        ReplicationGroupDescription="three hosts, three AZs",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=3,
        PreferredCacheClusterAZs=[A, B, C],
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        CacheSubnetGroupName="agents",
    )
    wait(installation.group_ready, "the group available", 90, interval=0.5)
    yield installation
    with contextlib.suppress(Exception):
        installation.stop_server()


def test_a_group_spreads_one_member_per_host_and_az(inst: Installation) -> None:
    placed = {m: inst.node_of(m) for m in MEMBERS}
    hosts = {m: inst.where(address[0]) for m, (address, _) in placed.items() if address is not None}
    assert hosts == {"g-001": "h1", "g-002": "h2", "g-003": "h3"}
    assert {m: zone for m, (_, zone) in placed.items()} == {"g-001": A, "g-002": B, "g-003": C}
    assert sorted(inst.where(address) for address, _ in inst.sentinels()) == ["h1", "h2", "h3"]
    assert inst.hosts()["local"]["nodes"] == 0  # the subnet group keeps nodes off the control plane's host


def test_a_lost_host_fails_over_is_replaced_in_its_az_and_never_serves_a_second_primary(inst: Installation) -> None:
    sampler = Sampler()
    for member in MEMBERS:
        address, _ = inst.node_of(member)
        assert address is not None
        inst.call(sampler.watch, address)
    endpoint = inst.endpoint()
    writer, through = Writer(endpoint), EndpointSampler(endpoint)
    writing = inst.topo.submit(inst.client_ns, writer.run)
    sampling = inst.topo.submit(inst.client_ns, through.run)
    returned = None
    try:
        wait(lambda: len(writer.times) > 20, "the writer writing", 20, 0.05)
        old_primary, _ = inst.node_of("g-001")
        assert old_primary is not None
        assert inst.call(_role, old_primary) == "master"
        killed = time.monotonic()
        inst.kill_host("h1")
        # Sentinels on h2 and h3 promote a replica, the endpoint follows: writes through it resume.
        wait(lambda: writer.resumed_after(killed + 0.5), "writes resumed", 30, 0.05)
        outage = writer.longest_gap(killed - 1.0)
        print(f"\nhost loss: the longest gap between acknowledged writes through the endpoint was {outage:.2f} s")
        # After --host-lost-after the host is lost and g-001 is placed again, on h4 (its AZ's other host).
        wait(lambda: inst.hosts()["h1"]["status"] == "lost", "h1 lost", 30)
        replaced = wait(
            lambda: (found := inst.node_of("g-001"))[0] is not None and inst.where(found[0][0]) == "h4" and found,
            "g-001 replaced on h4",
            60,
        )
        inst.call(sampler.watch, replaced[0])
        assert replaced[1] == A
        wait(inst.group_ready, "the group whole again", 60, 0.5)
        assert inst.call(_role, replaced[0]) == "slave"
        assert any("host h1 was lost; it now runs on host h4" in m for m in inst.events("g-001", "cache-cluster"))
        # The host returns: its agent starts again on its directory; its stale nodes go.
        returned = time.monotonic()
        inst.topo.link_up(inst.host("h1"))
        inst.start_agent("h1")
        wait(lambda: inst.hosts()["h1"]["status"] == "active", "h1 back", 60)
        h1_nodes = inst.agent_dir("h1") / "nodes"
        wait(lambda: not (h1_nodes / "g-001").exists() and not (h1_nodes / f"rg.{GROUP}").exists(),
             "h1's stale nodes removed", 60)  # fmt: skip
        time.sleep(1.0)  # the samplers keep watching after the removal
    finally:
        sampler.finish()
        writer.stop.set()
        through.stop.set()
        writing.result(30)
        sampling.result(30)
    counts = {f"{inst.where(a[0])}:{a[1]}": len(series) for a, series in sampler.samples.items()}
    stale = {role for t, role in sampler.samples[old_primary] if returned and t > returned and role is not None}
    shown = through.masters()
    print(f"role samples per node: {counts}; the stale node on h1 after its return: {stale or 'never up'}")
    print(f"through the endpoint: {len(through.samples)} samples, primaries shown in turn: {len(shown)}; "
          f"{writer.errors} writes refused, {len(writer.acked)} acknowledged")  # fmt: skip
    assert "master" not in stale
    assert all(n >= 20 for n in counts.values())  # a dead address polls slower: each probe waits its timeout
    assert sampler.second_primaries() == []
    assert len(through.samples) >= (time.monotonic() - killed) / 0.05 * 0.5  # sampled all along
    # The endpoint showed the old primary, then the promoted one, and never a primary again once replaced.
    assert len(shown) == 2
    assert len(set(shown)) == 2


def test_a_node_killed_while_the_control_plane_is_down_comes_back_by_its_agent(inst: Installation) -> None:
    address, _ = inst.node_of("g-002")
    assert address is not None
    host = inst.where(address[0])
    pidfile = inst.agent_dir(host) / "nodes" / "g-002" / "0001" / "pid"
    inst.stop_server()
    try:
        before = int(pidfile.read_text())
        os.kill(before, signal.SIGKILL)
        wait(lambda: pidfile.exists() and int(pidfile.read_text() or 0) not in (0, before), "a new pid", 20, 0.05)
        wait(lambda: inst.call(_role, address) in ("master", "slave"), "g-002 serving again", 20, 0.05)
    finally:
        inst.start_server()


def test_drains_move_nodes_off_without_losing_an_acknowledged_write(inst: Installation) -> None:
    wait(inst.group_ready, "the group whole", 60, 0.5)
    writer = Writer(inst.endpoint())
    writing = inst.topo.submit(inst.client_ns, writer.run)
    try:
        wait(lambda: len(writer.times) > 20, "the writer writing", 20, 0.05)
        roles = {m: inst.call(_role, inst.node_of(m)[0]) for m in MEMBERS}
        primary = next(m for m, role in roles.items() if role == "master")
        replica = next(m for m, role in roles.items() if role == "slave")
        for member in (replica, primary):  # a replica's host, then the primary's
            address, _ = inst.node_of(member)
            assert address is not None
            host = inst.where(address[0])
            inst.cli("host", "drain", host, "--timeout", "120")
            assert inst.hosts()[host]["status"] == "drained"
            wait(inst.group_ready, f"the group whole after draining {host}", 60, 0.5)
            moved, _ = inst.node_of(member)
            assert moved is not None
            assert inst.where(moved[0]) != host
            inst.cli("host", "undrain", host)
    finally:
        writer.stop.set()
        writing.result(30)
    # Every acknowledged write is there, on the primary now.
    stored = inst.call(_values, inst.primary(), list(writer.acked))
    lost = [k for k, v in writer.acked.items() if stored.get(k) != v]
    print(f"\ndrains: {len(writer.acked)} acknowledged writes, {writer.errors} refused, {len(lost)} lost")
    assert lost == []


def test_a_snapshot_and_a_restore_go_through_the_agents(inst: Installation) -> None:
    """The RDB comes off a replica's host over the agent's API, and goes onto the restored primary's."""
    master = inst.primary()
    inst.call(lambda: _connection(master, 5.0).set("kept", "across hosts"))
    inst.api("create_snapshot", ReplicationGroupId=GROUP, SnapshotName="s1")
    wait(lambda: inst.api("describe_snapshots", SnapshotName="s1")["Snapshots"][0]["SnapshotStatus"] == "available",
         "the snapshot taken", 60, 0.5)  # fmt: skip
    snapshot = inst.api("describe_snapshots", SnapshotName="s1")["Snapshots"][0]
    taken_on = snapshot["NodeSnapshots"][0]["CacheClusterId"]
    address, _ = inst.node_of(taken_on)
    assert address is not None
    assert inst.call(_role, address) == "slave"  # on a replica, on an agent's host
    inst.api("create_replication_group", ReplicationGroupId="r", ReplicationGroupDescription="restored",
             SnapshotName="s1", NumCacheClusters=1, CacheSubnetGroupName="agents")  # fmt: skip

    def restored() -> Address | None:
        clusters = inst.api("describe_cache_clusters", CacheClusterId="r-001", ShowCacheNodeInfo=True)
        (node,) = clusters["CacheClusters"][0]["CacheNodes"]
        endpoint = node.get("Endpoint")
        return (endpoint["Address"], endpoint["Port"]) if endpoint else None

    where = wait(restored, "the restored group serving", 60, 0.5)
    assert inst.where(where[0]) in ZONES
    assert inst.call(lambda: _connection(where, 5.0).get("kept")) == "across hosts"


def _values(address: Address, keys: list[str]) -> dict[str, str]:
    client = _connection(address, 5.0)
    try:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            found.update({k: v for k, v in zip(chunk, client.mget(chunk), strict=True) if v is not None})
        return found
    finally:
        client.close()
