"""Giving a plan effect: every step here is safe to repeat, so a crash mid-plan heals on the next pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cachefleet.control import security
from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    ConfigSet,
    DeleteRecord,
    DetachMember,
    DiscoveryInputs,
    EndpointInputs,
    LiveParameters,
    ReloadConfigEndpoint,
    ReloadEndpoint,
    RemoveNode,
    RenewCertificate,
    ReplicaOf,
    RestartNode,
    RestartSentinel,
    SentinelFailover,
    SetEndpointPrimary,
    SetTransport,
    StartConfigEndpoint,
    StartEndpoint,
    StartNode,
    StartSentinel,
    Switchover,
    SyncAcl,
    TuneSentinel,
)
from cachefleet.control.memcached_processes import Secrets, access, endpoint_process, node_process
from cachefleet.control.observe import ENDPOINT_INPUTS, PARAMETERS_FILE
from cachefleet.control.security import Keys, Links
from cachefleet.engines import acl, config_endpoint, haproxy, memcached, redis, sentinel
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.hosts.base import Host, PortRequest, ProcessSpec
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, InsufficientCacheClusterCapacity, Retry
from cachefleet.model.nodes import READER_SLOT, NodeKey, endpoint_key, member_key, sentinel_keys
from cachefleet.model.security import Security
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.transit import TransitMode
from cachefleet.store.keys import Sealer
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.records import effective_parameters, recorded_ports
from cachefleet.store.sqlite import Store
from cachefleet.tls.certs import Role

log = logging.getLogger(__name__)

REDIS_CONF = "redis.conf"
HAPROXY_CONF = "haproxy.cfg"
SENTINEL_CONF = "sentinel.conf"
RECONFIG_SCRIPT = "reconfig"


@dataclass(frozen=True)
class Tools:
    """Binaries besides the engines: Sentinel, the endpoint proxy, and the interpreter of scripts."""

    sentinel: str
    haproxy: str
    python: str


Start = StartNode | StartEndpoint | StartSentinel | StartConfigEndpoint


@dataclass(frozen=True)
class Executor:
    store: Store
    host: Host
    engines: Sequence[EngineBinary]
    credentials: Credentials
    address: str
    tools: Tools
    keys: Keys  # the internal users, the Sentinels' password, the CA (``control.security``)
    links: Links  # how each node and Sentinel answers now: TLS or plain text
    clock: Callable[[], datetime]  # when certificates are issued
    down_after_ms: int = 1000
    # Puts a restoring node's RDB in place before its first start (``SnapshotWorker.seed``).
    seed: Callable[[NodeKey], None] | None = None
    # Opens a Memcached cluster's sealed AuthToken for its nodes' files (``store.keys.Sealer``).
    sealer: Sealer | None = None

    async def run(self, actions: Sequence[Action]) -> None:
        # Ports are chosen one at a time (two concurrent choices could pick the same free port).
        allocations = [PortRequest(a.node, a.slot, a.port) for a in actions if isinstance(a, AllocatePort)]
        if allocations:
            await asyncio.to_thread(self._allocate, allocations)
        starts = [a for a in actions if isinstance(a, Start)]
        # A replica started before its primary listens waits a whole second before it tries again.
        followers = [a for a in starts if isinstance(a, StartNode) and a.replicaof is not None]
        await self._start([a for a in starts if a not in followers])
        await asyncio.gather(*(_accepting(a.replicaof) for a in followers if a.replicaof is not None))
        await self._start(followers)
        for action in actions:
            if not isinstance(action, AllocatePort | Start):
                await self._one(action)

    async def _start(self, starts: Sequence[Start]) -> None:
        """Render every process first, then spawn them one after another in one worker thread.

        Spawned together from several threads, three redis-servers took longer to start than one
        after another. Nodes go first, and the first failure stops the others: the endpoint of a
        primary that could not start (a refused restore) has nothing to route to.
        """
        if not starts:
            return
        ordered = sorted(starts, key=lambda a: not isinstance(a, StartNode))
        await asyncio.to_thread(self._spawn, [(a, self._spec(a)) for a in ordered])

    def _spawn(self, starts: Sequence[tuple[Start, ProcessSpec]]) -> None:
        for start, process in starts:
            if isinstance(start, StartNode):
                if self.seed is not None:
                    self.seed(start.node)  # a restore's RDB, which the line below then leaves alone
                if start.replication_id is not None and REDIS_CONF in process.files:
                    _seed_replication(self.host.node_dir(start.node), start.replication_id)
            self.host.start(start.node, process)

    def _spec(self, start: Start) -> ProcessSpec:
        match start:
            case StartNode(node, replicaof):
                return self._process(node, replicaof)
            case StartEndpoint(node, inputs):
                return self._endpoint(node, inputs)
            case StartSentinel(node, group_id, primary):
                return self._sentinel(node, group_id, primary)
            case StartConfigEndpoint(node, cluster_id, inputs):
                return self._config_endpoint(node, cluster_id, inputs)

    async def _one(self, action: Action) -> None:
        user, password = self.credentials.user, self.credentials.password
        match action:
            case AllocatePort(node, slot, port):
                await asyncio.to_thread(self._allocate, [PortRequest(node, slot, port)])
            case StartNode() | StartEndpoint() | StartSentinel() | StartConfigEndpoint():
                await self._start([action])
            case ReloadConfigEndpoint(node, cluster_id, inputs):
                process = self._config_endpoint(node, cluster_id, inputs)
                await asyncio.to_thread(self.host.reload, node, process, config_endpoint.RELOAD_SIGNAL)
            case LiveParameters(node, commands):
                await self._live(node, commands)
            case RestartNode(node, replicaof):
                await self._restart(node, replicaof)
            case ConfigSet(node, values):
                port = self.host.port_of(node)
                if port is None:
                    return
                try:
                    await redis.config_set(
                        self.address, port, user=user, password=password, values=values, tls=self._tls(port)
                    )
                except Retry as exc:
                    # Best effort: the next pass observes the node again and tries once more; a
                    # failure here must not keep the rest of the plan (failover steps) from running.
                    log.warning("%s/%s: %s", node.cluster_id, node.node_id, exc.reason)
            case ReplicaOf(node, primary):
                port = self.host.port_of(node)
                if port is not None:
                    await redis.set_replicaof(
                        self.address, port, user=user, password=password, primary=primary, tls=self._tls(port)
                    )
            case Switchover(old, new):
                await redis.switchover(old, new, user=user, password=password, tls=self.links.tls_for(*old))
            case ReloadEndpoint(node, inputs):
                spec = self._endpoint(node, inputs)
                await asyncio.to_thread(self.host.reload, node, spec, haproxy.RELOAD_SIGNAL)
            case SetEndpointPrimary(node, server):
                admin_socket = self.host.node_dir(node) / haproxy.ADMIN_SOCKET
                backends = _primary_backends(self._group_security(node))
                await asyncio.to_thread(haproxy.set_primary, admin_socket, server, backends)
            case SentinelFailover(node, group_id, primary):
                port = self.host.port_of(node)
                if port is not None:
                    node_tls = self.links.tls_for(*primary)
                    await redis.pause_and_drain(primary, user=user, password=password, tls=node_tls)
                    try:
                        await sentinel.failover(
                            self.address, port, group_id, password=self.keys.sentinel_password, tls=self._tls(port)
                        )
                    except Retry:
                        await redis.unpause(primary, user=user, password=password, tls=node_tls)
                        raise
            case RestartSentinel(node, group_id, primary):
                spec = self._sentinel(node, group_id, primary)  # rendered first: a bad spec must not stop it
                await asyncio.to_thread(self.host.stop, node)
                await asyncio.to_thread(self.host.start, node, spec)
                port = self.host.port_of(node)
                if port is not None:
                    self.links.record(self.address, port, tls=self._group_security(node).tls)
            case TuneSentinel(node, timings):
                port = self.host.port_of(node)
                if port is not None:
                    await sentinel.set_timings(
                        self.address, port, timings, password=self.keys.sentinel_password, tls=self._tls(port)
                    )
            case SyncAcl(node, users, present):
                await self._sync_acl(node, users, present)
            case SetTransport(node, current):
                await self._set_transport(node, dict(current))
            case RenewCertificate(node):
                await self._renew_certificate(node)
            case RemoveNode(node):
                await asyncio.to_thread(self.host.remove, node)
            case DetachMember(cluster_id):
                cluster = CLUSTERS.get(self.store, cluster_id)
                # It keeps the TLS and users it ran with its group, now as its own.
                kept = security.security_of(self.store, cluster.spec)
                detached = replace(cluster.spec, replication_group_id=None, security=kept)
                CLUSTERS.put_spec(self.store, cluster_id, detached)
            case DeleteRecord(kind, resource_id):
                self.store.delete(kind, resource_id)

    async def _live(self, node: NodeKey, commands: Sequence[str]) -> None:
        """Best effort, as ConfigSet: the next pass compares the node's settings again."""
        port = self.host.port_of(node)
        if port is None:
            return
        spec = CLUSTERS.get(self.store, node.cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        reach = access(spec, values, self.credentials, self.keys.ca_file)
        if not await memcached.apply_live(self.address, port, commands, reach):
            log.warning("%s: live parameters not applied yet (%s)", node, ", ".join(commands))

    async def _restart(self, node: NodeKey, replicaof: Address | None) -> None:
        """Stop the node keeping its data, then start it on a config rendered afresh."""
        process = self._process(node, replicaof)  # rendered first: a bad spec must not stop the node
        port = self.host.port_of(node)
        running = await asyncio.to_thread(self.host.pid, node)
        if running is not None and port is not None and REDIS_CONF in process.files:
            # SHUTDOWN SAVE writes the RDB even with save "" (an AOF, when on, is fsynced too).
            await redis.shutdown_save(
                self.address,
                port,
                user=self.credentials.user,
                password=self.credentials.password,
                tls=self._tls(port),
            )
        await asyncio.to_thread(self.host.stop, node)
        await asyncio.to_thread(self.host.start, node, process)

    # -- security (docs/security.md) -------------------------------------------------------------

    def _tls(self, port: int) -> redis.ClientTls | None:
        """How a node or Sentinel of ours on ``port`` answers now (``Links``)."""
        return self.links.tls_for(self.address, port)

    def _node_security(self, node: NodeKey) -> Security:
        return security.security_of(self.store, CLUSTERS.get(self.store, node.cluster_id).spec)

    def _group_security(self, node: NodeKey) -> Security:
        """The security of the group a Sentinel or endpoint (``rg.<id>/...``) serves."""
        group = GROUPS.find(self.store, node.cluster_id.removeprefix("rg."))
        return group.spec.security if group is not None else Security()

    def _leaf(self, node: NodeKey, role: Role) -> dict[str, str]:
        """The leaf files a TLS process starts with: none while its current leaf is good."""
        who = security.identity(node, self.address, role)
        return security.current_or_new_leaf(self.keys, who, self.host.read_file(node, security.TLS_INFO), self.clock())

    async def _sync_acl(self, node: NodeKey, users: Sequence[acl.AclUser], present: Sequence[str]) -> None:
        """The users first, then the marker that says the node has them: a failure in between leaves
        the old marker, and the next pass sends them all again."""
        port = self.host.port_of(node)
        if port is None:
            return
        user, password, tls = self.credentials.user, self.credentials.password, self._tls(port)
        commands = acl.sync_commands(users, present)
        await redis.apply_acl(self.address, port, user=user, password=password, commands=commands, tls=tls)
        marker = acl.marker_commands(acl.marker(users), present)
        await redis.apply_acl(self.address, port, user=user, password=password, commands=marker, tls=tls)

    async def _set_transport(self, node: NodeKey, current: dict[str, str]) -> None:
        """Move a running node to its group's TLS mode with one live CONFIG SET: its leaf is written
        first when it goes to TLS."""
        port = self.host.port_of(node)
        if port is None:
            return
        wanted = self._node_security(node)
        node_tls = security.node_tls(wanted, port, self.host.node_dir(node), self.keys)
        plain = self._plain_port(node, wanted, port)
        if node_tls is not None:
            for name, text in self._leaf(node, Role.NODE).items():
                await asyncio.to_thread(self.host.write_file, node, name, text)
        values = redis.transport_values(plain, node_tls, current)
        user, password = self.credentials.user, self.credentials.password
        await redis.config_set(self.address, port, user=user, password=password, values=values, tls=self._tls(port))
        self.links.record(self.address, port, tls=node_tls is not None)

    async def _renew_certificate(self, node: NodeKey) -> None:
        """A new leaf, written with one rename (key and certificate together), then read live by the node."""
        port = self.host.port_of(node)
        wanted = self._node_security(node)
        if port is None or not wanted.tls:
            return
        node_tls = security.node_tls(wanted, port, self.host.node_dir(node), self.keys)
        assert node_tls is not None
        who = security.identity(node, self.address, Role.NODE)
        files = security.leaf_files(self.keys, who, self.clock())
        # The PEM first: should the info file not follow, the next pass renews once more.
        await asyncio.to_thread(self.host.write_file, node, security.TLS_FILE, files[security.TLS_FILE])
        user, password = self.credentials.user, self.credentials.password
        await redis.reload_tls(self.address, port, user=user, password=password, node_tls=node_tls, tls=self._tls(port))
        await asyncio.to_thread(self.host.write_file, node, security.TLS_INFO, files[security.TLS_INFO])

    def _plain_port(self, node: NodeKey, wanted: Security, port: int) -> int:
        """A node's plain-text port for its group's TLS mode: its main port without TLS, none with
        ``required``, the one of ``PLAIN_SLOT`` with ``preferred``."""
        if not wanted.tls:
            return port
        if wanted.transit.mode is TransitMode.REQUIRED:
            return 0
        plain = self.host.port_of(node, security.PLAIN_SLOT)
        if plain is None:
            raise Retry(f"node {node} has no plain-text port yet")
        return plain

    def _allocate(self, requests: Sequence[PortRequest]) -> None:
        """Ports for nodes that have none on the host: the recorded one back, else a free one.

        The host skips every port it has handed out already; those the store records are skipped too,
        so that a node whose directory is lost finds its port free to take back. No port left in the
        range is a failure only time (or the operator) can mend: ``Fatal``, which fails a creation.
        """
        try:
            self.host.allocate_ports(requests, recorded_ports(self.store))
        except InsufficientCacheClusterCapacity as exc:
            raise Fatal(exc.message) from exc

    def _endpoint(self, node: NodeKey, inputs: EndpointInputs) -> ProcessSpec:
        port, reader = self.host.port_of(node), self.host.port_of(node, READER_SLOT)
        if port is None or reader is None:
            raise Retry(f"endpoint {node.cluster_id} has no ports yet")
        # TLS passes through (TCP mode): the nodes' leaves name the endpoint's address.
        tls = None
        if inputs.tls:
            tls = haproxy.EndpointTls(TransitMode(inputs.tls), self.keys.ca_file, plain_ports=inputs.plain_ports)
        config = haproxy.EndpointConfig(
            bind=self.address,
            primary_port=port,
            reader_port=reader,
            nodes=inputs.nodes,
            primary=inputs.primary,
            # Health checks log in as the check user (PING, INFO), never as the admin.
            admin_user=self.keys.internal.check.user,
            admin_password=self.keys.internal.check.password,
            tls=tls,
        )
        conf = self.host.node_dir(node) / HAPROXY_CONF
        return ProcessSpec(
            argv=haproxy.argv(self.tools.haproxy, conf),
            files={HAPROXY_CONF: haproxy.render_config(config), ENDPOINT_INPUTS: inputs.to_json()},
        )

    def _sentinel(self, node: NodeKey, group_id: str, primary: Address) -> ProcessSpec:
        port = self.host.port_of(node)
        if port is None:
            raise Retry(f"sentinel {node.node_id} of {group_id} has no port yet")
        node_dir = self.host.node_dir(node)
        admin_socket = self.host.node_dir(endpoint_key(group_id)) / haproxy.ADMIN_SOCKET
        wanted = self._group_security(node)
        files: dict[str, str] = {security.TLS_INFO: security.PLAIN.to_text()}
        tls = None
        if wanted.tls:
            files = self._leaf(node, Role.SENTINEL)
            tls = sentinel.SentinelTls(node_dir / security.TLS_FILE, self.keys.ca_file)
        config = sentinel.SentinelConfig(
            port=port,
            bind=self.address,
            data_dir=node_dir,
            master_name=group_id,
            primary=primary,
            quorum=2,
            # Sentinel logs in to the nodes as its own internal user, allowed only what it sends.
            admin_user=self.keys.internal.sentinel.user,
            admin_password=self.keys.internal.sentinel.password,
            my_id=sentinel.my_id(f"{group_id}/{node.node_id}"),  # as ``_peers_of`` names it
            down_after_ms=self.down_after_ms,
            reconfig_script=node_dir / RECONFIG_SCRIPT,
            # Nobody without it may ask a Sentinel anything, with TLS or without.
            password=self.keys.sentinel_password,
            tls=tls,
            known_replicas=self._replicas_of(group_id, primary),
            known_sentinels=self._peers_of(node, group_id),
        )
        # The script flips every primary backend the endpoint has (two with TLS preferred).
        script = sentinel.reconfig_script(self.tools.python, admin_socket, haproxy.ALL_PRIMARY_BACKENDS)
        return ProcessSpec(
            argv=sentinel.argv(self.tools.sentinel, node_dir / SENTINEL_CONF),
            files={SENTINEL_CONF: sentinel.render_config(config), **files},
            scripts={RECONFIG_SCRIPT: script},
        )

    def _replicas_of(self, group_id: str, primary: Address) -> tuple[Address, ...]:
        """The group's members other than ``primary`` that have a port: a Sentinel knows them from
        its start, also one that starts while a replica is still syncing (it would otherwise list
        that replica only at its next INFO of the primary, ten seconds later)."""
        group = GROUPS.find(self.store, group_id)
        if group is None:
            return ()
        ports = (self.host.port_of(member_key(m)) for m in group.spec.members)
        return tuple(sorted((self.address, p) for p in ports if p is not None and (self.address, p) != primary))

    def _peers_of(self, node: NodeKey, group_id: str) -> tuple[sentinel.KnownSentinel, ...]:
        """The group's other Sentinels that have a port, by the fixed ids they are started with:
        known at once instead of through their hello messages (about two seconds)."""
        peers = []
        for key in sentinel_keys(group_id):
            port = self.host.port_of(key)
            if key != node and port is not None:
                peers.append(sentinel.KnownSentinel(self.address, port, sentinel.my_id(f"{group_id}/{key.node_id}")))
        return tuple(peers)

    def _process(self, node: NodeKey, replicaof: tuple[str, int] | None) -> ProcessSpec:
        spec = CLUSTERS.get(self.store, node.cluster_id).spec
        binary = self._binary(spec)
        port = self.host.port_of(node)
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
                node_dir=self.host.node_dir(node),
                port=port,
                address=self.address,
                values=values,
                secrets=self._memcached_secrets(),
            )
        node_dir = self.host.node_dir(node)
        directives = redis.parameter_directives(values, memory) if values else {}
        # The group's users and TLS, so that a node has them before it serves its first client.
        wanted = security.security_of(self.store, spec)
        node_tls = security.node_tls(wanted, port, node_dir, self.keys)
        leaf = self._leaf(node, Role.NODE) if node_tls is not None else {}
        config = redis.RedisNodeConfig(
            port=self._plain_port(node, wanted, port),
            bind=self.address,
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
        )

    def _config_endpoint(self, node: NodeKey, cluster_id: str, inputs: DiscoveryInputs) -> ProcessSpec:
        port = self.host.port_of(node)
        if port is None:
            raise Retry(f"the configuration endpoint of {cluster_id} has no port yet")
        spec = CLUSTERS.get(self.store, cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        return endpoint_process(
            spec,
            node,
            inputs,
            python=self.tools.python,
            node_dir=self.host.node_dir(node),
            port=port,
            address=self.address,
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


def _primary_backends(wanted: Security) -> tuple[str, ...]:
    """The endpoint's backends that follow the primary: a plain-text one too with TLS ``preferred``."""
    if wanted.transit.mode is TransitMode.PREFERRED:
        return haproxy.ALL_PRIMARY_BACKENDS
    return (haproxy.PRIMARY_BACKEND,)


def _seed_replication(node_dir: Path, replication_id: str) -> None:
    """Give a new Redis node its empty, stamped dataset (``redis.seed_rdb``), unless it has data.

    Never replaces anything: a node that ever saved has its own RDB, and one with an append-only
    directory loads from there (the seed then goes unused and its replicas take a full sync).
    """
    if (node_dir / redis.AOF_DIR).exists():
        return
    try:
        fd = os.open(node_dir / redis.RDB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(redis.seed_rdb(replication_id))


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
