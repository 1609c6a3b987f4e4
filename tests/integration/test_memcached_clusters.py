"""Memcached clusters through the API: the configuration endpoint, node changes followed by the
client, a node killed and replaced on its address, reboots, thread counts, and bad inputs.

One server and one cluster serve the module; the tests run in order and each leaves the cluster
available for the next (pytest runs a module's tests in file order).
"""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bmemcached
import pytest
from botocore.exceptions import ClientError
from tests.integration.conftest import FAST_WAIT
from tests.support.engines import secrets_in_files
from tests.support.memcached import exchange
from tests.support.server import ServerProcess, is_alive, wait_until

from cachefleet.engines import config_endpoint, memcached
from cachefleet_client.memcached import DiscoveryError, MemcachedClient

pytestmark = pytest.mark.integration

CLUSTER = "mc"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("mc-api") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    api = server.client()
    api.create_cache_cluster(
        CacheClusterId=CLUSTER, Engine="memcached", NumCacheNodes=3, AZMode="cross-az", CacheNodeType="cache.t3.micro"
    )
    api.get_waiter("cache_cluster_available").wait(CacheClusterId=CLUSTER, WaiterConfig=FAST_WAIT)
    return api


def _cluster(client: Any) -> dict[str, Any]:
    return dict(client.describe_cache_clusters(CacheClusterId=CLUSTER, ShowCacheNodeInfo=True)["CacheClusters"][0])


def _endpoint(client: Any) -> tuple[str, int]:
    found = _cluster(client)["ConfigurationEndpoint"]
    return found["Address"], int(found["Port"])


def _config(client: Any) -> bytes:
    return exchange(_endpoint(client)[1], b"config get cluster\r\n")


def _available(client: Any) -> bool:
    return bool(_cluster(client)["CacheClusterStatus"] == "available")


def _messages(client: Any) -> list[str]:
    events = client.describe_events(SourceIdentifier=CLUSTER, SourceType="cache-cluster", Duration=60)["Events"]
    return [e["Message"] for e in reversed(events)]


def _code(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**params)
    return str(raised.value.response["Error"]["Code"])


def test_configuration_endpoint_answers_with_aws_framing(client: Any) -> None:
    cluster = _cluster(client)
    _, port = _endpoint(client)
    nodes = cluster["CacheNodes"]
    assert [n["CacheNodeId"] for n in nodes] == ["0001", "0002", "0003"]
    assert port not in {n["Endpoint"]["Port"] for n in nodes}  # a process of its own, not a node
    answer = _config(client)
    version = int(answer.split(b"\r\n")[1].split(b"\n")[0])
    assert version >= 1
    entries = " ".join(f"{n['Endpoint']['Address']}|127.0.0.1|{n['Endpoint']['Port']}" for n in nodes)
    body = f"{version}\n{entries}\n".encode()
    assert answer == b"CONFIG cluster 0 %d\r\n" % len(body) + body + b"\r\nEND\r\n"
    # Anything else is a node's answer, through the endpoint.
    assert exchange(port, b"set via-endpoint 0 0 2\r\nok\r\nget via-endpoint\r\n") == (
        b"STORED\r\nVALUE via-endpoint 0 2\r\nok\r\nEND\r\n"
    )


def test_three_node_cluster_used_through_the_client(client: Any) -> None:
    keys = [f"user:{i}" for i in range(300)]
    with MemcachedClient(_endpoint(client), default_noreply=False) as mc:
        assert len(mc.nodes) == 3
        assert mc.set_many({k: k.encode() for k in keys}) == []
        assert mc.get_many(keys) == {k: k.encode() for k in keys}
        owners = {mc.node_for(k) for k in keys}
    assert len(owners) == 3


def test_threads_and_memory_follow_the_node_type(client: Any) -> None:
    client.create_cache_cluster(CacheClusterId="mc-big", Engine="memcached", CacheNodeType="cache.m5.xlarge")
    client.get_waiter("cache_cluster_available").wait(CacheClusterId="mc-big", WaiterConfig=FAST_WAIT)
    try:
        for cluster_id, threads, memory_mb in ((CLUSTER, 2, 512), ("mc-big", 4, 13240)):
            described = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
            port = described["CacheClusters"][0]["CacheNodes"][0]["Endpoint"]["Port"]
            settings = memcached.parse_stats(exchange(port, b"stats settings\r\n").decode())
            assert (settings["num_threads"], settings["maxbytes"]) == (str(threads), str(memory_mb << 20))
    finally:
        client.delete_cache_cluster(CacheClusterId="mc-big")


