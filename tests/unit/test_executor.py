"""The executor against fake hosts: what each action asks of its host and of the store (no engine runs)."""

from __future__ import annotations

import asyncio
import signal
import socket
from dataclasses import replace

import pytest
from tests.support.fakes import ADDRESS, AZS, CREDENTIALS, KEYS, NOW, Fleet, fake_proxy

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    DetachMember,
    EndpointInputs,
    JoinSentinel,
    RemoveNode,
    StartEndpoint,
    StartNode,
    StartSentinel,
)
from cachefleet.control.execute import RECONFIG_SCRIPT, REDIS_CONF, SENTINEL_CONF, Executor, Tools
from cachefleet.control.proxy import ENDPOINT_FILE, parse_entry
from cachefleet.control.security import Links
from cachefleet.engines import haproxy, redis, sentinel
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.sentinel import my_id
from cachefleet.model.auth_token import TokenState
from cachefleet.model.errors import Fatal, Retry
from cachefleet.model.nodes import (
    PROXY_KEY,
    Placement,
    endpoint_key,
    member_key,
    node_key,
    sentinel_keys,
    shared_sentinel_keys,
)
from cachefleet.model.security import Security
from cachefleet.model.transit import Transit, TransitMode
from cachefleet.store.kinds import CLUSTERS, GROUPS

REDIS = EngineBinary("redis", "7.0.15", "/usr/bin/redis-server")
MEMCACHED = EngineBinary("memcached", "1.6.18", "/usr/bin/memcached")
TOOLS = Tools(sentinel="/usr/bin/redis-sentinel", haproxy="/usr/sbin/haproxy", python="/usr/bin/python3")


LOCAL = Placement("local", ADDRESS, AZS[0])


def executor(fleet: Fleet, engines: tuple[EngineBinary, ...] = (REDIS, MEMCACHED)) -> Executor:
    return Executor(
        store=fleet.store,
        hosts=fleet.hosts,
        engines=engines,
        credentials=CREDENTIALS,
        tools=TOOLS,
        keys=KEYS,
        links=Links(KEYS.client_tls),
        clock=lambda: NOW,
        proxy=fake_proxy(fleet.hosts),
    )


def run(fleet: Fleet, *actions: Action, engines: tuple[EngineBinary, ...] = (REDIS, MEMCACHED)) -> None:
    asyncio.run(executor(fleet, engines).run(actions))


def test_a_lost_node_gets_its_recorded_port_and_no_new_node_gets_a_recorded_one() -> None:
    fleet = Fleet()
    fleet.group()
    recorded = fleet.host.port_now(member_key("g-002"))
    fleet.lose(member_key("g-002"))
    fleet.cluster("c", running=False)
    run(fleet, AllocatePort(member_key("g-002"), LOCAL, port=recorded), AllocatePort(node_key("c", "0001"), LOCAL))
    assert fleet.host.port_now(member_key("g-002")) == recorded
    assert fleet.host.port_now(node_key("c", "0001")) not in {recorded, None}


def test_no_port_left_is_fatal() -> None:
    fleet = Fleet()
    fleet.host = fleet.hosts.by_id["local"] = type(fleet.host)(first_port=30001, last_port=30001)
    fleet.cluster("c", engine="memcached", nodes=2, running=False)
    with pytest.raises(Fatal, match="no free port"):
        run(fleet, AllocatePort(node_key("c", "0001"), LOCAL), AllocatePort(node_key("c", "0002"), LOCAL))


def test_a_node_starts_on_a_config_rendered_from_its_spec() -> None:
    fleet = Fleet()
    fleet.cluster("c", running=False)
    key = node_key("c", "0001")
    port = fleet.host.allocate_port(key)
    run(fleet, StartNode(key, LOCAL))
    assert fleet.host.pid_now(key) is not None
    conf = fleet.host.file_now(key, REDIS_CONF)
    assert conf is not None
    assert f"port {port}" in conf
    assert "\nreplicaof " not in conf


def test_a_replica_starts_pointed_at_its_primary_once_it_listens() -> None:
    fleet = Fleet()
    fleet.group(running=False)
    with socket.socket() as primary:
        primary.bind((ADDRESS, 0))
        primary.listen()
        address = (ADDRESS, primary.getsockname()[1])
        key = member_key("g-002")
        fleet.host.allocate_port(key)
        run(fleet, StartNode(key, LOCAL, replicaof=address))
    conf = fleet.host.file_now(key, REDIS_CONF)
    assert conf is not None
    assert f"replicaof {ADDRESS} {address[1]}" in conf


