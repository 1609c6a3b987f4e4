"""The parameter catalogue and what the engines and planners make of it: pure, no processes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.control.actions import ConfigSet
from cachefleet.control.observe import NodeObservation
from cachefleet.control.planners import params, reboot
from cachefleet.engines import memcached, redis
from cachefleet.model import parameters as pm
from cachefleet.model.errors import InvalidParameterValue
from cachefleet.model.nodes import NodeKey, Placement
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import ClusterState, ClusterStatus, NodeState, NodeStatus


@pytest.mark.parametrize("family", list(pm.FAMILIES))
def test_every_default_is_a_valid_value_of_its_own_parameter(family: str) -> None:
    for definition in pm.FAMILIES[family]:
        assert definition.data_type in ("string", "integer", "boolean", "float")
        assert definition.change_type in (pm.IMMEDIATE, pm.REQUIRES_REBOOT)
        if not definition.node_type_specific:
            assert pm.check_value(definition, definition.default) == definition.default, definition.name


def test_the_parameters_the_reference_names_are_there() -> None:
    redis7 = pm.definitions("redis7")
    for name in (
        "appendonly",
        "appendfsync",
        "maxmemory-policy",
        "timeout",
        "notify-keyspace-events",
        "min-replicas-to-write",
        "min-replicas-max-lag",
        "maxmemory",
        "databases",
        "cluster-enabled",
    ):
        assert name in redis7
    assert redis7["maxmemory-policy"].default == "volatile-lru"
    assert redis7["timeout"].allowed == "0,20-"
    assert redis7["databases"].change_type == pm.REQUIRES_REBOOT
    memcached16 = pm.definitions("memcached1.6")
    for name in ("max_item_size", "chunk_size", "chunk_size_growth_factor", "cas_disabled", "max_cache_memory"):
        assert name in memcached16
    # Memcached parameters are command-line flags: every modifiable one waits for a reboot, except
    # those memcached changes on a running node.
    live = {n for n, d in memcached16.items() if d.modifiable and d.change_type == pm.IMMEDIATE}
    assert live == set(memcached.LIVE_PARAMETERS)


def test_default_groups_and_families() -> None:
    groups = pm.default_groups()
    assert {"default.redis7", "default.redis7.cluster.on", "default.memcached1.6"} <= set(groups)
    assert groups["default.redis7.cluster.on"] == ("redis7", {"cluster-enabled": "yes"})
    assert pm.family_for("redis", "7.0.15") == "redis7"
    assert pm.family_for("memcached", "1.6.18") == "memcached1.6"
    assert pm.effective("redis7", {"timeout": "30", "nonsense": "1"})["timeout"] == "30"
    assert "nonsense" not in pm.effective("redis7", {"nonsense": "1"})


@pytest.mark.parametrize(
    ("name", "value", "canonical"),
    [
        ("timeout", "0", "0"),
        ("timeout", "20", "20"),
        ("timeout", "0300", "300"),
        ("maxmemory-policy", "allkeys-lfu", "allkeys-lfu"),
        ("notify-keyspace-events", "", ""),
        ("notify-keyspace-events", "KEA", "KEA"),
        ("notify-keyspace-events", "Ex$", "Ex$"),
        ("slowlog-log-slower-than", "-1", "-1"),
        ("reserved-memory-percent", "100", "100"),
        ("min-replicas-to-write", "1", "1"),
    ],
)
def test_allowed_values(name: str, value: str, canonical: str) -> None:
    assert pm.check_change("redis7", name, value) == (name, canonical)


@pytest.mark.parametrize(
    ("family", "name", "value"),
    [
        ("redis7", "timeout", "5"),  # 0 or at least 20
        ("redis7", "timeout", "-1"),
        ("redis7", "timeout", "ten"),
        ("redis7", "maxmemory-policy", "lru"),
        ("redis7", "appendonly", "YES"),
        ("redis7", "reserved-memory-percent", "101"),
        ("redis7", "notify-keyspace-events", "KQ"),
        ("redis7", "notify-keyspace-events", "KK"),
        ("redis7", "lua-time-limit", "5000"),  # not modifiable
        ("redis7", "maxmemory", "1"),  # node-type specific, not modifiable
        ("redis7", "no-such-parameter", "1"),
        ("redis7", "max_item_size", "2097152"),  # a memcached parameter
        ("memcached1.6", "chunk_size_growth_factor", "1.0"),
        ("memcached1.6", "chunk_size_growth_factor", "abc"),
        ("memcached1.6", "cas_disabled", "2"),
        ("memcached1.6", "max_item_size", "1024"),
        ("memcached1.6", "max_simultaneous_connections", "100"),
    ],
)
def test_refused_changes(family: str, name: str, value: str) -> None:
    with pytest.raises(InvalidParameterValue):
        pm.check_change(family, name, value)


def test_redis_directives_from_parameters() -> None:
    values = pm.effective(
        "redis7",
        {"reserved-memory-percent": "25", "client-output-buffer-limit-pubsub-hard-limit": "1", "databases": "32"},
    )
    directives = redis.parameter_directives(values, 1000)
    assert directives["maxmemory"] == "750"
    assert directives["client-output-buffer-limit"] == "normal 0 0 0 pubsub 1 8388608 60"
    assert directives["maxmemory-policy"] == "volatile-lru"
    assert directives["databases"] == "32"
    for absent in ("cluster-enabled", "close-on-replica-write", "reserved-memory-percent", "activedefrag"):
        assert absent not in directives
    live = redis.live_directives(directives)
    assert "databases" not in live
    assert "maxclients" not in live
    assert set(live) <= set(redis.LIVE_DIRECTIVES)


def test_change_types_match_what_redis_can_set_live() -> None:
    """A parameter is ``immediate`` exactly when its directive can be CONFIG SET."""
    for definition in pm.REDIS7:
        if not definition.modifiable:
            continue
        directives = redis.parameter_directives(pm.effective("redis7", {}), 1 << 30)
        name = definition.name
        directive = (
            "maxmemory"
            if name == "reserved-memory-percent"
            else "client-output-buffer-limit"
            if name.startswith("client-output-buffer-limit-")
            else name
        )
        assert directive in directives, name
        live = directive not in redis.STARTUP_DIRECTIVES
        assert live == (definition.change_type == pm.IMMEDIATE), name


def test_config_differences_follow_redis_normal_forms() -> None:
    wanted = {
        "notify-keyspace-events": "KEA",
        "client-output-buffer-limit": "normal 0 0 0 pubsub 33554432 8388608 60",
        "maxmemory-policy": "allkeys-lru",
        "timeout": "0",
    }
    actual = {
        "notify-keyspace-events": "AKE",
        "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        "maxmemory-policy": "volatile-lru",
        "timeout": "0",
    }
    assert redis.config_differences(wanted, actual) == {"maxmemory-policy": "allkeys-lru"}
    assert redis.config_differences({"notify-keyspace-events": "Ex"}, {"notify-keyspace-events": "xE"}) == {}
    assert redis.config_differences({"notify-keyspace-events": ""}, {"notify-keyspace-events": "xE"}) == {
        "notify-keyspace-events": ""
    }
    assert redis.config_differences({"timeout": "30"}, {}) == {"timeout": "30"}


def test_render_config_takes_the_parameter_directives_once_each() -> None:
    values = pm.effective("redis7", {"appendonly": "yes", "appendfsync": "always", "notify-keyspace-events": "Ex$"})
    directives = redis.parameter_directives(values, 536870912)
    config = redis.RedisNodeConfig(
        port=21001,
        bind="127.0.0.1",
        data_dir=Path("/data/n"),
        maxmemory_bytes=536870912,
        admin_user="cachefleet-admin",
        admin_password="s3cret",
        parameters=tuple(directives.items()),
    )
    lines = [line for line in redis.render_config(config).splitlines() if line and not line.startswith("#")]
    names = [line.split()[0] for line in lines]
    assert {n for n in names if names.count(n) > 1} == {"user"}
    assert "appendonly yes" in lines
    assert "appendfsync always" in lines
    assert 'notify-keyspace-events "Ex$"' in lines
    assert 'client-output-buffer-limit "normal 0 0 0 pubsub 33554432 8388608 60"' in lines
    assert "maxmemory 536870912" in lines


def test_memcached_flags_from_parameters() -> None:
    assert memcached.parameter_args(pm.defaults("memcached1.6")) == (
        "-I", "1048576", "-n", "48", "-f", "1.25", "-B", "auto",
        "-o", "hash_algorithm=murmur3,slab_automove=1,idle_timeout=0",
    )  # fmt: skip
    changed = pm.effective(
        "memcached1.6",
        {"max_item_size": "2097152", "cas_disabled": "1", "lru_crawler": "0", "track_sizes": "1", "idle_timeout": "60"},
    )
    args = memcached.parameter_args(changed)
    assert args[:2] == ("-I", "2097152")
    assert "-C" in args
    assert args[-1] == "no_lru_crawler,track_sizes,hash_algorithm=murmur3,slab_automove=1,idle_timeout=60"


def _spec(nodes: int, requests: int, asked: tuple[str, ...]) -> CacheClusterSpec:
    return CacheClusterSpec(
        id="c",
        engine="memcached",
        engine_version="1.6.18",
        node_type="cache.t4g.micro",
        node_azs=("us-east-1a",) * nodes,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        reboot_requests=requests,
        reboot_nodes=asked,
    )


def test_reboot_restarts_one_node_at_a_time_and_waits_for_it() -> None:
    spec = _spec(2, 1, ("0001", "0002"))
    status = ClusterStatus(
        ClusterState.REBOOTING,
        nodes=(NodeStatus("0001", NodeState.AVAILABLE), NodeStatus("0002", NodeState.AVAILABLE)),
    )
    ready = {"0001": True, "0002": True}
    assert reboot.step(spec, ClusterStatus(ClusterState.AVAILABLE, reboots_done=1), ready, may_restart=True) is None

    first = reboot.step(spec, status, ready, may_restart=False)
    assert first is not None
    assert (first.restart, first.finished) == (None, False)
    first = reboot.step(spec, status, ready, may_restart=True)
    assert first is not None
    assert (first.restart, first.restarting, first.events) == ("0001", ("0001",), ("Cache node 0001 shutdown",))
    status = reboot.record(status, first, 1)
    assert status.node("0001") == NodeStatus("0001", NodeState.REBOOTING)

    waiting = reboot.step(spec, status, {"0001": False, "0002": True}, may_restart=True)
    assert waiting is not None
    assert (waiting.restart, waiting.restarting, waiting.events) == (None, ("0001",), ())

    second = reboot.step(spec, status, ready, may_restart=True)
    assert second is not None
    assert second.restart == "0002"
    assert second.events == ("Cache node 0001 restarted", "Cache node 0002 shutdown")
    status = reboot.record(status, second, 1)

    done = reboot.step(spec, status, ready, may_restart=True)
    assert done is not None
    assert done.finished
    assert done.events == ("Cache node 0002 restarted",)
    final = reboot.record(status, done, 1)
    assert (final.status, final.reboots_done, final.restarting, final.restarted) == (ClusterState.AVAILABLE, 1, (), ())


def test_node_parameter_status() -> None:
    key = NodeKey("c", "0001")
    want = params.wanted("redis", "7.0.15", "cache.t4g.micro", pm.effective("redis7", {"databases": "32"}))
    config = {name: want.live[name] for name in want.live}
    started = pm.effective("redis7", {})
    info = redis.observation_from_info({"role": "master", "loading": 0}, config)
    obs = NodeObservation(port=1, pid=2, redis=info, started_with=started)
    at = Placement("local", "127.0.0.1", "us-east-1a")
    assert params.check_node(key, at, obs, want) == params.NodeParameters(None, pm.PENDING_REBOOT)
    restarted = NodeObservation(port=1, pid=3, redis=info, started_with=pm.effective("redis7", {"databases": "32"}))
    assert params.check_node(key, at, restarted, want).status == pm.IN_SYNC
    drifted = redis.observation_from_info({"role": "master"}, {**config, "maxmemory-policy": "noeviction"})
    check = params.check_node(key, at, NodeObservation(port=1, pid=3, redis=drifted, started_with=None), want)
    assert check.action == ConfigSet(key, at, (("maxmemory-policy", "volatile-lru"),))
    assert check.status == pm.APPLYING
    assert params.check_node(key, at, NodeObservation(port=1, pid=None), want).status == pm.IN_SYNC
    assert params.apply_status([pm.IN_SYNC, pm.PENDING_REBOOT]) == pm.PENDING_REBOOT
    assert params.events(pm.APPLYING, pm.PENDING_REBOOT, {"0001": pm.PENDING_REBOOT}) == [
        "Cache cluster parameters changed",
        "Parameter changes pending reboot for cache nodes 0001",
    ]
