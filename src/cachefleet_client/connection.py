"""Connections to a cache: a writer on the primary, readers on replicas, retries across failover.

Every pattern in this package takes a `CacheConnection` and uses `connection.writer` for writes
(and for anything that must read its own writes, such as locks and sessions) and
`connection.reader` for plain cache reads. Build one from endpoints, from an ElastiCache
replication group id (resolved with `DescribeReplicationGroups`), or from clients you built.

Failover: the primary endpoint keeps its name while the node behind it changes. During the
switch a client sees refused or dropped connections, timeouts, and `READONLY` replies from the
old primary that became a replica. All three are retried here with exponential backoff and full
jitter (redis-py's `Retry` + `FullJitterBackoff`); each retry drops the connection, so the next
attempt connects again and reaches the new primary. Retries make a command run at least once:
non-idempotent commands (`INCR`, `ZINCRBY`) may apply twice if a reply was lost mid-failover.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.cluster
import redis.retry
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import FullJitterBackoff
from redis.cluster import LoadBalancingStrategy
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

__all__ = [
    "RETRYABLE_ERRORS",
    "CacheConnection",
    "ConnectionOptions",
    "ElastiCacheClient",
    "Endpoint",
    "RedisClient",
    "ResolvedGroup",
    "RetryPolicy",
    "resolve_replication_group",
    "secured",
]

RedisClient = redis.asyncio.Redis | RedisCluster
"""The async client type the patterns accept: a single endpoint or a cluster."""

RETRYABLE_ERRORS: tuple[type[redis.RedisError], ...] = (ConnectionError, TimeoutError, ReadOnlyError)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int = 6379

    @classmethod
    def parse(cls, text: str | Endpoint) -> Endpoint:
        """`"host:port"` or `"host"` (port 6379); an `Endpoint` is returned unchanged."""
        if isinstance(text, Endpoint):
            return text
        host, sep, port = text.rpartition(":")
        if not sep:
            return cls(text)
        if not host or not port.isdigit():
            raise ValueError(f"not a host:port endpoint: {text!r}")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to `retries` retries after the first attempt; sleep uniform(0, min(cap, base * 2**n))."""

    retries: int = 10
    base: float = 0.05
    cap: float = 2.0

    def build(self) -> Retry:
        return Retry(FullJitterBackoff(cap=self.cap, base=self.base), self.retries, RETRYABLE_ERRORS)

    def build_sync(self) -> redis.retry.Retry:
        return redis.retry.Retry(FullJitterBackoff(cap=self.cap, base=self.base), self.retries, RETRYABLE_ERRORS)


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Transport and auth settings shared by every client a `CacheConnection` builds.

    `password` alone is an AUTH token (`requirepass` / ElastiCache AUTH); with `username` it is an
    ACL user's password. `ssl_ca_certs` is a CA bundle file for servers with private CAs.
    Non-cluster clients use a blocking pool: past `max_connections` concurrent commands, callers
    wait up to `pool_timeout` seconds for a free connection instead of failing at once.
    """

    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_check_hostname: bool = True
    username: str | None = None
    password: str | None = None
    socket_timeout: float | None = 5.0
    socket_connect_timeout: float | None = 2.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 100
    pool_timeout: float | None = 20.0
    client_name: str | None = None

    def connection_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "client_name": self.client_name,
        }
        if self.ssl:
            kwargs.update(ssl_ca_certs=self.ssl_ca_certs, ssl_check_hostname=self.ssl_check_hostname)
        return kwargs

    def async_client(self, endpoint: Endpoint) -> redis.asyncio.Redis:
        pool = redis.asyncio.BlockingConnectionPool(
            host=endpoint.host,
            port=endpoint.port,
            max_connections=self.max_connections,
            timeout=self.pool_timeout,
            retry=self.retry.build(),
            connection_class=redis.asyncio.SSLConnection if self.ssl else redis.asyncio.Connection,
            **self.connection_kwargs(),
        )
        return redis.asyncio.Redis.from_pool(pool)

    def sync_client(self, endpoint: Endpoint) -> redis.Redis:
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]  # unannotated in redis-py
            host=endpoint.host,
            port=endpoint.port,
            max_connections=self.max_connections,
            timeout=self.pool_timeout,
            retry=self.retry.build_sync(),
            connection_class=redis.SSLConnection if self.ssl else redis.Connection,
            **self.connection_kwargs(),
        )
        return redis.Redis.from_pool(pool)

    def cluster_kwargs(self) -> dict[str, Any]:
        kwargs = self.connection_kwargs()
        kwargs["max_connections"] = self.max_connections
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs


class ElastiCacheClient(Protocol):
    """The one boto3 `elasticache` client method used here (so tests can pass a stub)."""

    def describe_replication_groups(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ResolvedGroup:
    """What `DescribeReplicationGroups` says about how to connect to a group.

    `tls`: in-transit encryption is on (`TransitEncryptionMode` `required`, or `preferred`, where TLS
    is taken too). `auth_token`: clients must send the group's AUTH token. `user_groups`: RBAC, so
    clients log in as one of the group's users (or as its `default` user, if that one needs none).
    """

    primary: Endpoint | None
    reader: Endpoint | None
    configuration: Endpoint | None
    cluster: bool
    tls: bool
    auth_token: bool = False
    user_groups: tuple[str, ...] = ()


def _endpoint(raw: Mapping[str, Any] | None) -> Endpoint | None:
    if not raw or not raw.get("Address"):
        return None
    return Endpoint(str(raw["Address"]), int(raw.get("Port", 6379)))


def resolve_replication_group(client: ElastiCacheClient, group_id: str) -> ResolvedGroup:
    """Ask the ElastiCache API for a group's endpoints (sync: boto3 is sync)."""
    response = client.describe_replication_groups(ReplicationGroupId=group_id)
    groups = response.get("ReplicationGroups") or []
    if not groups:
        raise LookupError(f"replication group {group_id!r} not found")
    group = groups[0]
    configuration = _endpoint(group.get("ConfigurationEndpoint"))
    node_groups = group.get("NodeGroups") or []
    first = node_groups[0] if node_groups else {}
    cluster = configuration is not None or group.get("ClusterEnabled") is True
    primary = _endpoint(first.get("PrimaryEndpoint"))
    if not cluster and primary is None:
        raise LookupError(f"replication group {group_id!r} has no primary endpoint yet")
    return ResolvedGroup(
        primary=primary,
        reader=_endpoint(first.get("ReaderEndpoint")),
        configuration=configuration,
        cluster=cluster,
        tls=group.get("TransitEncryptionEnabled") is True,
        auth_token=group.get("AuthTokenEnabled") is True,
        user_groups=tuple(group.get("UserGroupIds") or ()),
    )