def test_an_engine_no_longer_installed_is_fatal() -> None:
    fleet = Fleet()
    fleet.cluster("c", running=False)
    key = node_key("c", "0001")
    fleet.host.allocate_port(key)
    with pytest.raises(Fatal, match="no longer installed"):
        run(fleet, StartNode(key, LOCAL), engines=(MEMCACHED,))
    assert fleet.host.pid_now(key) is None


def test_with_a_wake_an_endpoint_change_does_not_hold_the_pass_and_wakes_the_group_once_served() -> None:
    fleet = Fleet()
    fleet.group()
    fleet.kill(PROXY_KEY)
    endpoint = endpoint_key("g")
    primary = (ADDRESS, fleet.host.port_now(member_key("g-001")) or 0)
    inputs = EndpointInputs((primary,), primary)
    woken: list[tuple[str, str]] = []
    served = asyncio.Event()

    def wake(key: tuple[str, str]) -> None:
        woken.append(key)
        served.set()

    effects = replace(executor(fleet), wake=wake)

    before = fleet.host.file_now(endpoint, ENDPOINT_FILE)

    async def scenario() -> tuple[str | None, str | None]:
        await effects.run([StartEndpoint(endpoint, LOCAL, inputs)])
        asked = effects.endpoint_pending("g")
        file = fleet.host.file_now(endpoint, ENDPOINT_FILE)  # as before: the proxy has not had its turn
        await served.wait()
        return asked, file

    assert asyncio.run(scenario()) == (inputs.to_json(), before)
    assert woken == [(GROUPS.name, "g")]
    assert effects.endpoint_pending("g") is None
    assert parse_entry(fleet.host.file_now(endpoint, ENDPOINT_FILE)) == inputs


def test_a_group_joins_its_sentinels_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(shared_sentinels=True)
    fleet.group()
    keys = shared_sentinel_keys()
    for key in keys:
        fleet.host.allocate_port(key)
    primary = (ADDRESS, fleet.host.port_now(member_key("g-001")) or 0)
    joined: list[int] = []

    async def scenario() -> None:
        everyone = asyncio.Event()

        async def join(host: str, port: int, *_: object, **__: object) -> None:
            joined.append(port)
            if len(joined) == len(keys):
                everyone.set()
            await everyone.wait()  # one after another, the first would wait here for ever

        monkeypatch.setattr(sentinel, "join", join)
        async with asyncio.timeout(5):
            await executor(fleet).run([JoinSentinel(key, LOCAL, "g", primary) for key in keys])

    asyncio.run(scenario())
    assert sorted(joined) == sorted(fleet.host.port_now(key) for key in keys)


def test_a_joined_shared_sentinel_gets_the_reconfig_script_of_this_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # An earlier version's script knew one endpoint proxy; a group joining may be served by another.
    fleet = Fleet(shared_sentinels=True)
    fleet.group()
    keys = shared_sentinel_keys()
    for key in keys:
        fleet.host.run(key, fleet.host.allocate_port(key), **{RECONFIG_SCRIPT: "# an earlier version's"})
    primary = (ADDRESS, fleet.host.port_now(member_key("g-001")) or 0)
    asked: list[str | None] = []

    async def join(host: str, port: int, monitor: sentinel.Monitor, **_: object) -> None:
        asked.append(None if monitor.reconfig_script is None else monitor.reconfig_script.name)

    monkeypatch.setattr(sentinel, "join", join)
    pids = [fleet.host.pid_now(key) for key in keys]
    asyncio.run(executor(fleet).run([JoinSentinel(key, LOCAL, "g", primary) for key in keys]))
    scripts = [fleet.host.file_now(key, RECONFIG_SCRIPT) or "" for key in keys]
    assert all("PROXY_FILE = " in text and "/rg.GROUPID/endpoint/proxy" in text for text in scripts), scripts
    assert [fleet.host.pid_now(key) for key in keys] == pids  # rewritten, not restarted
    assert set(fleet.host.signals) == {(key, signal.SIGHUP) for key in keys}  # which Redis ignores
    assert asked == [RECONFIG_SCRIPT] * 3
    # Up to date, it is left alone.
    asyncio.run(executor(fleet).run([JoinSentinel(key, LOCAL, "g", primary) for key in keys]))
    assert len(fleet.host.signals) == 3


