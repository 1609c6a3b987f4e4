"""Looking at reality again on every pass: which nodes run, where, on which port, in which role.

Two seams feed it: the ``Host`` of each node's placement (ports, PIDs, files of the node directories)
and ``Probes`` (what a running engine says about itself, at its host's address). ``EngineProbes``
asks the real engines; unit tests pass their own, so that a whole reconcile pass runs in memory
(tests/support/fakes.py).

A node whose host is out of reach (``unreachable``, ``lost``, or not answering now) is observed as
``reachable=False``: nothing known, and nothing for the planners to command there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cachefleet.control.proxy import ENDPOINT_FILE, parse_entry, proxy_of
from cachefleet.control.security import PLAIN_SLOT, TLS_INFO, CertificateInfo, Links
from cachefleet.engines import haproxy, memcached, redis, resp, sentinel
from cachefleet.hosts.base import Host, Hosts
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Retry
from cachefleet.model.nodes import READER_SLOT, NodeKey, Placement, endpoint_key

Address = tuple[str, int]

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

    def endpoint(self, admin_socket: Path, group_id: str) -> EndpointServers | None:
        """The servers of the group's primary and reader backends in the proxy behind
        ``admin_socket``, by name; None while the proxy starts or reloads."""
        ...


@dataclass(frozen=True)
class EndpointServers:
    primary: dict[str, haproxy.ServerState]  # be_primary
    reader: dict[str, haproxy.ServerState]  # be_reader: up once a health check has passed


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

    def endpoint(self, admin_socket: Path, group_id: str) -> EndpointServers | None:
        try:
            return EndpointServers(*haproxy.endpoint_states(admin_socket, group_id))
        except (OSError, Retry):
            return None  # starting up, or reloading: the next pass looks again


@dataclass(frozen=True)
class Observer:
    """What a pass needs to look: the driver of each host, the probes, the admin user, the
    installation's CA (to reach Memcached nodes with in-transit encryption; None on a server without),
    where the failover follower (``control.follow``) has moved a group's endpoint, if it follows
    the group, and which endpoint changes the proxy has still to apply (``EndpointProxy.pending``)."""

    hosts: Hosts
    probes: Probes
    credentials: Credentials
    ca_file: Path | None = None
    followed: Callable[[str], Address | None] = field(default=lambda _group_id: None)
    # The node set of an endpoint change the proxy has queued for a group and not served yet.
    endpoint_pending: Callable[[str], str | None] = field(default=lambda _group_id: None)


@dataclass(frozen=True)
class NodeObservation:
    port: int | None
    pid: int | None
    redis: redis.RedisObservation | None = None
    memcached: memcached.MemcachedObservation | None = None
    # The parameters the running process started with; None when it started without the file.
    started_with: Mapping[str, str] | None = None
    port_taken: bool = False  # down, and a process that is not the node holds its port
    reachable: bool = True  # False: its host is out of reach; nothing is known of it
    plain_port: int | None = None  # its plain-text port in TLS ``preferred`` mode (``PLAIN_SLOT``)
    certificate: CertificateInfo | None = None  # its TLS info file (``control.security``), if any

    @property
    def serving(self) -> bool:
        if self.pid is None:
            return False
        if self.redis is not None:
            return not self.redis.loading
        return self.memcached is not None


UNREACHABLE = NodeObservation(port=None, pid=None, reachable=False)
UNPLACED = NodeObservation(port=None, pid=None)


async def observe_node(
    observer: Observer,
    key: NodeKey,
    at: Placement | None,
    *,
    engine: str,
    reachable: bool = True,
    access: memcached.Access = memcached.PLAIN,
) -> NodeObservation:
    """The node ``key`` where ``at`` places it (``UNPLACED`` when it is placed nowhere yet)."""
    if at is None:
        return UNPLACED
    if not reachable:
        return UNREACHABLE
    try:
        host = observer.hosts.get(at.host)
        port, pid, taken, parameters_text = await _node_files(host, key)
        plain = await host.port_of(key, PLAIN_SLOT)
    except Retry:
        return UNREACHABLE
    if port is None or pid is None:
        return NodeObservation(port=port, pid=pid, port_taken=taken, plain_port=plain)
    started_with = _parameters(parameters_text)
    probes = observer.probes
    if engine == "memcached":
        observed = await probes.memcached(at.address, port, access)
        return NodeObservation(port, pid, memcached=observed, started_with=started_with)
    probe = await probes.redis(at.address, port, observer.credentials)
    try:
        certificate = CertificateInfo.from_text(await host.read_file(key, TLS_INFO))
    except Retry:
        return UNREACHABLE
    return NodeObservation(port, pid, redis=probe, started_with=started_with, plain_port=plain, certificate=certificate)


async def _node_files(host: Host, key: NodeKey) -> tuple[int | None, int | None, bool, str | None]:
    """What the host's files say of a node: port, pid, whether its port is taken while it is down,
    and (running) the parameters it started with."""
    port, pid = await host.port_of(key), await host.pid(key)
    if port is None or pid is None:
        return port, pid, port is not None and await host.port_taken(key), None
    return port, pid, False, await host.read_file(key, PARAMETERS_FILE)


def _parameters(text: str | None) -> dict[str, str] | None:
    """The parameters file of a running node, or None when it has none (or an unreadable one)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


Where = tuple[NodeKey, Placement | None, bool]  # a node, where it is placed, whether its host is in reach


async def observe_nodes(
    observer: Observer, nodes: list[Where], *, engine: str, access: memcached.Access = memcached.PLAIN
) -> list[NodeObservation]:
    return list(
        await asyncio.gather(
            *(observe_node(observer, k, at, engine=engine, reachable=r, access=access) for k, at, r in nodes)
        )
    )


