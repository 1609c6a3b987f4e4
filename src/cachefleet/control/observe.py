"""Looking at reality again on every pass: which nodes run, on which port, in which role.

Two seams feed it: the ``Host`` (ports, PIDs, files of the node directories) and ``Probes`` (what
a running engine says about itself). ``EngineProbes`` asks the real engines; unit tests pass their
own, so that a whole reconcile pass runs in memory (tests/support/fakes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cachefleet.control.security import PLAIN_SLOT, TLS_INFO, CertificateInfo, Links
from cachefleet.engines import haproxy, memcached, redis, resp, sentinel
from cachefleet.hosts.base import Host
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Retry
from cachefleet.model.nodes import READER_SLOT, NodeKey, endpoint_key, member_key, sentinel_keys

# Written beside a node's config when it starts: the effective parameters it started with, so that
# a change that needs a reboot shows as pending until the node really restarts.
PARAMETERS_FILE = "parameters.json"
ENDPOINT_INPUTS = "inputs.json"  # what the running endpoint's config was rendered from
DISCOVERY_INPUTS = ENDPOINT_INPUTS  # the same, for a Memcached configuration endpoint


class Probes(Protocol):
    """What running engine processes say about themselves; None when one cannot be reached."""

    async def redis(self, address: str, port: int, credentials: Credentials) -> redis.RedisObservation | None: ...

    async def memcached(
        self, address: str, port: int, access: memcached.Access = memcached.PLAIN
    ) -> memcached.MemcachedObservation | None: ...

    async def sentinel(self, address: str, port: int, group_id: str) -> sentinel.SentinelView | None: ...

    async def accepting(self, address: str, port: int) -> bool:
        """Whether something accepts connections there (a configuration endpoint that has started)."""
        ...

    def endpoint(self, admin_socket: Path) -> dict[str, haproxy.ServerState] | None:
        """The primary backend's servers, by name; None while the proxy starts or reloads."""
        ...