def test_the_group_processes_render_their_configs() -> None:
    fleet = Fleet()
    fleet.group(failover=True)
    endpoint, sentinel = endpoint_key("g"), sentinel_keys("g")[0]
    fleet.kill(PROXY_KEY)
    fleet.kill(sentinel)
    primary = (ADDRESS, fleet.host.port_now(member_key("g-001")) or 0)
    inputs = EndpointInputs((primary,), primary)
    run(fleet, StartEndpoint(endpoint, LOCAL, inputs), StartSentinel(sentinel, LOCAL, "g", primary))
    # The group's contribution beside its ports; the host's proxy serves it under its own names.
    assert parse_entry(fleet.host.file_now(endpoint, ENDPOINT_FILE)) == inputs
    proxy_conf = fleet.host.file_now(PROXY_KEY, haproxy.CONFIG_FILE)
    assert proxy_conf is not None
    assert "frontend fe_primary.g" in proxy_conf
    assert fleet.host.pid_now(PROXY_KEY) is not None
    sentinel_conf = fleet.host.file_now(sentinel, SENTINEL_CONF)
    assert sentinel_conf is not None
    assert f"sentinel monitor g {ADDRESS} {primary[1]} 2" in sentinel_conf
    # Beside the endpoint, the Sentinel flips it itself when it fails over.
    assert RECONFIG_SCRIPT in fleet.host.nodes_by_key[sentinel].files
    # It knows the group's replicas and its two peers, by the ids they start with, from the start.
    replicas = sorted(fleet.host.port_now(member_key(m)) or 0 for m in ("g-002", "g-003"))
    assert [f"sentinel known-replica g {ADDRESS} {p}" for p in replicas] == [
        line for line in sentinel_conf.splitlines() if line.startswith("sentinel known-replica")
    ]
    peers = [
        f"sentinel known-sentinel g {ADDRESS} {fleet.host.port_now(k)} {my_id(f'g/{k.node_id}')}"
        for k in sentinel_keys("g")[1:]
    ]
    assert peers == [line for line in sentinel_conf.splitlines() if line.startswith("sentinel known-sentinel")]
    assert f"sentinel myid {my_id(f'g/{sentinel.node_id}')}" in sentinel_conf


def test_records_and_nodes_go_and_a_retained_primary_leaves_its_group() -> None:
    fleet = Fleet()
    spec = fleet.group()
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True, retain_primary_cluster=True))
    run(fleet, RemoveNode(member_key("g-002"), LOCAL), DeleteRecord(CLUSTERS.name, "g-002"), DetachMember("g-001"))
    assert member_key("g-002") not in fleet.host.nodes_by_key
    assert CLUSTERS.find(fleet.store, "g-002") is None
    assert CLUSTERS.get(fleet.store, "g-001").spec.replication_group_id is None


def test_each_step_goes_to_the_host_its_action_names() -> None:
    fleet = Fleet()
    remote = fleet.add_host("h1", AZS[1])
    fleet.cluster("c", running=False)
    key = node_key("c", "0001")
    there = fleet.placement("h1", AZS[1])
    run(fleet, AllocatePort(key, there))
    assert fleet.host.port_now(key) is None
    port = remote.port_now(key)
    assert port is not None
    run(fleet, StartNode(key, there))
    conf = remote.file_now(key, REDIS_CONF)
    assert conf is not None
    # Rendered with that host's address and paths: the node binds there and keeps its data there.
    assert f"bind {remote.address}" in conf
    assert str(remote.dir_now(key)) in conf
    assert remote.pid_now(key) is not None
    assert fleet.host.pid_now(key) is None
    run(fleet, RemoveNode(key, there))
    assert remote.removed == [key]


def test_a_new_member_is_seeded_on_its_host_unless_it_has_data() -> None:
    fleet = Fleet()
    remote = fleet.add_host("h1", AZS[1])
    fleet.group(running=False)
    key = member_key("g-002")
    there = fleet.placement("h1", AZS[1])
    remote.allocate_port(key)
    run(fleet, StartNode(key, there, replication_id="ab" * 20))
    assert remote.blobs[(key, redis.RDB_FILE)] == redis.seed_rdb("ab" * 20)
    other = member_key("g-003")
    remote.allocate_port(other)
    remote.blobs[(other, redis.AOF_DIR)] = b""  # an append-only directory: it has data of its own
    run(fleet, StartNode(other, there, replication_id="ab" * 20))
    assert (other, redis.RDB_FILE) not in remote.blobs


def test_a_sentinel_away_from_the_endpoint_has_no_reconfig_script() -> None:
    fleet = Fleet()
    remote = fleet.add_host("h1", AZS[1])
    fleet.group(failover=True)
    sentinel = sentinel_keys("g")[1]
    remote.allocate_port(sentinel)
    primary = (ADDRESS, fleet.host.port_now(member_key("g-001")) or 0)
    run(fleet, StartSentinel(sentinel, fleet.placement("h1", AZS[1]), "g", primary))
    conf = remote.file_now(sentinel, SENTINEL_CONF)
    assert conf is not None
    assert f"bind {remote.address}" in conf
    assert "client-reconfig-script" not in conf
    assert RECONFIG_SCRIPT not in remote.nodes_by_key[sentinel].files