@dataclass(frozen=True)
class ConfigEndpointObservation:
    """A Memcached cluster's configuration endpoint: its port, its process, what it serves now."""

    port: int | None
    pid: int | None
    inputs: str | None = None  # DiscoveryInputs.to_json of what it was last given
    serving: bool = False  # it accepts connections


@dataclass(frozen=True)
class ClusterObservation:
    nodes: dict[NodeKey, NodeObservation]  # where each node runs
    # Nodes moving off a drained host: their second process, where they are going.
    targets: dict[NodeKey, NodeObservation] = field(default_factory=dict)
    endpoint: ConfigEndpointObservation | None = None  # Memcached clusters only


async def observe_config_endpoint(observer: Observer, key: NodeKey, at: Placement) -> ConfigEndpointObservation:
    """The configuration endpoint where ``at`` places it (the embedded host: ``HostMap.endpoint``)."""
    host = observer.hosts.get(at.host)
    port, pid = await host.port_of(key), await host.pid(key)
    if port is None or pid is None:
        return ConfigEndpointObservation(port, pid)
    serving = await observer.probes.accepting(at.address, port)
    return ConfigEndpointObservation(port, pid, await host.read_file(key, DISCOVERY_INPUTS), serving)


@dataclass(frozen=True)
class SentinelObservation:
    port: int | None
    pid: int | None
    view: sentinel.SentinelView | None = None
    reachable: bool = True
    certificate: CertificateInfo | None = None  # whether it runs with TLS, and its leaf's renewal


@dataclass(frozen=True)
class EndpointObservation:
    port: int | None
    reader_port: int | None
    pid: int | None
    inputs: str | None = None
    servers: dict[str, haproxy.ServerState] | None = None  # be_primary, by server name
    reader_servers: dict[str, haproxy.ServerState] | None = None  # be_reader, by server name
    pending: str | None = None  # the node set of a change queued for the proxy, not served yet


@dataclass(frozen=True)
class GroupObservation:
    nodes: dict[str, NodeObservation]  # by member cluster id, where the member runs
    endpoint: EndpointObservation
    sentinels: dict[NodeKey, SentinelObservation] = field(default_factory=dict)
    # Members moving off a drained host: their second process, where they are going.
    targets: dict[str, NodeObservation] = field(default_factory=dict)
    # The primary the failover follower has moved the endpoint to (None: it does not follow the group).
    followed: Address | None = None


async def observe_group(
    observer: Observer,
    group_id: str,
    members: list[Where],
    *,
    targets: list[Where],
    sentinels: list[Where],
    endpoint: Placement,
    engine: str,
) -> GroupObservation:
    """The members where they run (and, moving, where they go), the endpoint, the Sentinels."""
    nodes, moving, endpoint_seen, watching = await asyncio.gather(
        observe_nodes(observer, members, engine=engine),
        observe_nodes(observer, targets, engine=engine),
        _observe_endpoint(observer, group_id, endpoint),
        asyncio.gather(*(_observe_sentinel(observer, where, group_id) for where in sentinels)),
    )
    return GroupObservation(
        nodes={k.cluster_id: obs for (k, _, _), obs in zip(members, nodes, strict=True)},
        endpoint=endpoint_seen,
        sentinels={k: obs for (k, _, _), obs in zip(sentinels, watching, strict=True)},
        targets={k.cluster_id: obs for (k, _, _), obs in zip(targets, moving, strict=True)},
        followed=observer.followed(group_id),
    )


async def _observe_endpoint(observer: Observer, group_id: str, at: Placement) -> EndpointObservation:
    """The group's ports, and how its endpoint proxy serves it: ``pid`` is the proxy's while it
    serves the group (its contribution is there, ``control.proxy``); its backends only are read."""
    host = observer.hosts.get(at.host)
    key = endpoint_key(group_id)
    port, reader = await host.port_of(key), await host.port_of(key, READER_SLOT)
    pending = observer.endpoint_pending(group_id)
    inputs = parse_entry(await host.read_file(key, ENDPOINT_FILE))
    if inputs is None:
        return EndpointObservation(port, reader, None, pending=pending)
    proxy = await proxy_of(host, group_id)
    pid = await host.pid(proxy)
    if pid is None:
        return EndpointObservation(port, reader, None, pending=pending)
    # The admin socket is a local file: the proxy runs on the embedded host (HostMap.endpoint).
    admin_socket = await host.node_dir(proxy) / haproxy.ADMIN_SOCKET
    servers = await asyncio.to_thread(observer.probes.endpoint, admin_socket, group_id)
    if servers is None:
        return EndpointObservation(port, reader, pid, inputs.to_json(), pending=pending)
    return EndpointObservation(port, reader, pid, inputs.to_json(), servers.primary, servers.reader, pending)


async def _observe_sentinel(observer: Observer, where: Where, group_id: str) -> SentinelObservation:
    key, at, reachable = where
    if at is None:
        return SentinelObservation(None, None)
    if not reachable:
        return SentinelObservation(None, None, reachable=False)
    try:
        host = observer.hosts.get(at.host)
        port, pid = await host.port_of(key), await host.pid(key)
    except Retry:
        return SentinelObservation(None, None, reachable=False)
    if port is None or pid is None:
        return SentinelObservation(port, pid)
    try:
        certificate = CertificateInfo.from_text(await host.read_file(key, TLS_INFO))
    except Retry:
        return SentinelObservation(None, None, reachable=False)
    view = await observer.probes.sentinel(at.address, port, group_id)
    return SentinelObservation(port, pid, view, certificate=certificate)