def test_a_node_added_and_one_removed_under_load_with_the_client_following(client: Any) -> None:
    keys = [f"load:{i}" for i in range(500)]
    failures: list[BaseException] = []
    with MemcachedClient(_endpoint(client), poll_interval=0.2, default_noreply=False) as mc:
        mc.set_many({k: b"v" for k in keys})
        version = mc.config.version

        def run_until(condition: Any, what: str) -> None:
            deadline = time.monotonic() + 30
            i = 0
            while time.monotonic() < deadline:  # bounded: one command after another, 30 s at most
                key = keys[i % len(keys)]
                i += 1
                try:
                    if mc.get(key) is None:
                        mc.set(key, b"v")
                except Exception as exc:  # counted: the client must ride over every change
                    failures.append(exc)
                if i % 50 == 0 and condition():
                    return
            raise AssertionError(f"timed out waiting for {what}")

        added = client.modify_cache_cluster(CacheClusterId=CLUSTER, NumCacheNodes=4, ApplyImmediately=True)
        assert added["CacheCluster"]["CacheClusterStatus"] == "modifying"
        run_until(lambda: len(mc.nodes) == 4 and _available(client), "the fourth node")
        assert mc.config.version == version + 1
        cluster = _cluster(client)
        assert [n["CacheNodeId"] for n in cluster["CacheNodes"]] == ["0001", "0002", "0003", "0004"]
        assert cluster["CacheNodes"][3]["CustomerAvailabilityZone"] == "us-east-1a"  # the least used AZ

        gone = next(n for n in cluster["CacheNodes"] if n["CacheNodeId"] == "0002")["Endpoint"]["Port"]
        removed = client.modify_cache_cluster(
            CacheClusterId=CLUSTER, NumCacheNodes=3, CacheNodeIdsToRemove=["0002"], ApplyImmediately=True
        )
        assert removed["CacheCluster"]["NumCacheNodes"] == 3
        run_until(lambda: ("127.0.0.1", gone) not in mc.nodes and _available(client), "the removal")
        assert mc.config.version == version + 2
    assert failures == []
    assert [n["CacheNodeId"] for n in _cluster(client)["CacheNodes"]] == ["0001", "0003", "0004"]
    wait_until(lambda: exchange_refused(gone), 10, what="the removed node to stop")
    messages = _messages(client)
    for message in (
        "Increasing number of requested nodes",
        "Added cache node 0004 in availability zone us-east-1a",
        "Finished modifying number of nodes from 3 to 4",
        "Decreasing number of requested nodes",
        "Removed cache node 0002",
        "Finished modifying number of nodes from 4 to 3",
    ):
        assert message in messages


def exchange_refused(port: int) -> bool:
    try:
        exchange(port, b"version\r\n", until=b"\r\n", timeout=0.5)
    except OSError:
        return True
    return False


def test_a_change_without_apply_immediately_waits_as_pending(client: Any) -> None:
    pending = client.modify_cache_cluster(CacheClusterId=CLUSTER, NumCacheNodes=4)["CacheCluster"]
    assert pending["PendingModifiedValues"] == {"NumCacheNodes": 4}
    assert (pending["NumCacheNodes"], pending["CacheClusterStatus"]) == (3, "available")
    # The same count cancels it; ApplyImmediately alone carries out what is pending.
    cancelled = client.modify_cache_cluster(CacheClusterId=CLUSTER, NumCacheNodes=3)["CacheCluster"]
    assert cancelled["PendingModifiedValues"] == {}
    client.modify_cache_cluster(CacheClusterId=CLUSTER, NumCacheNodes=2, CacheNodeIdsToRemove=["0004"])
    assert _cluster(client)["PendingModifiedValues"] == {"NumCacheNodes": 2, "CacheNodeIdsToRemove": ["0004"]}
    applied = client.modify_cache_cluster(CacheClusterId=CLUSTER, ApplyImmediately=True)["CacheCluster"]
    assert (applied["NumCacheNodes"], applied["PendingModifiedValues"]) == (2, {})
    wait_until(lambda: _available(client), 20, what="the pending removal")
    assert [n["CacheNodeId"] for n in _cluster(client)["CacheNodes"]] == ["0001", "0003"]