def secured(
    group: ResolvedGroup,
    options: ConnectionOptions | None,
    *,
    username: str | None,
    password: str | None,
    ssl_ca_certs: str | None,
) -> ConnectionOptions:
    """`options` (or the defaults) with what the group asks for: TLS when it has in-transit
    encryption, and the secret the caller gives (an AUTH token, or a user's password with
    `username`). A group with an AUTH token and no secret given is refused here, before any
    connection is tried."""
    base = options if options is not None else ConnectionOptions()
    if group.auth_token and password is None and base.password is None:
        raise ValueError("this replication group requires its AUTH token: pass password=<token>")
    if username is not None and password is None and base.password is None:
        raise ValueError(f"user {username!r}: pass its password too")
    return replace(
        base,
        ssl=base.ssl or group.tls,
        ssl_ca_certs=ssl_ca_certs if ssl_ca_certs is not None else base.ssl_ca_certs,
        username=username if username is not None else base.username,
        password=password if password is not None else base.password,
    )


class CacheConnection:
    """A writer client and a reader client (the same one unless read-from-replica is on).

    Use `async with` or `await aclose()` to release the connection pools. `sync_writer()` builds a
    blocking redis-py client with the same settings, for sync frameworks such as Flask.
    """

    def __init__(
        self,
        writer: RedisClient,
        reader: RedisClient | None = None,
        *,
        cluster: bool | None = None,
        primary: Endpoint | None = None,
        options: ConnectionOptions | None = None,
    ) -> None:
        self.writer: RedisClient = writer
        self.reader: RedisClient = reader if reader is not None else writer
        self.cluster = isinstance(writer, RedisCluster) if cluster is None else cluster
        self.primary = primary
        self.options = options if options is not None else ConnectionOptions()

    @classmethod
    def from_endpoints(
        cls,
        primary: str | Endpoint,
        reader: str | Endpoint | None = None,
        *,
        read_from_replica: bool = False,
        cluster: bool = False,
        options: ConnectionOptions | None = None,
    ) -> CacheConnection:
        """Clients for a primary (or, with `cluster=True`, a configuration) endpoint.

        Reads go to `reader` only when `read_from_replica` is set; in cluster mode that flag makes
        the cluster client route reads round-robin over each shard's replicas.
        """
        options = options if options is not None else ConnectionOptions()
        main = Endpoint.parse(primary)
        if cluster:
            strategy = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS if read_from_replica else None
            rc = RedisCluster(
                host=main.host,
                port=main.port,
                retry=options.retry.build(),
                load_balancing_strategy=strategy,
                **options.cluster_kwargs(),
            )
            return cls(rc, cluster=True, primary=main, options=options)
        writer = options.async_client(main)
        replica = options.async_client(Endpoint.parse(reader)) if read_from_replica and reader is not None else None
        return cls(writer, replica, cluster=False, primary=main, options=options)

    @classmethod
    async def from_replication_group(
        cls,
        group_id: str,
        *,
        elasticache: ElastiCacheClient,
        read_from_replica: bool = False,
        options: ConnectionOptions | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl_ca_certs: str | None = None,
    ) -> CacheConnection:
        """Resolve a group's endpoints through the ElastiCache API, then connect to them.

        Cluster-mode groups connect to their configuration endpoint. TLS is turned on when the group
        has in-transit encryption (`ssl_ca_certs`: the CA that signed its certificates, such as a
        cachefleet installation's `ca.pem`). `password` is the AUTH token of a group that has one,
        or, with `username`, the password of one of the users of the group's user group (RBAC).
        """
        group = await asyncio.to_thread(resolve_replication_group, elasticache, group_id)
        options = secured(group, options, username=username, password=password, ssl_ca_certs=ssl_ca_certs)
        if group.cluster:
            main = group.configuration or group.primary
            if main is None:
                raise LookupError(f"replication group {group_id!r} has no configuration endpoint yet")
            return cls.from_endpoints(main, cluster=True, read_from_replica=read_from_replica, options=options)
        assert group.primary is not None  # resolve_replication_group guarantees it
        return cls.from_endpoints(group.primary, group.reader, read_from_replica=read_from_replica, options=options)

    def sync_writer(self) -> redis.Redis | redis.cluster.RedisCluster:
        """A blocking client on the primary with the same options (for WSGI apps)."""
        if self.primary is None:
            raise RuntimeError("sync_writer() needs a connection built from endpoints or a group id")
        if self.cluster:
            return redis.cluster.RedisCluster(
                host=self.primary.host,
                port=self.primary.port,
                retry=self.options.retry.build_sync(),
                **self.options.cluster_kwargs(),
            )
        return self.options.sync_client(self.primary)

    async def aclose(self) -> None:
        if self.reader is not self.writer:
            await self.reader.aclose()
        await self.writer.aclose()

    async def __aenter__(self) -> CacheConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
