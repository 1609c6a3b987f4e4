"""Giving a plan effect: every step here is safe to repeat, so a crash mid-plan heals on the next pass.

Each step goes through the driver of the host its action names (``at``): configs are rendered with
that host's address and paths, files are written and processes started there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cachefleet.control import security
from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    AnnounceSentinels,
    ConfigSet,
    DeleteRecord,
    DetachMember,
    DiscoveryInputs,
    JoinSentinel,
    LeaveSentinel,
    LiveParameters,
    ReloadConfigEndpoint,
    ReloadEndpoint,
    RemoveNode,
    RenewCertificate,
    ReplicaOf,
    ResetSentinel,
    ResourceKey,
    RestartNode,
    RestartSentinel,
    SentinelFailover,
    SetEndpointPrimary,
    SetTransport,
    StartConfigEndpoint,
    StartEndpoint,
    StartNode,
    StartSentinel,
    StartSharedSentinel,
    Switchover,
    SyncAcl,
    TuneSentinel,
)
from cachefleet.control.memcached_processes import Secrets, access, endpoint_process, node_process
from cachefleet.control.observe import PARAMETERS_FILE
from cachefleet.control.proxy import EndpointProxy
from cachefleet.control.security import Keys, Links
from cachefleet.engines import acl, config_endpoint, haproxy, memcached, redis, sentinel
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.hosts.base import Host, Hosts, PortRequest, ProcessSpec, RestartPolicy
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, InsufficientCacheClusterCapacity, Retry
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    NodeKey,
    Placement,
    endpoint_group,
    member_key,
    sentinel_keys,
)
from cachefleet.model.security import Security
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.transit import TransitMode
from cachefleet.store.hosts import recorded_ports
from cachefleet.store.keys import Sealer
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.records import effective_parameters
from cachefleet.store.sqlite import Store
from cachefleet.tls import certs
from cachefleet.tls.certs import Role

log = logging.getLogger(__name__)

REDIS_CONF = "redis.conf"
SENTINEL_CONF = "sentinel.conf"
RECONFIG_SCRIPT = "reconfig"


@dataclass(frozen=True)
class Tools:
    """Binaries besides the engines: Sentinel, the endpoint proxy, and the interpreter of scripts."""

    sentinel: str
    haproxy: str
    python: str


Seed = Callable[[NodeKey, Host], Awaitable[None]]
Start = StartNode | StartSentinel | StartConfigEndpoint


@dataclass(frozen=True)
class Executor:
    store: Store
    hosts: Hosts
    engines: Sequence[EngineBinary]
    credentials: Credentials
    tools: Tools
    keys: Keys  # the internal users, the Sentinels' password, the CA (``control.security``)
    links: Links  # how each node and Sentinel answers now: TLS or plain text
    clock: Callable[[], datetime]  # when certificates are issued
    down_after_ms: int = 1000
    # Puts a restoring node's RDB in place before its first start (``SnapshotWorker.seed``).
    seed: Seed | None = None
    # Opens a Memcached cluster's sealed AuthToken for its nodes' files (``store.keys.Sealer``).
    sealer: Sealer | None = None
    # The host's endpoint proxy, serving every group's endpoints; made from the fields above when None.
    proxy: EndpointProxy | None = None
    # When given, a group's endpoint change does not hold its pass: the proxy applies it in the
    # background (with other groups' changes that come meanwhile, in one reload) and the group is
    # woken once it is served (``EndpointProxy.serve_soon``). At 200 groups a reload took 0.2-0.3 s,
    # and a new group joined its Sentinels only after it; the two now go on at once.
    wake: Callable[[ResourceKey], None] | None = None

    def __post_init__(self) -> None:
        if self.proxy is None:
            # Health checks log in as the check user (PING, INFO), never as the admin.
            proxy = EndpointProxy(self.hosts, self.tools.haproxy, self.keys.internal.check, self.keys.ca_file)
            object.__setattr__(self, "proxy", proxy)

    def endpoint_pending(self, group_id: str) -> str | None:
        """The node set of an endpoint change queued for the group and not yet served."""
        return self._proxy.pending(group_id)

    @property
    def _proxy(self) -> EndpointProxy:
        assert self.proxy is not None  # __post_init__
        return self.proxy

    async def run(self, actions: Sequence[Action]) -> None:
        # Ports are chosen one host at a time, in one call (two concurrent choices could pick the same port).
        allocations: dict[str, list[PortRequest]] = {}
        for action in actions:
            if isinstance(action, AllocatePort):
                allocations.setdefault(action.at.host, []).append(PortRequest(action.node, action.slot, action.port))
        chosen: set[int] = set()
        for host_id, requests in allocations.items():
            chosen |= set(await self._allocate(host_id, requests, chosen))
        starts = [a for a in actions if isinstance(a, Start)]
        # A replica started before its primary listens waits a whole second before it tries again.
        followers = [a for a in starts if isinstance(a, StartNode) and a.replicaof is not None]
        await self._start([a for a in starts if a not in followers])
        await asyncio.gather(*(_accepting(a.replicaof) for a in followers if a.replicaof is not None))
        await self._start(followers)
        for group_id in dict.fromkeys(a.group_id for a in starts if isinstance(a, StartSentinel)):
            await self._supervise(group_id)
        # A group joins each of its Sentinels at once: a join waits for two rewrites of that
        # Sentinel's config file (fsync'd; it grows with the groups the Sentinel's set watches), and each
        # Sentinel starts finding the group's replicas as soon as it monitors the primary. The rest runs
        # in order.
        joins = [a for a in actions if isinstance(a, JoinSentinel)]
        for action in actions:
            if action is (joins[0] if joins else None):
                await asyncio.gather(*(self._one(join) for join in joins))
            elif not isinstance(action, AllocatePort | Start | JoinSentinel):
                await self._one(action)

    async def _start(self, starts: Sequence[Start]) -> None:
        """Render every process first, then spawn them one after another.

        Spawned together, three redis-servers took longer to start than one after another. Nodes go
        first, and the first failure stops the others: the endpoint of a primary that could not start
        (a refused restore) has nothing to route to.
        """
        if not starts:
            return
        ordered = sorted(starts, key=lambda a: not isinstance(a, StartNode))
        rendered = [(a, await self._spec(a)) for a in ordered]
        for start, process in rendered:
            host = self.hosts.get(start.at.host)
            if isinstance(start, StartNode):
                if self.seed is not None:
                    await self.seed(start.node, host)  # a restore's RDB, which the line below then leaves alone
                if start.replication_id is not None and REDIS_CONF in process.files:
                    # An empty dataset stamped with the group's replication id, unless the node has data.
                    seed = redis.seed_rdb(start.replication_id)
                    await host.write_new(start.node, redis.RDB_FILE, seed, unless=redis.AOF_DIR)
            await host.start(start.node, process)

    async def _spec(self, start: Start) -> ProcessSpec:
        match start:
            case StartNode(node, at, replicaof):
                return await self._process(node, at, replicaof)
            case StartSentinel(node, at, group_id, primary):
                return await self._sentinel(node, at, group_id, primary)
            case StartConfigEndpoint(node, at, cluster_id, inputs):
                return await self._config_endpoint(node, at, cluster_id, inputs)

    async def _one(self, action: Action) -> None:
        user, password = self.credentials.user, self.credentials.password
        match action:
            case AllocatePort(node, at, slot, port):
                await self._allocate(at.host, [PortRequest(node, slot, port)])
            case StartNode() | StartSentinel() | StartConfigEndpoint():
                await self._start([action])
            case StartEndpoint(node, at, inputs) | ReloadEndpoint(node, at, inputs):
                # A group gaining or changing its endpoint: the host's proxy reloads (or starts).
                if (wake := self.wake) is None:
                    await self._proxy.serve(at, _group_of(node), inputs)
                else:
                    self._proxy.serve_soon(at, _group_of(node), inputs, lambda group_id: wake((GROUPS.name, group_id)))
            case ReloadConfigEndpoint(node, at, cluster_id, inputs):
                process = await self._config_endpoint(node, at, cluster_id, inputs)
                await self.hosts.get(at.host).reload(node, process, config_endpoint.RELOAD_SIGNAL)
            case LiveParameters(node, at, commands):
                await self._live(node, at, commands)
            case RestartNode(node, at, replicaof):
                await self._restart(node, at, replicaof)
            case ConfigSet(node, at, values):
                port = await self.hosts.get(at.host).port_of(node)
                if port is None:
                    return
                try:
                    await redis.config_set(
                        at.address, port, user=user, password=password, values=values, tls=self._tls(at.address, port)
                    )
                except Retry as exc:
                    # Best effort: the next pass observes the node again and tries once more; a
                    # failure here must not keep the rest of the plan (failover steps) from running.
                    log.warning("%s/%s: %s", node.cluster_id, node.node_id, exc.reason)
            case ReplicaOf(node, at, primary):
                port = await self.hosts.get(at.host).port_of(node)
                if port is not None:
                    await redis.set_replicaof(
                        at.address, port, user=user, password=password, primary=primary, tls=self._tls(at.address, port)
                    )
            case Switchover(old, new):
                await redis.switchover(old, new, user=user, password=password, tls=self.links.tls_for(*old))
            case SetEndpointPrimary(node, at, server):
                # The admin socket is a file on the embedded host, where endpoints run (HostMap.endpoint).
                group_id = _group_of(node)
                admin_socket = await self._proxy.admin_socket(at, group_id)
                backends = haproxy.group_primary_backends(group_id, self._group_security(node).transit.mode)
                # Old workers' sessions too: they hold clients from before the proxy's last reload.
                master = admin_socket.parent / haproxy.MASTER_SOCKET
                await asyncio.to_thread(haproxy.set_primary, admin_socket, server, backends, master)
            case SentinelFailover(node, at, group_id, primary):
                port = await self.hosts.get(at.host).port_of(node)
                if port is not None:
                    node_tls = self.links.tls_for(*primary)
                    await redis.pause_and_drain(primary, user=user, password=password, tls=node_tls)
                    try:
                        await sentinel.failover(
                            at.address,
                            port,
                            group_id,
                            password=self.keys.sentinel_password,
                            tls=self._tls(at.address, port),
                        )
                    except Retry:
                        await redis.unpause(primary, user=user, password=password, tls=node_tls)
                        raise
            case RestartSentinel(node, at, group_id, primary):
                spec = await self._sentinel(node, at, group_id, primary)  # rendered first: a bad spec must not stop it
                host = self.hosts.get(at.host)
                await host.stop(node)
                await host.start(node, spec)
                port = await host.port_of(node)
                if port is not None:
                    self.links.record(at.address, port, tls=self._group_security(node).tls)
            case StartSharedSentinel(node, at):
                await self._shared_sentinel(node, at)
            case JoinSentinel(node, at, group_id, primary) | ResetSentinel(node, at, group_id, primary):
                port = await self.hosts.get(at.host).port_of(node)
                if port is not None:
                    monitor = sentinel.Monitor(
                        master_name=group_id,
                        primary=primary,
                        quorum=2,
                        admin_user=self.keys.internal.sentinel.user,
                        admin_password=self.keys.internal.sentinel.password,
                        down_after_ms=self.down_after_ms,
                        reconfig_script=await self._shared_script(node, at),
                    )
                    password, tls = self.keys.sentinel_password, self._tls(at.address, port)
                    again = isinstance(action, ResetSentinel)
                    await sentinel.join(at.address, port, monitor, password=password, tls=tls, again=again)
            case LeaveSentinel(node, at, group_id):
                port = await self.hosts.get(at.host).port_of(node)
                if port is not None:
                    password, tls = self.keys.sentinel_password, self._tls(at.address, port)
                    await sentinel.leave(at.address, port, group_id, password=password, tls=tls)
            case AnnounceSentinels(group_id, primary, sentinels):
                hellos = [sentinel.hello_message(sentinel.Hello(*s), group_id, primary) for s in sentinels]
                await redis.publish(
                    *primary,
                    user=user,
                    password=password,
                    channel=sentinel.HELLO_CHANNEL,
                    messages=hellos,
                    tls=self.links.tls_for(*primary),
                )
            case TuneSentinel(node, at, timings):
                port = await self.hosts.get(at.host).port_of(node)
                if port is not None:
                    tls = self._tls(at.address, port)
                    password = self.keys.sentinel_password
                    await sentinel.set_timings(at.address, port, timings, password=password, tls=tls)
            case SyncAcl(node, at, users, present):
                await self._sync_acl(node, at, users, present)
            case SetTransport(node, at, current):
                await self._set_transport(node, at, dict(current))
            case RenewCertificate(node, at):
                await self._renew_certificate(node, at)
            case RemoveNode(node, at):
                if (served := endpoint_group(node)) is not None:
                    await self._proxy.withdraw(at, served)
                await self.hosts.get(at.host).remove(node)
            case DetachMember(cluster_id):
                cluster = CLUSTERS.get(self.store, cluster_id)
                # It keeps the TLS and users it ran with its group, now as its own.
                kept = security.security_of(self.store, cluster.spec)
                detached = replace(cluster.spec, replication_group_id=None, security=kept)
                CLUSTERS.put_spec(self.store, cluster_id, detached)
            case DeleteRecord(kind, resource_id):
                self.store.delete(kind, resource_id)

    async def _supervise(self, group_id: str) -> None:
        """Hand the agents of the group's running members the Sentinels they ask before restarting a
        node (``RestartPolicy``): a member started before its Sentinels ran, or whose Sentinels moved,
        has an older list. A start of a running node only updates what its agent supervises."""
        group = GROUPS.find(self.store, group_id)
        if group is None:
            return
        for member in group.spec.members:
            cluster = CLUSTERS.find(self.store, member)
            node = cluster.status.node(MEMBER_NODE_ID) if cluster is not None else None
            if node is None or node.placement is None or node.placement.host == LOCAL_HOST:
                continue  # the embedded host leaves restarts to the reconciler
            key = member_key(member)
            try:
                host = self.hosts.get(node.placement.host)
                if await host.pid(key) is not None:
                    await host.start(key, await self._process(key, node.placement, None))
            except Retry as exc:
                log.info("%s: supervision not updated: %s", key, exc.reason)

    async def _restart_policy(self, node: NodeKey, at: Placement, spec: CacheClusterSpec) -> RestartPolicy | None:
        """What an agent asks before restarting a member of a group that Sentinels watch: the
        Sentinels it can find now (their hosts and ports)."""
        group_id = spec.replication_group_id
        group = GROUPS.find(self.store, group_id) if group_id else None
        if group is None or not group.spec.automatic_failover or at.host == LOCAL_HOST:
            return None
        sentinels: list[Address] = []
        for key in sentinel_keys(group.spec.id):
            placed = group.status.sentinels.get(key.node_id)
            if placed is None:
                continue
            try:
                port = await self.hosts.get(placed.host).port_of(key)
            except Retry:
                continue
            if port is not None:
                sentinels.append((placed.address, port))
        return RestartPolicy(
            group.spec.id,
            tuple(sentinels),
            at.address,
            down_after_ms=self.down_after_ms,
            password=self.keys.sentinel_password,
            tls=group.spec.security.tls,  # TLS Sentinels speak nothing else
        )

    async def _live(self, node: NodeKey, at: Placement, commands: Sequence[str]) -> None:
        """Best effort, as ConfigSet: the next pass compares the node's settings again."""
        port = await self.hosts.get(at.host).port_of(node)
        if port is None:
            return
        spec = CLUSTERS.get(self.store, node.cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        reach = access(spec, values, self.credentials, self.keys.ca_file)
        if not await memcached.apply_live(at.address, port, commands, reach):
            log.warning("%s: live parameters not applied yet (%s)", node, ", ".join(commands))

    async def _restart(self, node: NodeKey, at: Placement, replicaof: Address | None) -> None:
        """Stop the node keeping its data, then start it on a config rendered afresh."""
        host = self.hosts.get(at.host)
        process = await self._process(node, at, replicaof)  # rendered first: a bad spec must not stop the node
        port = await host.port_of(node)
        running = await host.pid(node)
        if running is not None and port is not None and REDIS_CONF in process.files:
            # SHUTDOWN SAVE writes the RDB even with save "" (an AOF, when on, is fsynced too).
            await redis.shutdown_save(
                at.address,
                port,
                user=self.credentials.user,
                password=self.credentials.password,
                tls=self._tls(at.address, port),
            )
        await host.stop(node)
        await host.start(node, process)

    # -- security (docs/security.md) -------------------------------------------------------------

    def _tls(self, address: str, port: int) -> redis.ClientTls | None:
        """How a node or Sentinel of ours at ``address:port`` answers now (``Links``)."""
        return self.links.tls_for(address, port)

    def _node_security(self, node: NodeKey) -> Security:
        return security.security_of(self.store, CLUSTERS.get(self.store, node.cluster_id).spec)

    def _group_security(self, node: NodeKey) -> Security:
        """The security of the group a Sentinel or endpoint (``rg.<id>/...``) serves."""
        group = GROUPS.find(self.store, node.cluster_id.removeprefix("rg."))
        return group.spec.security if group is not None else Security()

    def _identity(self, node: NodeKey, at: Placement, role: Role) -> certs.Identity:
        """What a leaf names: the process's own address and, for a node, its group's endpoint's
        (on the embedded host, ``HostMap.endpoint``), as ``planners.security`` checks it."""
        if role is Role.NODE:
            endpoint = self.hosts.get(LOCAL_HOST).address
            return security.identity(node, at.address, role, endpoints=(endpoint,))
        return security.identity(node, at.address, role)

    def _ca(self, at: Placement, node_dir: Path) -> tuple[Path, dict[str, str]]:
        """Where a TLS process finds the installation's CA, and the node file that puts it there: the
        control plane's own file on its machine, a copy in the node directory on any other host."""
        if at.host == LOCAL_HOST:
            return self.keys.ca_file, {}
        return node_dir / security.CA_FILE, {security.CA_FILE: self.keys.authority.certificate_pem().decode()}

    async def _leaf(self, node: NodeKey, at: Placement, role: Role) -> dict[str, str]:
        """The leaf files a TLS process starts with: none while its current leaf is good."""
        info = await self.hosts.get(at.host).read_file(node, security.TLS_INFO)
        return security.current_or_new_leaf(self.keys, self._identity(node, at, role), info, self.clock())

    async def _sync_acl(
        self, node: NodeKey, at: Placement, users: Sequence[acl.AclUser], present: Sequence[str]
    ) -> None:
        """The users first, then the marker that says the node has them: a failure in between leaves
        the old marker, and the next pass sends them all again."""
        port = await self.hosts.get(at.host).port_of(node)
        if port is None:
            return
        user, password, tls = self.credentials.user, self.credentials.password, self._tls(at.address, port)
        commands = acl.sync_commands(users, present)
        await redis.apply_acl(at.address, port, user=user, password=password, commands=commands, tls=tls)
        marker = acl.marker_commands(acl.marker(users), present)
        await redis.apply_acl(at.address, port, user=user, password=password, commands=marker, tls=tls)

    async def _set_transport(self, node: NodeKey, at: Placement, current: dict[str, str]) -> None:
        """Move a running node to its group's TLS mode with one live CONFIG SET: its leaf is written
        first when it goes to TLS."""
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        if port is None:
            return
        wanted = self._node_security(node)
        ca_file, ca = self._ca(at, await host.node_dir(node))
        node_tls = security.node_tls(wanted, port, await host.node_dir(node), self.keys, ca_file)
        plain = await self._plain_port(node, at, wanted, port)
        if node_tls is not None:
            for name, text in {**ca, **(await self._leaf(node, at, Role.NODE))}.items():
                await host.write_file(node, name, text)
        values = redis.transport_values(plain, node_tls, current)
        user, password, tls = self.credentials.user, self.credentials.password, self._tls(at.address, port)
        await redis.config_set(at.address, port, user=user, password=password, values=values, tls=tls)
        self.links.record(at.address, port, tls=node_tls is not None)

    async def _renew_certificate(self, node: NodeKey, at: Placement) -> None:
        """A new leaf, written with one rename (key and certificate together), then read live by the node."""
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        wanted = self._node_security(node)
        if port is None or not wanted.tls:
            return
        ca_file, _ = self._ca(at, await host.node_dir(node))
        node_tls = security.node_tls(wanted, port, await host.node_dir(node), self.keys, ca_file)
        assert node_tls is not None
        files = security.leaf_files(self.keys, self._identity(node, at, Role.NODE), self.clock())
        # The PEM first: should the info file not follow, the next pass renews once more.
        await host.write_file(node, security.TLS_FILE, files[security.TLS_FILE])
        user, password, tls = self.credentials.user, self.credentials.password, self._tls(at.address, port)
        await redis.reload_tls(at.address, port, user=user, password=password, node_tls=node_tls, tls=tls)
        await host.write_file(node, security.TLS_INFO, files[security.TLS_INFO])

    async def _plain_port(self, node: NodeKey, at: Placement, wanted: Security, port: int) -> int:
        """A node's plain-text port for its group's TLS mode: its main port without TLS, none with
        ``required``, the one of ``PLAIN_SLOT`` with ``preferred``."""
        if not wanted.tls:
            return port
        if wanted.transit.mode is TransitMode.REQUIRED:
            return 0
        plain = await self.hosts.get(at.host).port_of(node, security.PLAIN_SLOT)
        if plain is None:
            raise Retry(f"node {node} has no plain-text port yet")
        return plain

    async def _allocate(self, host_id: str, requests: Sequence[PortRequest], chosen: Collection[int] = ()) -> list[int]:
        """Ports for nodes that have none on the host: the recorded one back, else a free one.

        The host skips every port it has handed out already; those the store records (on any host)
        and those ``chosen`` on other hosts in this run are skipped too, so that a node whose directory
        is lost finds its port free to take back and no two nodes share a port number. No port left in
        the range is a failure only time (or the operator) can mend: ``Fatal``, which fails a creation.
        """
        try:
            taken = recorded_ports(self.store) | set(chosen)
            return await self.hosts.get(host_id).allocate_ports(requests, taken)
        except InsufficientCacheClusterCapacity as exc:
            raise Fatal(exc.message) from exc

    async def _sentinel(self, node: NodeKey, at: Placement, group_id: str, primary: Address) -> ProcessSpec:
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        if port is None:
            raise Retry(f"sentinel {node.node_id} of {group_id} has no port yet")
        node_dir = await host.node_dir(node)
        wanted = self._group_security(node)
        files: dict[str, str] = {security.TLS_INFO: security.PLAIN.to_text()}
        tls = None
        if wanted.tls:
            ca_file, ca = self._ca(at, node_dir)
            files = {**ca, **(await self._leaf(node, at, Role.SENTINEL))}
            tls = sentinel.SentinelTls(node_dir / security.TLS_FILE, ca_file)
        # The reconfig script flips the group's endpoint through its admin socket, a file on the
        # embedded host: only a Sentinel there can reach it. Elsewhere the control plane follows
        # Sentinel's decision on its next pass (SetEndpointPrimary), until the endpoint wiring.
        scripts: dict[str, str] = {}
        reconfig = None
        if at.host == LOCAL_HOST:
            admin_socket, proxy_file = await self._proxy.script_paths(at, group_id)
            # The script flips each of the group's primary backends that the proxy has (two with TLS preferred).
            backends = haproxy.group_primary_backends(group_id, TransitMode.PREFERRED)
            master = admin_socket.parent / haproxy.MASTER_SOCKET
            scripts[RECONFIG_SCRIPT] = sentinel.reconfig_script(
                self.tools.python, admin_socket, backends, master, proxy_file
            )
            reconfig = node_dir / RECONFIG_SCRIPT
        config = sentinel.SentinelConfig(
            port=port,
            bind=at.address,
            data_dir=node_dir,
            master_name=group_id,
            primary=primary,
            quorum=2,
            # Sentinel logs in to the nodes as its own internal user, allowed only what it sends.
            admin_user=self.keys.internal.sentinel.user,
            admin_password=self.keys.internal.sentinel.password,
            my_id=sentinel.my_id(f"{group_id}/{node.node_id}"),  # as ``_peers_of`` names it
            down_after_ms=self.down_after_ms,
            reconfig_script=reconfig,
            # Nobody without it may ask a Sentinel anything, with TLS or without.
            password=self.keys.sentinel_password,
            tls=tls,
            known_replicas=await self._replicas_of(group_id, primary),
            known_sentinels=await self._peers_of(node, group_id),
        )
        return ProcessSpec(
            argv=sentinel.argv(self.tools.sentinel, node_dir / SENTINEL_CONF),
            files={SENTINEL_CONF: sentinel.render_config(config), **files},
            scripts=scripts,
        )

    async def _shared_sentinel(self, node: NodeKey, at: Placement) -> None:
        """Start a shared Sentinel unless it runs: on the file it rewrote (every group's monitor kept
        across its restart), or on a first one that watches nothing when it has none (a group's
        pass sees its master missing and joins again)."""
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        if port is None:
            raise Retry(f"shared sentinel {node.node_id} has no port yet")
        node_dir = await host.node_dir(node)
        config = sentinel.SharedSentinelConfig(
            port=port,
            bind=at.address,
            data_dir=node_dir,
            my_id=sentinel.my_id(str(node)),  # as ``planners.group`` names it in its hellos
            password=self.keys.sentinel_password,
        )
        await host.write_new(node, SENTINEL_CONF, sentinel.render_shared_config(config).encode())
        await host.start(node, await self._shared_spec(node, at))

    async def _shared_spec(self, node: NodeKey, at: Placement) -> ProcessSpec:
        scripts: dict[str, str] = {}
        if at.host == LOCAL_HOST:
            # One script for every group: it finds the group's proxy and its backends there from the
            # master name (two backends with TLS preferred).
            admin_socket, proxy_file = await self._proxy.script_paths(at, sentinel.SCRIPT_GROUP)
            backends = haproxy.group_primary_backends(sentinel.SCRIPT_GROUP, TransitMode.PREFERRED)
            master = admin_socket.parent / haproxy.MASTER_SOCKET
            script = sentinel.shared_reconfig_script(self.tools.python, admin_socket, backends, master, proxy_file)
            scripts[RECONFIG_SCRIPT] = script
        node_dir = await self.hosts.get(at.host).node_dir(node)
        return ProcessSpec(
            argv=sentinel.argv(self.tools.sentinel, node_dir / SENTINEL_CONF),
            files={security.TLS_INFO: security.PLAIN.to_text()},
            scripts=scripts,
        )

    async def _shared_script(self, node: NodeKey, at: Placement) -> Path | None:
        """The reconfig script a group sets on a shared Sentinel: only one on the embedded host can
        reach the endpoints' admin sockets. A script of an earlier version, which knew one endpoint
        proxy only, is brought up to date first: the joining group may be served by another one."""
        if at.host != LOCAL_HOST:
            return None
        host = self.hosts.get(at.host)
        spec = await self._shared_spec(node, at)
        if await host.read_file(node, RECONFIG_SCRIPT) != spec.scripts[RECONFIG_SCRIPT]:
            # Sentinel reads its script anew at each run. Redis ignores SIGHUP: the reload only
            # rewrites the running Sentinel's files.
            log.info("%s: bringing its reconfig script up to date", node)
            await host.reload(node, spec, signal.SIGHUP)
        return await host.node_dir(node) / RECONFIG_SCRIPT

    async def _replicas_of(self, group_id: str, primary: Address) -> tuple[Address, ...]:
        """The group's members other than ``primary`` that have a port, at their hosts' addresses: a
        Sentinel knows them from its start, also one that starts while a replica is still syncing (it
        would otherwise list that replica only at its next INFO of the primary, ten seconds later).
        A member whose host is out of reach is left out (Sentinel finds it when it serves again)."""
        group = GROUPS.find(self.store, group_id)
        if group is None:
            return ()
        found: set[Address] = set()
        for member in group.spec.members:
            cluster = CLUSTERS.find(self.store, member)
            node = cluster.status.node(MEMBER_NODE_ID) if cluster is not None else None
            at = node.placement if node is not None else None
            if at is None:
                at = Placement(LOCAL_HOST, self.hosts.get(LOCAL_HOST).address, "")  # recorded before hosts
            try:
                port = await self.hosts.get(at.host).port_of(member_key(member))
            except Retry:
                continue
            if port is not None and (at.address, port) != primary:
                found.add((at.address, port))
        return tuple(sorted(found))

    async def _peers_of(self, node: NodeKey, group_id: str) -> tuple[sentinel.KnownSentinel, ...]:
        """The group's other Sentinels that have a port, where they are placed, by the fixed ids they
        are started with: known at once instead of through their hello messages (about two seconds)."""
        group = GROUPS.find(self.store, group_id)
        if group is None:
            return ()
        peers = []
        for key in sentinel_keys(group_id):
            placed = group.status.sentinels.get(key.node_id)
            if key == node or placed is None:
                continue
            try:
                port = await self.hosts.get(placed.host).port_of(key)
            except Retry:
                continue
            if port is not None:
                peers.append(sentinel.KnownSentinel(placed.address, port, sentinel.my_id(f"{group_id}/{key.node_id}")))
        return tuple(peers)

    async def _process(self, node: NodeKey, at: Placement, replicaof: tuple[str, int] | None) -> ProcessSpec:
        spec = CLUSTERS.get(self.store, node.cluster_id).spec
        binary = self._binary(spec)
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        if port is None:
            raise Fatal(f"node {node} has no port")
        memory = memory_bytes(spec.node_type) or 0
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        # What the node starts with, kept beside it: a later change that needs a reboot shows as pending.
        started_with = json.dumps(values, sort_keys=True)
        if spec.engine == "memcached":
            return node_process(
                spec,
                node,
                binary=binary.path,
                node_dir=await host.node_dir(node),
                port=port,
                address=at.address,
                values=values,
                secrets=self._memcached_secrets(),
            )
        node_dir = await host.node_dir(node)
        directives = redis.parameter_directives(values, memory) if values else {}
        # The group's users and TLS, so that a node has them before it serves its first client.
        wanted = security.security_of(self.store, spec)
        ca_file, ca = self._ca(at, node_dir)
        node_tls = security.node_tls(wanted, port, node_dir, self.keys, ca_file)
        leaf = {**ca, **(await self._leaf(node, at, Role.NODE))} if node_tls is not None else {}
        config = redis.RedisNodeConfig(
            port=await self._plain_port(node, at, wanted, port),
            bind=at.address,
            data_dir=node_dir,
            maxmemory_bytes=int(directives.get("maxmemory", memory)),
            admin_user=self.credentials.user,
            admin_password=self.credentials.password,
            replicaof=replicaof,
            parameters=tuple(directives.items()),
            internal=self.keys.internal,
            application=security.wanted_users(self.store, wanted),
            tls=node_tls,
        )
        return ProcessSpec(
            argv=redis.argv(binary.path, node_dir / REDIS_CONF),
            files={REDIS_CONF: redis.render_config(config), PARAMETERS_FILE: started_with, **leaf},
            restart=await self._restart_policy(node, at, spec),
        )

    async def _config_endpoint(
        self, node: NodeKey, at: Placement, cluster_id: str, inputs: DiscoveryInputs
    ) -> ProcessSpec:
        host = self.hosts.get(at.host)
        port = await host.port_of(node)
        if port is None:
            raise Retry(f"the configuration endpoint of {cluster_id} has no port yet")
        spec = CLUSTERS.get(self.store, cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        # It lists the nodes at its own address (the embedded host's): Memcached nodes on agent hosts
        # are not listed at theirs yet (docs/decisions.md).
        return endpoint_process(
            spec,
            node,
            inputs,
            python=self.tools.python,
            node_dir=await host.node_dir(node),
            port=port,
            address=at.address,
            values=values,
            secrets=self._memcached_secrets(),
        )

    def _memcached_secrets(self) -> Secrets:
        return Secrets(self.credentials, self.keys, self.sealer, self.clock())

    def _binary(self, spec: CacheClusterSpec) -> EngineBinary:
        for binary in self.engines:
            if binary.engine == spec.engine and binary.version == spec.engine_version:
                return binary
        raise Fatal(f"{spec.engine} {spec.engine_version} is no longer installed on this host")


def _group_of(node: NodeKey) -> str:
    group_id = endpoint_group(node)
    if group_id is None:
        raise Fatal(f"{node} is not a group's endpoint")
    return group_id


async def _accepting(address: Address) -> None:
    """Wait until ``address`` accepts TCP connections (a node just started), for two seconds at most;
    after that the replica starts anyway: Redis retries on its own, only more slowly."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            while True:
                try:
                    _, writer = await asyncio.open_connection(*address)
                except OSError:
                    # Connection attempts on loopback are cheap; a node listens ~10 ms after its spawn.
                    await asyncio.sleep(0.001)
                    continue
                writer.close()
                await writer.wait_closed()
                return