def test_a_host_that_does_not_answer_is_a_retry() -> None:
    fleet = Fleet()
    remote = fleet.add_host("h1", AZS[1])
    fleet.cluster("c", running=False)
    remote.down = True
    with pytest.raises(Retry, match="does not answer"):
        run(fleet, AllocatePort(node_key("c", "0001"), fleet.placement("h1", AZS[1])))


def test_a_member_on_an_agent_host_is_supervised_with_the_groups_sentinels() -> None:
    fleet = Fleet()
    hosts = [fleet.add_host(name, zone) for name, zone in (("h1", AZS[0]), ("h2", AZS[1]), ("h3", AZS[2]))]
    fleet.group(failover=True, on=["h1", "h2", "h3"])
    member, there = member_key("g-002"), fleet.placement("h2", AZS[1])
    fleet.kill(member)
    run(fleet, StartNode(member, there, replicaof=fleet.address_of("g-001")))
    policy = hosts[1].specs[member].restart
    assert policy is not None
    sentinels = {(h.address, h.port_now(k)) for h, k in zip(hosts, sentinel_keys("g"), strict=True)}
    assert (policy.master_name, set(policy.sentinels), policy.address) == ("g", sentinels, there.address)
    # A Sentinel started again (placed anew, say): the running members' agents get the new list.
    sentinel = sentinel_keys("g")[2]
    hosts[2].nodes_by_key[sentinel].pid = None
    hosts[0].specs.clear()
    run(fleet, StartSentinel(sentinel, fleet.placement("h3", AZS[2]), "g", fleet.address_of("g-001")))
    assert hosts[0].specs[member_key("g-001")].restart is not None
    assert hosts[0].pid_now(member_key("g-001")) is not None  # a start of a running node: nothing restarted


def test_a_member_on_the_embedded_host_has_no_restart_policy() -> None:
    fleet = Fleet()
    fleet.group(failover=True)
    member = member_key("g-002")
    fleet.kill(member)
    run(fleet, StartNode(member, Placement("local", ADDRESS, AZS[1]), replicaof=fleet.address_of("g-001")))
    assert fleet.host.specs[member].restart is None  # the reconciler restarts nodes here


def test_a_retained_primary_keeps_the_tls_and_users_of_its_group() -> None:
    fleet = Fleet()
    secured = Security(transit=Transit(True, TransitMode.REQUIRED), tokens=TokenState(("a" * 64,), False), version=2)
    spec = fleet.group(security=secured)
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True, retain_primary_cluster=True))
    run(fleet, DetachMember("g-001"))
    assert CLUSTERS.get(fleet.store, "g-001").spec.security == secured


def test_a_tls_process_on_an_agent_host_reads_the_ca_from_its_own_directory() -> None:
    fleet = Fleet()
    remote = fleet.add_host("h1", AZS[1])
    required = Security(transit=Transit(True, TransitMode.REQUIRED), version=1)
    fleet.group(failover=True, running=False, security=required)
    there, here = fleet.placement("h1", AZS[1]), Placement("local", ADDRESS, AZS[0])
    away, home = member_key("g-002"), member_key("g-001")
    remote.allocate_port(away)
    fleet.host.allocate_port(home)
    run(fleet, StartNode(away, there), StartNode(home, here))
    # The agent's host has no control-plane path: the CA travels as a node file beside the leaf.
    assert remote.file_now(away, "ca.pem") == KEYS.authority.certificate_pem().decode()
    assert f'tls-ca-cert-file "{remote.dir_now(away) / "ca.pem"}"' in (remote.file_now(away, REDIS_CONF) or "")
    # On the control plane's own machine the installation's file is read where it is.
    assert fleet.host.file_now(home, "ca.pem") is None
    assert f'tls-ca-cert-file "{KEYS.ca_file}"' in (fleet.host.file_now(home, REDIS_CONF) or "")
    sentinel = sentinel_keys("g")[1]
    remote.allocate_port(sentinel)
    run(fleet, StartSentinel(sentinel, there, "g", (there.address, remote.port_now(away) or 0)))
    assert f'tls-ca-cert-file "{remote.dir_now(sentinel) / "ca.pem"}"' in (
        remote.file_now(sentinel, SENTINEL_CONF) or ""
    )