def test_a_third_party_auto_discovery_client_works_unchanged(client: Any) -> None:
    """django-elastipymemcache (Django's cache backend for ElastiCache Memcached, on pymemcache),
    configured as its README says, with the ConfigurationEndpoint of our cluster."""
    django = pytest.importorskip("django")
    from django.conf import settings  # noqa: PLC0415  # Django's settings exist only once configured

    address, port = _endpoint(client)
    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django_elastipymemcache.backend.ElastiPymemcache",
                "LOCATION": f"{address}:{port}",
                "OPTIONS": {"discovery_interval": 0.1, "use_pooling": True},
            }
        }
    )
    django.setup()
    from django.core.cache import cache  # noqa: PLC0415

    def nodes() -> set[str]:
        return {f"{n['Endpoint']['Address']}:{n['Endpoint']['Port']}" for n in _cluster(client)["CacheNodes"]}

    try:
        cache.set("third-party", "works", 60)
        assert cache.get("third-party") == "works"
        assert set(cache._cache.clients) == nodes()
        # It follows a node added through the API, as it would on ElastiCache.
        client.modify_cache_cluster(CacheClusterId=CLUSTER, NumCacheNodes=3, ApplyImmediately=True)
        wait_until(lambda: _available(client), 20, what="the new node")

        def rediscovered() -> bool:
            cache.get("third-party")  # its discovery runs on the way to a node
            return set(cache._cache.clients) == nodes()

        wait_until(rediscovered, 10, what="django-elastipymemcache to see the new node")
        assert len(cache._cache.clients) == 3
    finally:
        cache.close()


def test_a_killed_node_is_replaced_on_the_same_endpoint(server: ServerProcess, client: Any) -> None:
    before = _cluster(client)["CacheNodes"]
    config = _config(client)
    victim = server.member_pids()[f"{CLUSTER}/0003"]
    os.kill(victim, signal.SIGKILL)
    with MemcachedClient(_endpoint(client), dead_timeout=0.2, default_noreply=False) as mc:
        # The endpoint keeps answering, and still lists the node (its clients retry its address).
        assert _config(client) == config
        for i in range(100):
            assert mc.set(f"ride:{i}", b"v")
        # The cluster may still read available in the pass that restarts the node: the node's own
        # status (rebooting, then available) is what says the replacement is done.
        wait_until(
            lambda: (
                server.member_pids().get(f"{CLUSTER}/0003", victim) != victim
                and _available(client)
                and all(n["CacheNodeStatus"] == "available" for n in _cluster(client)["CacheNodes"])
            ),
            20,
            what="the replacement",
        )
        assert _cluster(client)["CacheNodes"] == before  # same ids, zones, addresses and ports
        port = before[1]["Endpoint"]["Port"]
        wait_until(
            lambda: any(mc.set(f"back:{i}", b"v") and mc.node_for(f"back:{i}")[1] == port for i in range(50)),
            10,
            what="the client back on the replaced node",
        )
    assert _config(client) == config  # a replacement is no change of membership
    assert not is_alive(victim)
    # The configuration endpoint itself is replaced the same way: same port, same version and list.
    endpoint_pid = server.node_pids()[f"cfg.{CLUSTER}/endpoint"]
    os.kill(endpoint_pid, signal.SIGKILL)
    wait_until(
        lambda: server.node_pids().get(f"cfg.{CLUSTER}/endpoint", endpoint_pid) != endpoint_pid,
        20,
        what="a new configuration endpoint",
    )
    wait_until(lambda: not exchange_refused(_endpoint(client)[1]), 10, what="the endpoint to listen")
    assert _config(client) == config


def test_reboot_restarts_the_named_nodes_one_at_a_time(server: ServerProcess, client: Any) -> None:
    pids = server.member_pids()
    rebooted = client.reboot_cache_cluster(CacheClusterId=CLUSTER, CacheNodeIdsToReboot=["0003"])
    assert rebooted["CacheCluster"]["CacheClusterStatus"] == "rebooting cluster nodes"
    wait_until(lambda: _available(client), 20, what="the reboot")
    after = server.member_pids()
    assert after[f"{CLUSTER}/0001"] == pids[f"{CLUSTER}/0001"]
    assert after[f"{CLUSTER}/0003"] != pids[f"{CLUSTER}/0003"]
    assert _messages(client)[-2:] == ["Cache node 0003 shutdown", "Cache node 0003 restarted"]


