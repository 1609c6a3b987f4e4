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
4. the primary's host killed while the control plane is down: the Sentinels on the other hosts
   promote a replica, the returned host's agent restarts the former primary as a replica, and once
   the control plane is back the endpoint leads to the new primary;
5. drains: a replica's host, then the primary's, with a writer whose acknowledged writes must all be
   there at the end;
6. a snapshot taken on a replica's host and restored onto another, through the agents.

The group's endpoints are still the HAProxy process on the control plane's host (``HostMap.endpoint``),
moved by the control plane's failover follower (``control/follow.py``) on the Sentinel leader's
promotion (the Sentinels run on the agents, away from its admin socket). The floating-address
endpoints (``endpoints/``, DNAT + VIP) that would survive the loss of the control plane's host too
are not wired yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from tests.support.installation import (
    GROUP,
    Address,
    EndpointSampler,
    Installation,
    Sampler,
    Writer,
    connection,
    role,
    values,
    wait,
)
from tests.support.netns import Topology

pytestmark = pytest.mark.integration

A, B, C = "us-east-1a", "us-east-1b", "us-east-1c"
ZONES = {"h1": A, "h2": B, "h3": C, "h4": A}
LOST_AFTER = 3.0
MEMBERS = ("g-001", "g-002", "g-003")


# -- the installation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inst(netns: Callable[..., Topology], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    topo = netns(4, client=True, control_plane=True)
    installation = Installation(topo, tmp_path_factory.mktemp("hosts-netns"), ZONES, LOST_AFTER)
    installation.add_hosts("agents")
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
    # The subnet group keeps nodes off the control plane's host (``cachefleet host list`` says so).
    assert inst.hosts(through_cli=True)["local"]["nodes"] == 0


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
        assert inst.call(role, old_primary) == "master"
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
        assert inst.call(role, replaced[0]) == "slave"
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
        wait(lambda: inst.call(role, address) in ("master", "slave"), "g-002 serving again", 20, 0.05)
    finally:
        inst.start_server()


def test_a_host_lost_while_the_control_plane_is_down_still_fails_over(inst: Installation) -> None:
    """Sentinels on the other hosts promote a replica with no control plane; once it is back, the
    endpoint leads to the new primary and the returned host's former primary is a replica."""
    wait(inst.group_ready, "the group whole", 60, 0.5)
    nodes = {m: inst.node_of(m)[0] for m in MEMBERS}
    old = inst.primary()
    host = inst.where(old[0])
    inst.stop_server()
    try:
        inst.kill_host(host)
        promoted = wait(
            lambda: next((a for a in nodes.values() if a != old and inst.call(role, a) == "master"), None),
            "a replica promoted by the Sentinels alone",
            30,
            0.1,
        )
        inst.topo.link_up(inst.host(host))
        inst.start_agent(host)
        # Its agent restarts the former primary only as a replica of the one the Sentinels name.
        wait(lambda: inst.call(role, old) == "slave", "the former primary back as a replica", 30, 0.1)
    finally:
        inst.start_server()
    endpoint = inst.endpoint()
    # The status Describe shows was recorded before the stop: what counts is where the endpoint leads.
    wait(lambda: inst.call(_port_behind, endpoint) == promoted[1], "the endpoint at the new primary", 30, 0.2)
    wait(inst.group_ready, "the group whole again", 60, 0.5)
    assert inst.call(role, promoted) == "master"


def test_drains_move_nodes_off_without_losing_an_acknowledged_write(inst: Installation) -> None:
    wait(inst.group_ready, "the group whole", 60, 0.5)
    writer = Writer(inst.endpoint())
    writing = inst.topo.submit(inst.client_ns, writer.run)
    try:
        wait(lambda: len(writer.times) > 20, "the writer writing", 20, 0.05)
        roles = {m: inst.call(role, inst.node_of(m)[0]) for m in MEMBERS}
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
    stored = inst.call(values, inst.primary(), list(writer.acked))
    lost = [k for k, v in writer.acked.items() if stored.get(k) != v]
    print(f"\ndrains: {len(writer.acked)} acknowledged writes, {writer.errors} refused, {len(lost)} lost")
    assert lost == []


def test_a_snapshot_and_a_restore_go_through_the_agents(inst: Installation) -> None:
    """The RDB comes off a replica's host over the agent's API, and goes onto the restored primary's."""
    master = inst.primary()
    inst.call(lambda: connection(master, 5.0).set("kept", "across hosts"))
    inst.api("create_snapshot", ReplicationGroupId=GROUP, SnapshotName="s1")
    wait(lambda: inst.api("describe_snapshots", SnapshotName="s1")["Snapshots"][0]["SnapshotStatus"] == "available",
         "the snapshot taken", 60, 0.5)  # fmt: skip
    snapshot = inst.api("describe_snapshots", SnapshotName="s1")["Snapshots"][0]
    taken_on = snapshot["NodeSnapshots"][0]["CacheClusterId"]
    address, _ = inst.node_of(taken_on)
    assert address is not None
    assert inst.call(role, address) == "slave"  # on a replica, on an agent's host
    inst.api("create_replication_group", ReplicationGroupId="r", ReplicationGroupDescription="restored",
             SnapshotName="s1", NumCacheClusters=1, CacheSubnetGroupName="agents")  # fmt: skip

    def restored() -> Address | None:
        clusters = inst.api("describe_cache_clusters", CacheClusterId="r-001", ShowCacheNodeInfo=True)
        (node,) = clusters["CacheClusters"][0]["CacheNodes"]
        endpoint = node.get("Endpoint")
        return (endpoint["Address"], endpoint["Port"]) if endpoint else None

    where = wait(restored, "the restored group serving", 60, 0.5)
    assert inst.where(where[0]) in ZONES
    assert inst.call(lambda: connection(where, 5.0).get("kept")) == "across hosts"


def _port_behind(endpoint: Address) -> int | None:
    """The port of the node the endpoint leads to now, or None."""
    client = connection(endpoint, 1.0)
    try:
        return int(client.info("server")["tcp_port"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
