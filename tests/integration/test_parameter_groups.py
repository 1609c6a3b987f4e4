"""Cache parameter groups with real processes: the API, values reaching every node, reboots, AOF.

Every Redis value is checked with CONFIG GET as the control plane's admin user, on the nodes
themselves; memcached values with ``stats settings``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests.integration.conftest import FAST_WAIT
from tests.support.server import ADMIN_USER, ServerProcess, wait_until

from cachefleet.engines import memcached
from cachefleet.engines import redis as redis_engine
from cachefleet.model import parameters as pm

pytestmark = pytest.mark.integration

ARN = "arn:aws:elasticache:us-east-1:000000000000"


# -- helpers ---------------------------------------------------------------------------------------


def _connect(port: int, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        username=ADMIN_USER if password else None,
        password=password,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def _config(port: int, password: str, name: str) -> str | None:
    try:
        with _connect(port, password) as admin:
            return admin.config_get(name).get(name)
    except redis.exceptions.RedisError:
        return None


def _clusters(client: Any, *ids: str) -> dict[str, dict[str, Any]]:
    found = client.describe_cache_clusters(ShowCacheNodeInfo=True)["CacheClusters"]
    return {c["CacheClusterId"]: c for c in found if not ids or c["CacheClusterId"] in ids}


def _node_ports(client: Any, group_id: str) -> dict[str, int]:
    return {
        cid: c["CacheNodes"][0]["Endpoint"]["Port"]
        for cid, c in _clusters(client).items()
        if c.get("ReplicationGroupId") == group_id
    }


def _primary_port(client: Any, group_id: str) -> int:
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    members = group["NodeGroups"][0]["NodeGroupMembers"]
    return int(next(m["ReadEndpoint"]["Port"] for m in members if m["CurrentRole"] == "primary"))


def _parameter_group(client: Any, name: str, family: str, **values: str) -> None:
    client.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily=family, Description=name
    )
    if values:
        client.modify_cache_parameter_group(
            CacheParameterGroupName=name,
            ParameterNameValues=[{"ParameterName": k, "ParameterValue": v} for k, v in values.items()],
        )


def _create_group(client: Any, group_id: str, parameter_group: str, nodes: int = 2) -> None:
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="params",
        NumCacheClusters=nodes,
        CacheParameterGroupName=parameter_group,
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId=group_id, WaiterConfig=FAST_WAIT)


def _apply_status(client: Any, cluster_id: str) -> tuple[str, list[str], list[str]]:
    cluster = _clusters(client, cluster_id)[cluster_id]
    group = cluster["CacheParameterGroup"]
    return (
        group["ParameterApplyStatus"],
        group["CacheNodeIdsToReboot"],
        [n["ParameterGroupStatus"] for n in cluster["CacheNodes"]],
    )


def _messages(client: Any, source_id: str) -> list[str]:
    events = client.describe_events(Duration=60)["Events"]
    return [e["Message"] for e in reversed(events) if e["SourceIdentifier"] == source_id]


def _memcached_settings(port: int) -> dict[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(b"stats settings\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return memcached.parse_stats(data.decode())


def _attempt(call: Any, **params: Any) -> str:
    """``ok``, or the error code of the call."""
    try:
        call(**params)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def _error(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**params)
    return str(caught.value.response["Error"]["Code"])


# -- the catalogue against the real engines -------------------------------------------------------


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start an engine process in ``tmp_path``; every one is killed by PID and reaped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> None:
        with (tmp_path / "engine.log").open("ab") as log:
            started.append(subprocess.Popen(argv, stdout=log, stderr=log, cwd=tmp_path, start_new_session=True))

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_redis_directive_is_accepted_by_redis_server(tmp_path: Path, spawn: Any) -> None:
    """Rendered from the defaults, redis-server starts; every live directive can be CONFIG SET."""
    port = _free_port()
    directives = redis_engine.parameter_directives(pm.defaults("redis7"), 64 << 20)
    config = redis_engine.RedisNodeConfig(
        port=port,
        bind="127.0.0.1",
        data_dir=tmp_path,
        maxmemory_bytes=64 << 20,
        admin_user=ADMIN_USER,
        admin_password="pw",
        parameters=tuple(directives.items()),
    )
    (tmp_path / "redis.conf").write_text(redis_engine.render_config(config))
    spawn(["redis-server", str(tmp_path / "redis.conf")])
    wait_until(lambda: _config(port, "pw", "databases") == "16", 10, what="redis-server to start")
    live = redis_engine.live_directives(directives)
    with _connect(port, "pw") as admin:
        reported = admin.config_get(*live)
        assert redis_engine.config_differences(live, reported) == {}
        assert admin.config_set(*[item for pair in live.items() for item in pair])
        assert set(reported) == set(redis_engine.LIVE_DIRECTIVES)


def test_memcached_starts_with_every_modifiable_parameter_changed(spawn: Any) -> None:
    changed = {
        "max_item_size": "2097152",
        "chunk_size": "64",
        "chunk_size_growth_factor": "1.5",
        "cas_disabled": "1",
        "error_on_memory_exhausted": "1",
        "binding_protocol": "ascii",
        "disable_flush_all": "1",
        "idle_timeout": "30",
        "hash_algorithm": "jenkins",
        "lru_crawler": "0",
        "lru_maintainer": "0",
        "maxconns_fast": "0",
        "slab_reassign": "0",
        "slab_automove": "0",
        "track_sizes": "1",
    }
    modifiable = {d.name for d in pm.MEMCACHED16 if d.modifiable}
    assert set(changed) == modifiable
    port = _free_port()
    extra = memcached.parameter_args(pm.effective("memcached1.6", changed))
    spawn(list(memcached.argv("memcached", port=port, bind="127.0.0.1", memory_mb=64, extra=extra)))
    settings = wait_until(lambda: _try(_memcached_settings, port), 10, what="memcached to start")
    assert (settings["item_size_max"], settings["chunk_size"], settings["growth_factor"]) == ("2097152", "64", "1.50")
    assert (settings["cas_enabled"], settings["evictions"], settings["binding_protocol"]) == ("no", "off", "ascii")
    assert (settings["flush_enabled"], settings["idle_timeout"], settings["hash_algorithm"]) == ("no", "30", "jenkins")
    assert (settings["lru_crawler"], settings["lru_maintainer_thread"], settings["maxconns_fast"]) == ("no",) * 3
    assert (settings["slab_reassign"], settings["slab_automove"], settings["track_sizes"]) == ("no", "0", "yes")


def _try(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except OSError:
        return None


# -- the API ---------------------------------------------------------------------------------------


def test_parameter_group_lifecycle_describe_filters_and_paging(client: Any) -> None:
    groups = {g["CacheParameterGroupName"]: g for g in client.describe_cache_parameter_groups()["CacheParameterGroups"]}
    assert {"default.redis7", "default.redis7.cluster.on", "default.memcached1.6"} <= set(groups)
    assert groups["default.redis7.cluster.on"]["CacheParameterGroupFamily"] == "redis7"
    assert groups["default.memcached1.6"]["ARN"] == f"{ARN}:parametergroup:default.memcached1.6"

    created = client.create_cache_parameter_group(
        CacheParameterGroupName="App-Params",
        CacheParameterGroupFamily="redis7",
        Description="app",
        Tags=[{"Key": "team", "Value": "core"}],
    )["CacheParameterGroup"]
    assert created == {
        "CacheParameterGroupName": "app-params",
        "CacheParameterGroupFamily": "redis7",
        "Description": "app",
        "IsGlobal": False,
        "ARN": f"{ARN}:parametergroup:app-params",
    }
    arn = created["ARN"]
    assert client.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "core"}]
    client.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "env", "Value": "test"}])
    client.remove_tags_from_resource(ResourceName=arn, TagKeys=["team"])
    assert client.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "env", "Value": "test"}]
    assert client.list_tags_for_resource(ResourceName=f"{ARN}:parametergroup:default.redis7")["TagList"] == []

    # Paging over groups: the defaults and 15 more.
    for i in range(15):
        client.create_cache_parameter_group(
            CacheParameterGroupName=f"extra-{i}", CacheParameterGroupFamily="memcached1.6", Description="x"
        )
    first = client.describe_cache_parameter_groups(MaxRecords=20)
    assert len(first["CacheParameterGroups"]) == 20
    pages = client.get_paginator("describe_cache_parameter_groups").paginate(PaginationConfig={"PageSize": 20})
    names = [g["CacheParameterGroupName"] for page in pages for g in page["CacheParameterGroups"]]
    assert len(names) == len(set(names)) == len(groups) + 16

    # Parameters: everything, by page, and by Source.
    everything = client.describe_cache_parameters(CacheParameterGroupName="app-params")
    plain = [d for d in pm.REDIS7 if not d.node_type_specific]
    assert len(everything["Parameters"]) == len(plain)
    assert all(p["Source"] == "system" for p in everything["Parameters"])
    (maxmemory,) = everything["CacheNodeTypeSpecificParameters"]
    values = {v["CacheNodeType"]: v["Value"] for v in maxmemory["CacheNodeTypeSpecificValues"]}
    assert int(values["cache.t4g.small"]) == pytest.approx(1.37 * 2**30, rel=0.01)
    notify = next(p for p in everything["Parameters"] if p["ParameterName"] == "notify-keyspace-events")
    assert "ParameterValue" not in notify  # empty, so omitted as ElastiCache does
    paged = client.get_paginator("describe_cache_parameters").paginate(
        CacheParameterGroupName="app-params", PaginationConfig={"PageSize": 20}
    )
    assert [p["ParameterName"] for page in paged for p in page["Parameters"]] == [d.name for d in plain]
    assert client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="user")["Parameters"] == []

    client.modify_cache_parameter_group(
        CacheParameterGroupName="app-params",
        ParameterNameValues=[
            {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"},
            {"ParameterName": "timeout", "ParameterValue": "0300"},
            {"ParameterName": "notify-keyspace-events", "ParameterValue": "Ex"},
        ],
    )
    user = client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in user} == {
        "maxmemory-policy": "allkeys-lru",
        "timeout": "300",
        "notify-keyspace-events": "Ex",
    }
    assert {p["Source"] for p in user} == {"user"}
    assert {p["ChangeType"] for p in user} == {"immediate"}
    system = client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="system")
    assert len(system["Parameters"]) == len(plain) - 3
    assert client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="engine-default")[
        "Parameters"
    ] == []

    client.reset_cache_parameter_group(
        CacheParameterGroupName="app-params", ParameterNameValues=[{"ParameterName": "timeout"}]
    )
    user = client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="user")["Parameters"]
    assert {p["ParameterName"] for p in user} == {"maxmemory-policy", "notify-keyspace-events"}
    client.reset_cache_parameter_group(CacheParameterGroupName="app-params", ResetAllParameters=True)
    assert client.describe_cache_parameters(CacheParameterGroupName="app-params", Source="user")["Parameters"] == []

    # Engine defaults, with the node-type-specific values and the paginator's nested marker.
    defaults = client.describe_engine_default_parameters(CacheParameterGroupFamily="memcached1.6")["EngineDefaults"]
    assert defaults["CacheParameterGroupFamily"] == "memcached1.6"
    by_name = {p["ParameterName"]: p for p in defaults["Parameters"]}
    assert by_name["max_item_size"]["ParameterValue"] == "1048576"
    assert by_name["max_item_size"]["ChangeType"] == "requires-reboot"
    (cache_memory,) = defaults["CacheNodeTypeSpecificParameters"]
    sizes = {v["CacheNodeType"]: v["Value"] for v in cache_memory["CacheNodeTypeSpecificValues"]}
    assert sizes["cache.t4g.micro"] == "512"
    paged = client.get_paginator("describe_engine_default_parameters").paginate(
        CacheParameterGroupFamily="redis7", PaginationConfig={"PageSize": 20}
    )
    assert len([p for page in paged for p in page["EngineDefaults"]["Parameters"]]) == len(plain)
    cluster_on = client.describe_cache_parameters(CacheParameterGroupName="default.redis7.cluster.on")["Parameters"]
    assert next(p for p in cluster_on if p["ParameterName"] == "cluster-enabled")["ParameterValue"] == "yes"

    # Defaults are read-only.
    for call, extra in (
        (client.modify_cache_parameter_group, {"ParameterNameValues": [
            {"ParameterName": "timeout", "ParameterValue": "30"}
        ]}),
        (client.reset_cache_parameter_group, {"ResetAllParameters": True}),
        (client.delete_cache_parameter_group, {}),
    ):
        assert _error(call, CacheParameterGroupName="default.redis7", **extra) == "InvalidCacheParameterGroupState"

    client.delete_cache_parameter_group(CacheParameterGroupName="app-params")
    assert _error(client.describe_cache_parameter_groups, CacheParameterGroupName="app-params") == (
        "CacheParameterGroupNotFound"
    )
    messages = [
        e["Message"]
        for e in client.describe_events(SourceType="cache-parameter-group", SourceIdentifier="app-params")["Events"]
    ]
    assert messages[0] == "Cache parameter group app-params deleted"
    assert "Cache parameter group app-params created" in messages


# -- values reaching the nodes ---------------------------------------------------------------------


def test_immediate_parameters_reach_every_node_and_replicas_added_later(server: ServerProcess, client: Any) -> None:
    password = server.admin_password()
    _parameter_group(client, "live", "redis7")
    _create_group(client, "live", "live")
    ports = _node_ports(client, "live")
    for port in ports.values():
        assert _config(port, password, "maxmemory-policy") == "volatile-lru"
        assert _config(port, password, "maxmemory-samples") == "3"  # ElastiCache's default, not Redis's 5

    client.modify_cache_parameter_group(
        CacheParameterGroupName="live",
        ParameterNameValues=[
            {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lfu"},
            {"ParameterName": "notify-keyspace-events", "ParameterValue": "Ex"},
            {"ParameterName": "timeout", "ParameterValue": "300"},
        ],
    )
    wanted = {"maxmemory-policy": "allkeys-lfu", "notify-keyspace-events": "xE", "timeout": "300"}
    for port in ports.values():
        wait_until(
            lambda port=port: all(_config(port, password, k) == v for k, v in wanted.items()),
            10,
            what=f"the parameters on node {port}",
        )
    wait_until(
        lambda: all(_apply_status(client, c)[0] == "in-sync" for c in ports), 10, what="the groups to be in-sync"
    )
    assert "Cache cluster parameters changed" in _messages(client, "live-001")

    client.increase_replica_count(ReplicationGroupId="live", NewReplicaCount=2, ApplyImmediately=True)
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="live", WaiterConfig=FAST_WAIT)
    ports = _node_ports(client, "live")
    assert len(ports) == 3
    for port in ports.values():
        assert all(_config(port, password, k) == v for k, v in wanted.items())

    client.modify_cache_parameter_group(
        CacheParameterGroupName="live",
        ParameterNameValues=[{"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-random"}],
    )
    for port in ports.values():
        wait_until(
            lambda port=port: _config(port, password, "maxmemory-policy") == "allkeys-random",
            10,
            what=f"the new value on node {port}",
        )

    # Switching the whole group to another parameter group.
    _parameter_group(client, "strict", "redis7", **{"maxmemory-policy": "noeviction"})
    assert _error(client.delete_cache_parameter_group, CacheParameterGroupName="live") == (
        "InvalidCacheParameterGroupState"
    )
    client.modify_replication_group(ReplicationGroupId="live", CacheParameterGroupName="strict", ApplyImmediately=True)
    for port in ports.values():
        wait_until(
            lambda port=port: _config(port, password, "maxmemory-policy") == "noeviction",
            10,
            what=f"the other group's value on node {port}",
        )
        assert _config(port, password, "timeout") == "0"
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="live", WaiterConfig=FAST_WAIT)
    assert {c["CacheParameterGroup"]["CacheParameterGroupName"] for c in _clusters(client, *ports).values()} == {
        "strict"
    }
    client.delete_cache_parameter_group(CacheParameterGroupName="live")


def test_requires_reboot_parameter_is_pending_until_reboot_which_keeps_the_data(
    server: ServerProcess, client: Any
) -> None:
    password = server.admin_password()
    _parameter_group(client, "boot", "redis7")
    _create_group(client, "boot", "boot")
    ports = _node_ports(client, "boot")
    primary = _primary_port(client, "boot")
    with _connect(primary) as app:
        for start in range(0, 1000, 100):
            app.mset({f"k{i}": str(i) for i in range(start, start + 100)})
        assert app.execute_command("WAIT", 1, 5000) == 1

    client.modify_cache_parameter_group(
        CacheParameterGroupName="boot", ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": "32"}]
    )
    for cluster_id in ports:
        wait_until(
            lambda cluster_id=cluster_id: _apply_status(client, cluster_id) == ("pending-reboot", ["0001"], [
                "pending-reboot"
            ]),
            10,
            what=f"{cluster_id} to show pending-reboot",
        )
    for port in ports.values():
        assert _config(port, password, "databases") == "16"
    assert "Parameter changes pending reboot for cache nodes 0001" in _messages(client, "boot-002")

    before = server.member_pids()
    for cluster_id in ("boot-002", "boot-001"):  # the replica, then the primary
        answer = client.reboot_cache_cluster(CacheClusterId=cluster_id, CacheNodeIdsToReboot=["0001"])
        assert answer["CacheCluster"]["CacheClusterStatus"] == "rebooting cluster nodes"
        # Not while it reboots (unless it is done already, and so available again).
        again = _attempt(client.reboot_cache_cluster, CacheClusterId=cluster_id, CacheNodeIdsToReboot=["0001"])
        assert again in ("ok", "InvalidCacheClusterState")
        wait_until(
            lambda cluster_id=cluster_id: _apply_status(client, cluster_id)[0] == "in-sync"
            and _clusters(client, cluster_id)[cluster_id]["CacheClusterStatus"] == "available",
            20,
            what=f"{cluster_id} to reboot",
        )
        assert server.member_pids()[f"{cluster_id}/0001"] != before[f"{cluster_id}/0001"]
        assert _config(ports[cluster_id], password, "databases") == "32"
        assert _messages(client, cluster_id)[-2:] == ["Cache node 0001 shutdown", "Cache node 0001 restarted"]

    client.get_waiter("replication_group_available").wait(ReplicationGroupId="boot", WaiterConfig=FAST_WAIT)
    assert _primary_port(client, "boot") == primary
    for port in ports.values():
        with _connect(port) as app:
            wait_until(lambda app=app: app.dbsize() == 1000, 10, what=f"all keys on {port}")
            assert app.mget([f"k{i}" for i in range(1000)]) == [str(i) for i in range(1000)]
    with _connect(primary) as app:
        app.set("after", "reboot")
        assert app.execute_command("WAIT", 1, 5000) == 1


def test_min_replicas_to_write_refuses_writes_once_every_replica_is_gone(server: ServerProcess, client: Any) -> None:
    _parameter_group(client, "safe", "redis7", **{"min-replicas-to-write": "1", "min-replicas-max-lag": "10"})
    _create_group(client, "safe", "safe", nodes=3)
    primary = _primary_port(client, "safe")
    with _connect(primary) as app:
        assert app.set("before", "1")
        replicas = [pid for name, pid in server.member_pids().items() if name != "safe-001/0001"]
        assert len(replicas) == 2
        for pid in replicas:
            os.kill(pid, signal.SIGKILL)

        refused: list[str] = []

        def write_refused() -> bool:
            try:
                app.set("during", "x")
            except redis.exceptions.ResponseError as exc:
                refused.append(str(exc))
                return True
            return False

        wait_until(write_refused, 5, interval=0.005, what="a write to be refused")
        assert refused[0].startswith("NOREPLICAS")
        # The reconciler brings the replicas back; writes are taken again.
        wait_until(lambda: not write_refused(), 20, what="writes to be accepted again")


def test_aof_always_loses_no_acknowledged_write_on_kill_9(server: ServerProcess, client: Any) -> None:
    _parameter_group(client, "durable", "redis7", appendonly="yes", appendfsync="always")
    client.create_cache_cluster(
        CacheNodeType="cache.t4g.micro", CacheClusterId="aof", Engine="redis", CacheParameterGroupName="durable"
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="aof", WaiterConfig=FAST_WAIT)
    port = _clusters(client, "aof")["aof"]["CacheNodes"][0]["Endpoint"]["Port"]
    password = server.admin_password()
    assert (_config(port, password, "appendonly"), _config(port, password, "appendfsync")) == ("yes", "always")

    acknowledged = []
    with _connect(port) as app:
        for i in range(2000):
            app.set(f"k{i}", i)  # returns only once Redis replied, after its fsync
            acknowledged.append(f"k{i}")
    old = server.member_pids()["aof/0001"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: server.member_pids().get("aof/0001") not in (None, old), 15, what="the node to restart")

    def keys() -> int | None:
        try:
            with _connect(port) as app:
                return int(app.dbsize())
        except redis.exceptions.RedisError:
            return None  # still loading the AOF

    wait_until(lambda: keys() is not None, 10, what="the node to serve")
    with _connect(port) as app:
        values = app.mget(acknowledged)
    assert values == [str(i) for i in range(2000)]


def test_memcached_parameters_apply_on_reboot(server: ServerProcess, client: Any) -> None:
    _parameter_group(client, "mc-params", "memcached1.6")
    client.create_cache_cluster(
        CacheNodeType="cache.t4g.micro",
        CacheClusterId="mcp", Engine="memcached", NumCacheNodes=2, CacheParameterGroupName="mc-params"
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="mcp", WaiterConfig=FAST_WAIT)
    ports = [n["Endpoint"]["Port"] for n in _clusters(client, "mcp")["mcp"]["CacheNodes"]]
    assert {_memcached_settings(p)["item_size_max"] for p in ports} == {"1048576"}

    client.modify_cache_parameter_group(
        CacheParameterGroupName="mc-params",
        ParameterNameValues=[
            {"ParameterName": "max_item_size", "ParameterValue": "2097152"},
            {"ParameterName": "chunk_size", "ParameterValue": "64"},
        ],
    )
    wait_until(
        lambda: _apply_status(client, "mcp") == ("pending-reboot", ["0001", "0002"], ["pending-reboot"] * 2),
        10,
        what="pending-reboot on both nodes",
    )
    assert {_memcached_settings(p)["item_size_max"] for p in ports} == {"1048576"}

    client.reboot_cache_cluster(CacheClusterId="mcp", CacheNodeIdsToReboot=["0001", "0002"])
    wait_until(
        lambda: _apply_status(client, "mcp") == ("in-sync", [], ["in-sync"] * 2)
        and _clusters(client, "mcp")["mcp"]["CacheClusterStatus"] == "available",
        20,
        what="the reboot",
    )
    for port in ports:
        settings = _memcached_settings(port)
        assert (settings["item_size_max"], settings["chunk_size"]) == ("2097152", "64")
    assert _messages(client, "mcp")[-4:] == [
        "Cache node 0001 shutdown",
        "Cache node 0001 restarted",
        "Cache node 0002 shutdown",
        "Cache node 0002 restarted",
    ]


def test_modify_cache_cluster_switches_a_standalone_cluster_to_another_group(
    server: ServerProcess, client: Any
) -> None:
    client.create_cache_cluster(CacheNodeType="cache.t4g.micro", CacheClusterId="solo", Engine="redis")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)
    cluster = _clusters(client, "solo")["solo"]
    assert cluster["CacheParameterGroup"] == {
        "CacheParameterGroupName": "default.redis7",
        "ParameterApplyStatus": "in-sync",
        "CacheNodeIdsToReboot": [],
    }
    port = cluster["CacheNodes"][0]["Endpoint"]["Port"]
    _parameter_group(client, "lfu", "redis7", **{"maxmemory-policy": "allkeys-lfu", "lfu-log-factor": "20"})
    answer = client.modify_cache_cluster(CacheClusterId="solo", CacheParameterGroupName="lfu", ApplyImmediately=True)
    assert answer["CacheCluster"]["CacheClusterStatus"] == "modifying"
    assert answer["CacheCluster"]["CacheParameterGroup"]["CacheParameterGroupName"] == "lfu"
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="solo", WaiterConfig=FAST_WAIT)
    password = server.admin_password()
    assert (_config(port, password, "maxmemory-policy"), _config(port, password, "lfu-log-factor")) == (
        "allkeys-lfu",
        "20",
    )
    # Fields this version does not change are refused, not ignored.
    assert _error(client.modify_cache_cluster, CacheClusterId="solo", CacheNodeType="cache.r7g.large") == (
        "InvalidParameterValue"
    )


def test_reboot_of_a_primary_watched_by_sentinel_keeps_it_primary_with_its_data(client: Any) -> None:
    """ElastiCache: rebooting a cluster-mode-disabled primary does not fail over. The restart (SHUTDOWN
    SAVE, start on the RDB) takes well under Sentinel's down-after time on a small dataset."""
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId="ha",
        ReplicationGroupDescription="ha",
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="ha", WaiterConfig=FAST_WAIT)
    group = client.describe_replication_groups(ReplicationGroupId="ha")["ReplicationGroups"][0]
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    with _connect(endpoint) as app:
        app.mset({f"k{i}": str(i) for i in range(5000)})
        assert app.execute_command("WAIT", 2, 5000) == 2
    client.reboot_cache_cluster(CacheClusterId="ha-001", CacheNodeIdsToReboot=["0001"])
    wait_until(
        lambda: _clusters(client, "ha-001")["ha-001"]["CacheClusterStatus"] == "available", 20, what="the reboot"
    )
    client.get_waiter("replication_group_available").wait(ReplicationGroupId="ha", WaiterConfig=FAST_WAIT)
    assert _primary_port(client, "ha") == _node_ports(client, "ha")["ha-001"]
    with _connect(endpoint) as app:
        assert app.dbsize() == 5000
        assert app.set("after", "reboot")
    assert _messages(client, "ha-001") == ["Cache node 0001 shutdown", "Cache node 0001 restarted"]
    assert not any("Failover" in m for m in _messages(client, "ha"))