def test_live_parameters_reach_running_nodes_without_a_restart(server: ServerProcess, client: Any) -> None:
    client.create_cache_parameter_group(
        CacheParameterGroupName="mc-live", CacheParameterGroupFamily="memcached1.6", Description="live"
    )
    client.modify_cache_cluster(CacheClusterId=CLUSTER, CacheParameterGroupName="mc-live", ApplyImmediately=True)
    wait_until(lambda: _available(client), 20, what="the new parameter group")
    pids = server.member_pids()
    client.modify_cache_parameter_group(
        CacheParameterGroupName="mc-live",
        ParameterNameValues=[
            {"ParameterName": "slab_automove", "ParameterValue": "0"},
            {"ParameterName": "lru_crawler", "ParameterValue": "0"},
        ],
    )
    ports = [n["Endpoint"]["Port"] for n in _cluster(client)["CacheNodes"]]

    def settings(port: int) -> tuple[str, str]:
        found = memcached.parse_stats(exchange(port, b"stats settings\r\n").decode())
        return found["slab_automove"], found["lru_crawler"]

    wait_until(lambda: all(settings(p) == ("0", "no") for p in ports), 20, what="the live change")
    wait_until(lambda: _cluster(client)["CacheParameterGroup"]["ParameterApplyStatus"] == "in-sync", 10, what="in-sync")
    assert server.member_pids() == pids  # no node restarted


TOKEN = "Token-0123456789-abcdef"


def _tls(server: ServerProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))


def _create_secure(client: Any, cluster_id: str, **extra: Any) -> dict[str, Any]:
    client.create_cache_cluster(
        CacheClusterId=cluster_id,
        Engine="memcached",
        CacheNodeType="cache.t4g.micro",
        NumCacheNodes=2,
        TransitEncryptionEnabled=True,
        AuthToken=TOKEN,
        **extra,
    )
    client.get_waiter("cache_cluster_available").wait(CacheClusterId=cluster_id, WaiterConfig=FAST_WAIT)
    described = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    return dict(described["CacheClusters"][0])


def test_tls_and_ascii_authentication_through_the_api(server: ServerProcess, client: Any) -> None:
    cluster = _create_secure(client, "mc-tls")
    assert (cluster["TransitEncryptionEnabled"], cluster["TransitEncryptionMode"], cluster["AuthTokenEnabled"]) == (
        True,
        "required",
        True,
    )
    endpoint = (cluster["ConfigurationEndpoint"]["Address"], cluster["ConfigurationEndpoint"]["Port"])
    node_port = cluster["CacheNodes"][0]["Endpoint"]["Port"]
    with MemcachedClient(endpoint, tls_context=_tls(server), username="default", password=TOKEN) as mc:
        assert len(mc.nodes) == 2
        assert mc.set("secure", b"yes", noreply=False)
        assert mc.get("secure") == b"yes"
    # Plaintext is refused by the nodes and by the configuration endpoint.
    assert exchange_refused(node_port) or not exchange(node_port, b"version\r\n", until=b"\r\n").startswith(b"VERSION")
    with pytest.raises(DiscoveryError):
        MemcachedClient(endpoint, timeout=1, connect_timeout=1)
    # TLS without the token: refused too, discovery included.
    with pytest.raises(DiscoveryError, match="unauthenticated"):
        MemcachedClient(endpoint, tls_context=_tls(server))
    with pytest.raises(DiscoveryError, match="authentication failure"):
        MemcachedClient(endpoint, tls_context=_tls(server), username="default", password="Wrong-0123456789")
    rotate = {"AuthToken": "Token-9876543210-abcdef", "AuthTokenUpdateStrategy": "ROTATE", "ApplyImmediately": True}
    assert _code(client.modify_cache_cluster, CacheClusterId="mc-tls", **rotate) == "InvalidParameterValue"
    _token_only_where_memcached_checks_it(server, "mc-tls", memcached.AUTH_FILE)
    client.delete_cache_cluster(CacheClusterId="mc-tls")


def _token_only_where_memcached_checks_it(server: ServerProcess, cluster_id: str, node_file: str) -> None:
    """The token is in the files memcached (or the configuration endpoint) checks it against, 0600
    beside each process, and nowhere else: not in state.db or its WAL (sealed there), not in a log."""
    found = {Path(f.rsplit(": ", 1)[0]) for f in secrets_in_files(server.data_dir, [TOKEN])}
    nodes = server.data_dir / "nodes"
    mine = {nodes / cluster_id / n / node_file for n in ("0001", "0002")}
    mine.add(nodes / f"cfg.{cluster_id}" / "endpoint" / config_endpoint.CONFIG_FILE)
    assert mine <= found
    # Others are the files of the other secured cluster (deleted, its processes may still be going).
    assert {p.name for p in found} <= {memcached.AUTH_FILE, memcached.SASL_DB, config_endpoint.CONFIG_FILE}, found
    assert all(p.stat().st_mode & 0o077 == 0 for p in found), found


