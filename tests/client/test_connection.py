from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import FullJitterBackoff

from cachefleet_client import (
    Cache,
    CacheConnection,
    ConnectionOptions,
    Endpoint,
    Leaderboard,
    RetryPolicy,
    resolve_replication_group,
)
from cachefleet_client.connection import secured

from .conftest import RedisServer, free_port, options


class StubElastiCache:
    """Stands in for a boto3 `elasticache` client."""

    def __init__(self, groups: dict[str, dict[str, Any]]) -> None:
        self.groups = groups
        self.calls: list[dict[str, Any]] = []

    def describe_replication_groups(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        group = self.groups.get(kwargs["ReplicationGroupId"])
        return {"ReplicationGroups": [group] if group else []}


def _group(primary: str, reader: str | None = None, **extra: Any) -> dict[str, Any]:
    node_group: dict[str, Any] = {"NodeGroupId": "0001"}
    host, port = primary.split(":")
    node_group["PrimaryEndpoint"] = {"Address": host, "Port": int(port)}
    if reader:
        host, port = reader.split(":")
        node_group["ReaderEndpoint"] = {"Address": host, "Port": int(port)}
    return {"ReplicationGroupId": "rg", "NodeGroups": [node_group], **extra}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache.local:6380", Endpoint("cache.local", 6380)),
        ("cache.local", Endpoint("cache.local", 6379)),
        ("[::1]:7000", Endpoint("::1", 7000)),
    ],
)
def test_endpoint_parse(text: str, expected: Endpoint) -> None:
    assert Endpoint.parse(text) == expected
    assert Endpoint.parse(expected) is expected


def test_endpoint_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="host:port"):
        Endpoint.parse("host:port")


def test_retry_policy_covers_failover_errors() -> None:
    expected = Retry(
        FullJitterBackoff(cap=1.0, base=0.1), 3, (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)
    )
    assert RetryPolicy(retries=3, base=0.1, cap=1.0).build() == expected


def test_resolve_replication_group() -> None:
    stub = StubElastiCache({"rg": _group("10.0.0.1:6379", "10.0.0.2:6379", TransitEncryptionEnabled=True)})
    resolved = resolve_replication_group(stub, "rg")
    assert resolved.primary == Endpoint("10.0.0.1")
    assert resolved.reader == Endpoint("10.0.0.2")
    assert not resolved.cluster
    assert resolved.tls
    assert stub.calls == [{"ReplicationGroupId": "rg"}]


def test_resolve_reads_the_groups_access_control() -> None:
    group = _group("10.0.0.1:6379", TransitEncryptionEnabled=True, AuthTokenEnabled=True)
    resolved = resolve_replication_group(StubElastiCache({"rg": group}), "rg")
    assert (resolved.tls, resolved.auth_token, resolved.user_groups) == (True, True, ())
    rbac = _group("10.0.0.1:6379", TransitEncryptionEnabled=True, AuthTokenEnabled=False, UserGroupIds=["app"])
    resolved = resolve_replication_group(StubElastiCache({"rg": rbac}), "rg")
    assert (resolved.auth_token, resolved.user_groups) == (False, ("app",))


def test_secured_takes_tls_from_the_group_and_the_secret_from_the_caller() -> None:
    group = resolve_replication_group(
        StubElastiCache({"rg": _group("10.0.0.1:6379", TransitEncryptionEnabled=True, AuthTokenEnabled=True)}), "rg"
    )
    base = options(client_name="app")
    chosen = secured(group, base, username=None, password="t" * 16, ssl_ca_certs="/etc/ca.pem")
    assert (chosen.ssl, chosen.ssl_ca_certs, chosen.password, chosen.client_name) == (
        True,
        "/etc/ca.pem",
        "t" * 16,
        "app",
    )
    user = secured(group, None, username="app", password="p" * 16, ssl_ca_certs=None)
    assert (user.username, user.password, user.ssl) == ("app", "p" * 16, True)
    with pytest.raises(ValueError, match="AUTH token"):
        secured(group, None, username=None, password=None, ssl_ca_certs=None)
    plain = resolve_replication_group(StubElastiCache({"rg": _group("10.0.0.1:6379")}), "rg")
    with pytest.raises(ValueError, match="password"):
        secured(plain, None, username="app", password=None, ssl_ca_certs=None)


