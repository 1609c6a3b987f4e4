"""The executor against the fake host: what each action asks of the host and the store (no engine runs)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest
from tests.support.fakes import ADDRESS, CREDENTIALS, KEYS, NOW, Fleet

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    DetachMember,
    EndpointInputs,
    RemoveNode,
    StartEndpoint,
    StartNode,
    StartSentinel,
)
from cachefleet.control.execute import HAPROXY_CONF, REDIS_CONF, SENTINEL_CONF, Executor, Tools
from cachefleet.control.security import Links
from cachefleet.engines.installed import EngineBinary
from cachefleet.model.auth_token import TokenState
from cachefleet.model.errors import Fatal
from cachefleet.model.nodes import endpoint_key, member_key, node_key, sentinel_keys
from cachefleet.model.security import Security
from cachefleet.model.transit import Transit, TransitMode
from cachefleet.store.kinds import CLUSTERS, GROUPS

REDIS = EngineBinary("redis", "7.0.15", "/usr/bin/redis-server")
MEMCACHED = EngineBinary("memcached", "1.6.18", "/usr/bin/memcached")
TOOLS = Tools(sentinel="/usr/bin/redis-sentinel", haproxy="/usr/sbin/haproxy", python="/usr/bin/python3")


def executor(fleet: Fleet, engines: tuple[EngineBinary, ...] = (REDIS, MEMCACHED)) -> Executor:
    return Executor(
        store=fleet.store,
        host=fleet.host,
        engines=engines,
        credentials=CREDENTIALS,
        address=ADDRESS,
        tools=TOOLS,
        keys=KEYS,
        links=Links(KEYS.client_tls),
        clock=lambda: NOW,
    )


def run(fleet: Fleet, *actions: Action, engines: tuple[EngineBinary, ...] = (REDIS, MEMCACHED)) -> None:
    asyncio.run(executor(fleet, engines).run(actions))


def test_a_lost_node_gets_its_recorded_port_and_no_new_node_gets_a_recorded_one() -> None:
    fleet = Fleet()
    fleet.group()
    recorded = fleet.host.port_of(member_key("g-002"))
    fleet.lose(member_key("g-002"))
    fleet.cluster("c", running=False)
    run(fleet, AllocatePort(member_key("g-002"), port=recorded), AllocatePort(node_key("c", "0001")))
    assert fleet.host.port_of(member_key("g-002")) == recorded
    assert fleet.host.port_of(node_key("c", "0001")) not in {recorded, None}


def test_no_port_left_is_fatal() -> None:
    fleet = Fleet()
    fleet.host = type(fleet.host)(first_port=30001, last_port=30001)
    fleet.cluster("c", engine="memcached", nodes=2, running=False)
    with pytest.raises(Fatal, match="no free port"):
        run(fleet, AllocatePort(node_key("c", "0001")), AllocatePort(node_key("c", "0002")))


def test_a_node_starts_on_a_config_rendered_from_its_spec() -> None:
    fleet = Fleet()
    fleet.cluster("c", running=False)
    key = node_key("c", "0001")
    port = fleet.host.allocate_port(key, ())
    run(fleet, StartNode(key))
    assert fleet.host.pid(key) is not None
    conf = fleet.host.read_file(key, REDIS_CONF)
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
        fleet.host.allocate_port(key, ())
        run(fleet, StartNode(key, replicaof=address))
    conf = fleet.host.read_file(key, REDIS_CONF)
    assert conf is not None
    assert f"replicaof {ADDRESS} {address[1]}" in conf


def test_an_engine_no_longer_installed_is_fatal() -> None:
    fleet = Fleet()
    fleet.cluster("c", running=False)
    key = node_key("c", "0001")
    fleet.host.allocate_port(key, ())
    with pytest.raises(Fatal, match="no longer installed"):
        run(fleet, StartNode(key), engines=(MEMCACHED,))
    assert fleet.host.pid(key) is None


def test_the_group_processes_render_their_configs() -> None:
    fleet = Fleet()
    fleet.group(failover=True)
    endpoint, sentinel = endpoint_key("g"), sentinel_keys("g")[0]
    fleet.kill(endpoint)
    fleet.kill(sentinel)
    primary = (ADDRESS, fleet.host.port_of(member_key("g-001")) or 0)
    inputs = EndpointInputs((primary,), primary)
    run(fleet, StartEndpoint(endpoint, inputs), StartSentinel(sentinel, "g", primary))
    assert "inputs.json" in fleet.host.nodes_by_key[endpoint].files
    assert HAPROXY_CONF in fleet.host.nodes_by_key[endpoint].files
    sentinel_conf = fleet.host.read_file(sentinel, SENTINEL_CONF)
    assert sentinel_conf is not None
    assert f"sentinel monitor g {ADDRESS} {primary[1]} 2" in sentinel_conf


def test_records_and_nodes_go_and_a_retained_primary_leaves_its_group() -> None:
    fleet = Fleet()
    spec = fleet.group()
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True, retain_primary_cluster=True))
    run(fleet, RemoveNode(member_key("g-002")), DeleteRecord(CLUSTERS.name, "g-002"), DetachMember("g-001"))
    assert member_key("g-002") not in fleet.host.nodes_by_key
    assert CLUSTERS.find(fleet.store, "g-002") is None
    assert CLUSTERS.get(fleet.store, "g-001").spec.replication_group_id is None


def test_a_retained_primary_keeps_the_tls_and_users_of_its_group() -> None:
    fleet = Fleet()
    secured = Security(transit=Transit(True, TransitMode.REQUIRED), tokens=TokenState(("a" * 64,), False), version=2)
    spec = fleet.group(security=secured)
    GROUPS.put_spec(fleet.store, "g", replace(spec, deleting=True, retain_primary_cluster=True))
    run(fleet, DetachMember("g-001"))
    assert CLUSTERS.get(fleet.store, "g-001").spec.security == secured