def test_sasl_through_the_api(server: ServerProcess, client: Any) -> None:
    client.create_cache_parameter_group(
        CacheParameterGroupName="mc-sasl", CacheParameterGroupFamily="memcached1.6", Description="SASL"
    )
    client.modify_cache_parameter_group(
        CacheParameterGroupName="mc-sasl",
        ParameterNameValues=[{"ParameterName": "binding_protocol", "ParameterValue": "binary"}],
    )
    cluster = _create_secure(client, "mc-sasl", CacheParameterGroupName="mc-sasl")
    servers = [f"127.0.0.1:{n['Endpoint']['Port']}" for n in cluster["CacheNodes"]]
    good = bmemcached.Client(servers, "default", TOKEN, tls_context=_tls(server), socket_timeout=2)
    assert good.set("sasl", "yes")
    assert good.get("sasl") == "yes"
    good.disconnect_all()
    wrong = bmemcached.Client(servers[:1], "default", "Wrong-0123456789", tls_context=_tls(server), socket_timeout=2)
    with pytest.raises(bmemcached.exceptions.MemcachedException, match="Auth"):
        wrong.set("k", "v")
    wrong.disconnect_all()
    _token_only_where_memcached_checks_it(server, "mc-sasl", memcached.SASL_DB)
    client.delete_cache_cluster(CacheClusterId="mc-sasl")


def test_bad_inputs_get_aws_codes(client: Any) -> None:
    modify = client.modify_cache_cluster
    assert _code(modify, CacheClusterId=CLUSTER, NumCacheNodes=41, ApplyImmediately=True) == "InvalidParameterValue"
    assert _code(modify, CacheClusterId=CLUSTER, NumCacheNodes=1) == "InvalidParameterValue"  # ids missing
    assert _code(modify, CacheClusterId=CLUSTER, NumCacheNodes=1, CacheNodeIdsToRemove=["0002"]) == (
        "InvalidParameterValue"  # no such node (removed earlier)
    )
    assert _code(modify, CacheClusterId=CLUSTER, NumCacheNodes=3, NewAvailabilityZones=["a", "b"]) == (
        "InvalidParameterValue"
    )
    assert _code(modify, CacheClusterId=CLUSTER, NumCacheNodes=4, CacheNodeIdsToRemove=["0001"]) == (
        "InvalidParameterCombination"
    )
    assert _code(modify, CacheClusterId=CLUSTER, AZMode="single-az") == "InvalidParameterCombination"
    assert _code(modify, CacheClusterId="nope", NumCacheNodes=2) == "CacheClusterNotFound"
    reboot = client.reboot_cache_cluster
    assert _code(reboot, CacheClusterId=CLUSTER, CacheNodeIdsToReboot=["0002"]) == "InvalidParameterValue"
    create = client.create_cache_cluster
    node = {"CacheClusterId": "x", "CacheNodeType": "cache.t4g.micro"}
    assert _code(create, **node, Engine="memcached", NumCacheNodes=41) == "InvalidParameterValue"
    with pytest.raises(ClientError, match="encryption-in-transit") as raised:
        create(**node, Engine="memcached", AuthToken="a" * 20)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterCombination"  # as for redis
    with pytest.raises(ClientError, match="Invalid AuthToken"):
        create(**node, Engine="memcached", AuthToken="short", TransitEncryptionEnabled=True)
    assert _code(create, **node, Engine="redis", NumCacheNodes=2) == "InvalidParameterValue"
    assert (
        _code(create, **node, Engine="memcached", NumCacheNodes=2, PreferredAvailabilityZones=["us-east-1a"])
        == "InvalidParameterValue"
    )
    # Nothing changed.
    cluster = _cluster(client)
    assert (cluster["NumCacheNodes"], cluster["PendingModifiedValues"]) == (3, {})
    assert "x" not in {c["CacheClusterId"] for c in client.describe_cache_clusters()["CacheClusters"]}


def test_deleting_the_cluster_stops_its_endpoint(server: ServerProcess, client: Any) -> None:
    _, port = _endpoint(client)
    client.delete_cache_cluster(CacheClusterId=CLUSTER)
    client.get_waiter("cache_cluster_deleted").wait(CacheClusterId=CLUSTER, WaiterConfig=FAST_WAIT)
    wait_until(lambda: exchange_refused(port), 10, what="the configuration endpoint to stop")
    assert not any(k.startswith(("cfg.mc/", f"{CLUSTER}/")) for k in server.node_pids())
    assert not Path(server.data_dir / "nodes" / f"cfg.{CLUSTER}").exists()