def test_resolve_cluster_mode_group() -> None:
    group = {
        "ReplicationGroupId": "rg",
        "ClusterEnabled": True,
        "ConfigurationEndpoint": {"Address": "cfg.local", "Port": 7000},
        "NodeGroups": [{"NodeGroupId": "0001"}, {"NodeGroupId": "0002"}],
    }
    resolved = resolve_replication_group(StubElastiCache({"rg": group}), "rg")
    assert resolved.cluster
    assert resolved.configuration == Endpoint("cfg.local", 7000)


def test_resolve_unknown_group() -> None:
    with pytest.raises(LookupError, match="not found"):
        resolve_replication_group(StubElastiCache({}), "nope")


@pytest.mark.anyio
@pytest.mark.integration
async def test_from_replication_group_with_reader(tmp_path: Path, redis_factory: type[RedisServer]) -> None:
    primary = redis_factory(tmp_path / "p")
    primary.start()
    replica = redis_factory(tmp_path / "r", "--replicaof", "127.0.0.1", str(primary.port))
    replica.start()
    stub = StubElastiCache({"rg": _group(primary.address, replica.address)})
    conn = await CacheConnection.from_replication_group(
        "rg", elasticache=stub, read_from_replica=True, options=options()
    )
    async with conn:
        assert conn.reader is not conn.writer
        assert (await conn.writer.info("replication"))["role"] == "master"
        assert (await conn.reader.info("replication"))["role"] == "slave"
        cache = Cache(conn, namespace="users")
        assert await cache.get_or_load("1", lambda: {"id": 1}) == {"id": 1}
        # The reader serves the value once it has replicated.
        deadline = time.monotonic() + 5
        while await cache.get("1") is None:
            assert time.monotonic() < deadline, "value never reached the replica"
            await asyncio.sleep(0.02)
        assert await cache.get_or_load("1", pytest.fail) == {"id": 1}


@pytest.mark.anyio
@pytest.mark.integration
async def test_without_read_from_replica_reads_the_primary(redis_server: RedisServer) -> None:
    async with CacheConnection.from_endpoints(redis_server.address, "127.0.0.1:1", options=options()) as conn:
        assert conn.reader is conn.writer


@pytest.mark.anyio
@pytest.mark.integration
async def test_recovers_when_server_is_killed_and_restarted(redis_server: RedisServer) -> None:
    policy = RetryPolicy(retries=20, base=0.05, cap=0.5)
    async with CacheConnection.from_endpoints(redis_server.address, options=options(retry=policy)) as conn:
        await conn.writer.set("before", "1")
        redis_server.kill()  # kill -9 by PID: the pooled connection is now dead

        async def restart_later() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redis_server.start)

        restart = asyncio.create_task(restart_later())
        started = time.monotonic()
        assert await conn.writer.set("after", "2")
        elapsed = time.monotonic() - started
        await restart
        assert elapsed >= 0.4  # it really waited for the restart...
        assert elapsed < 10  # ...within the retry budget
        assert await conn.writer.get("after") == b"2"


@pytest.mark.anyio
@pytest.mark.integration
async def test_readonly_after_failover_is_retried(tmp_path: Path, redis_factory: type[RedisServer]) -> None:
    old_primary = redis_factory(tmp_path / "p")
    old_primary.start()
    node = redis_factory(tmp_path / "r", "--replicaof", "127.0.0.1", str(old_primary.port))
    node.start()
    # The client's primary endpoint points at a node that is (still) a replica: writes get READONLY
    # until the failover promotes it.
    async with CacheConnection.from_endpoints(node.address, options=options()) as conn:
        with pytest.raises(redis.ReadOnlyError):
            await redis.asyncio.Redis(port=node.port, retry=RetryPolicy(retries=0).build()).set("k", "v")

        async def promote_later() -> None:
            await asyncio.sleep(0.3)
            with node.client() as admin:
                await asyncio.to_thread(admin.replicaof, "NO", "ONE")

        promote = asyncio.create_task(promote_later())
        assert await conn.writer.set("k", "v")
        await promote
        assert await conn.writer.get("k") == b"v"