class EngineProbes:
    """The real probes: RESP to Redis and Sentinel, the text protocol to memcached, HAProxy's admin socket.

    Redis nodes and Sentinels are reached over TLS or in plain text as ``links`` says they last
    answered (a node changes live when its group moves between TLS modes); every Sentinel asks for
    the installation's Sentinel password.
    """

    def __init__(self, links: Links, sentinel_password: str) -> None:
        self._links = links
        self._sentinel_password = sentinel_password

    async def redis(self, address: str, port: int, credentials: Credentials) -> redis.RedisObservation | None:
        user, password = credentials.user, credentials.password
        try:
            return await self._links.reach(
                address, port, lambda tls: redis.observe(address, port, user=user, password=password, tls=tls)
            )
        except (OSError, TimeoutError, resp.ProtocolError):
            return None

    async def memcached(
        self, address: str, port: int, access: memcached.Access = memcached.PLAIN
    ) -> memcached.MemcachedObservation | None:
        return await memcached.probe(address, port, access=access)

    async def sentinel(self, address: str, port: int, group_id: str) -> sentinel.SentinelView | None:
        password = self._sentinel_password
        try:
            return await self._links.reach(
                address, port, lambda tls: sentinel.master_view(address, port, group_id, password=password, tls=tls)
            )
        except (OSError, TimeoutError, resp.ProtocolError):
            return None

    async def accepting(self, address: str, port: int) -> bool:
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(address, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def endpoint(self, admin_socket: Path) -> dict[str, haproxy.ServerState] | None:
        try:
            return haproxy.server_states(admin_socket, haproxy.PRIMARY_BACKEND)
        except (OSError, Retry):
            return None  # starting up, or reloading: the next pass looks again


@dataclass(frozen=True)
class Observer:
    """What a pass needs to look: the host, the probes, the address nodes bind to, the admin user,
    and the installation's CA (to reach Memcached nodes with in-transit encryption; None on a server without)."""

    host: Host
    probes: Probes
    address: str
    credentials: Credentials
    ca_file: Path | None = None


@dataclass(frozen=True)
class NodeObservation:
    port: int | None
    pid: int | None
    redis: redis.RedisObservation | None = None
    memcached: memcached.MemcachedObservation | None = None
    # The parameters the running process started with; None when it started without the file.
    started_with: Mapping[str, str] | None = None
    port_taken: bool = False  # down, and a process that is not the node holds its port
    plain_port: int | None = None  # its plain-text port in TLS ``preferred`` mode (``PLAIN_SLOT``)
    certificate: CertificateInfo | None = None  # its TLS info file (``control.security``), if any

    @property
    def serving(self) -> bool:
        if self.pid is None:
            return False
        if self.redis is not None:
            return not self.redis.loading
        return self.memcached is not None


async def observe_node(
    observer: Observer, key: NodeKey, *, engine: str, access: memcached.Access = memcached.PLAIN
) -> NodeObservation:
    # Inline, not in a worker thread: a few tiny file reads and /proc lookups take microseconds, less
    # than the hop to a thread and back, and this runs for every node on every pass.
    port, pid, taken, parameters_text = _node_files(observer.host, key)
    plain = observer.host.port_of(key, PLAIN_SLOT)
    if port is None or pid is None:
        return NodeObservation(port=port, pid=pid, port_taken=taken, plain_port=plain)
    started_with = _parameters(parameters_text)
    probes, address = observer.probes, observer.address
    if engine == "memcached":
        observed = await probes.memcached(address, port, access)
        return NodeObservation(port, pid, memcached=observed, started_with=started_with)
    probe = await probes.redis(address, port, observer.credentials)
    certificate = CertificateInfo.from_text(observer.host.read_file(key, TLS_INFO))
    return NodeObservation(port, pid, redis=probe, started_with=started_with, plain_port=plain, certificate=certificate)


def _node_files(host: Host, key: NodeKey) -> tuple[int | None, int | None, bool, str | None]:
    """What the host's files say of a node: port, pid, whether its port is taken while it is down,
    and (running) the parameters it started with."""
    port, pid = host.port_of(key), host.pid(key)
    if port is None or pid is None:
        return port, pid, port is not None and host.port_taken(key), None
    return port, pid, False, host.read_file(key, PARAMETERS_FILE)


def _parameters(text: str | None) -> dict[str, str] | None:
    """The parameters file of a running node, or None when it has none (or an unreadable one)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


async def observe_nodes(
    observer: Observer, keys: list[NodeKey], *, engine: str, access: memcached.Access = memcached.PLAIN
) -> dict[NodeKey, NodeObservation]:
    results = await asyncio.gather(*(observe_node(observer, k, engine=engine, access=access) for k in keys))
    return dict(zip(keys, results, strict=True))


@dataclass(frozen=True)
class ConfigEndpointObservation:
    """A Memcached cluster's configuration endpoint: its port, its process, what it serves now."""

    port: int | None
    pid: int | None
    inputs: str | None = None  # DiscoveryInputs.to_json of what it was last given
    serving: bool = False  # it accepts connections


@dataclass(frozen=True)
class ClusterObservation:
    nodes: dict[NodeKey, NodeObservation]
    endpoint: ConfigEndpointObservation | None = None  # Memcached clusters only


async def observe_config_endpoint(observer: Observer, key: NodeKey) -> ConfigEndpointObservation:
    host = observer.host
    port, pid = host.port_of(key), host.pid(key)  # inline, as in observe_node
    if port is None or pid is None:
        return ConfigEndpointObservation(port, pid)
    serving = await observer.probes.accepting(observer.address, port)
    return ConfigEndpointObservation(port, pid, host.read_file(key, DISCOVERY_INPUTS), serving)


@dataclass(frozen=True)
class SentinelObservation:
    port: int | None
    pid: int | None
    view: sentinel.SentinelView | None = None
    certificate: CertificateInfo | None = None  # whether it runs with TLS, and its leaf's renewal


@dataclass(frozen=True)
class EndpointObservation:
    port: int | None
    reader_port: int | None
    pid: int | None
    inputs: str | None = None
    servers: dict[str, haproxy.ServerState] | None = None  # be_primary, by server name


@dataclass(frozen=True)
class GroupObservation:
    nodes: dict[str, NodeObservation]  # by member cluster id
    endpoint: EndpointObservation
    sentinels: dict[NodeKey, SentinelObservation] = field(default_factory=dict)


async def observe_group(observer: Observer, group_id: str, members: list[str], *, engine: str) -> GroupObservation:
    keys = [member_key(m) for m in members]
    nodes, endpoint, sentinels = await asyncio.gather(
        observe_nodes(observer, keys, engine=engine),
        asyncio.to_thread(_observe_endpoint, observer, endpoint_key(group_id)),
        asyncio.gather(*(_observe_sentinel(observer, k, group_id) for k in sentinel_keys(group_id))),
    )
    return GroupObservation(
        nodes={k.cluster_id: obs for k, obs in nodes.items()},
        endpoint=endpoint,
        sentinels=dict(zip(sentinel_keys(group_id), sentinels, strict=True)),
    )


def _observe_endpoint(observer: Observer, key: NodeKey) -> EndpointObservation:
    host = observer.host
    port, reader, pid = host.port_of(key), host.port_of(key, READER_SLOT), host.pid(key)
    if pid is None:
        return EndpointObservation(port, reader, pid)
    inputs = host.read_file(key, ENDPOINT_INPUTS)
    servers = observer.probes.endpoint(host.node_dir(key) / haproxy.ADMIN_SOCKET)
    return EndpointObservation(port, reader, pid, inputs, servers)


async def _observe_sentinel(observer: Observer, key: NodeKey, group_id: str) -> SentinelObservation:
    port, pid = observer.host.port_of(key), observer.host.pid(key)  # inline, as in observe_node
    if port is None or pid is None:
        return SentinelObservation(port, pid)
    certificate = CertificateInfo.from_text(observer.host.read_file(key, TLS_INFO))
    return SentinelObservation(port, pid, await observer.probes.sentinel(observer.address, port, group_id), certificate)