@pytest.mark.anyio
@pytest.mark.integration
async def test_auth_token_and_acl_user(tmp_path: Path, redis_factory: type[RedisServer]) -> None:
    server = redis_factory(tmp_path / "auth", "--requirepass", "token-123")
    server.start()
    with server.client() as admin:
        admin.acl_setuser("app", enabled=True, passwords=["+app-secret"], keys=["app:*"], commands=["+@all"])
    async with CacheConnection.from_endpoints(server.address, options=options(password="token-123")) as conn:
        assert await conn.writer.ping()
    acl = options(username="app", password="app-secret")
    async with CacheConnection.from_endpoints(server.address, options=acl) as conn:
        assert await conn.writer.set("app:1", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await conn.writer.set("other:1", "x")
    async with CacheConnection.from_endpoints(server.address, options=options(password="wrong")) as conn:
        with pytest.raises(redis.AuthenticationError):
            await conn.writer.ping()


def _make_certs(directory: Path) -> tuple[Path, Path, Path]:
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "1", "-subj", "/CN=cachefleet-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca_crt, crt, key


@pytest.mark.anyio
@pytest.mark.integration
async def test_tls_with_private_ca(tmp_path: Path, redis_factory: type[RedisServer]) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, crt, key = _make_certs(certs)
    server = redis_factory(
        tmp_path / "tls",
        "--tls-cert-file", str(crt),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no",
        tls=True,
    )  # fmt: skip
    server.start()
    tls = options(ssl=True, ssl_ca_certs=str(ca))
    async with CacheConnection.from_endpoints(server.address, options=tls) as conn:
        assert await conn.writer.set("k", "v")
        assert await conn.writer.get("k") == b"v"
    plain = options(retry=RetryPolicy(retries=0))
    async with CacheConnection.from_endpoints(server.address, options=plain) as conn:
        with pytest.raises(redis.ConnectionError):
            await conn.writer.ping()


@pytest.fixture
def cluster_node(tmp_path: Path, redis_factory: type[RedisServer]) -> RedisServer:
    """A one-node Redis Cluster that owns all 16384 slots."""
    node = redis_factory(
        tmp_path / "cluster", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        port=free_port(below=55536),
    )
    node.start()
    with node.client() as admin:
        admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while admin.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "cluster did not become ok"
            time.sleep(0.05)
    return node


@pytest.mark.anyio
@pytest.mark.integration
async def test_cluster_mode(cluster_node: RedisServer) -> None:
    async with CacheConnection.from_endpoints(cluster_node.address, cluster=True, options=options()) as conn:
        assert isinstance(conn.writer, RedisCluster)
        assert conn.cluster
        cache = Cache(conn, namespace="c")
        assert await cache.get_or_load("k{1}", lambda: 1, tags=["t"]) == 1
        assert await cache.get_or_load("plain", lambda: 2, tags=["t"]) == 2
        assert await cache.invalidate_tags("t") == 2
        await cache.set("s", 3, tags=["t"])
        assert await cache.get("s") == 3
        board = Leaderboard(conn, "cl")
        await board.submit("a", 5)
        assert (await board.top(1))[0].player == "a"


def test_sync_writer_needs_endpoints() -> None:
    conn = CacheConnection(redis.asyncio.Redis())
    with pytest.raises(RuntimeError, match="endpoints"):
        conn.sync_writer()
    built = CacheConnection.from_endpoints("127.0.0.1:1", options=ConnectionOptions(password="p"))
    client = built.sync_writer()
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_kwargs["port"] == 1
    client.close()
