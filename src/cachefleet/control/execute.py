"""Giving a plan effect: every step here is safe to repeat, so a crash mid-plan heals on the next pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
    ReplicaOf,
    RestartNode,
    SentinelFailover,
    SetEndpointPrimary,
    StartConfigEndpoint,
    StartEndpoint,
    StartNode,
    StartSentinel,
    Switchover,
)
from cachefleet.control.memcached_processes import access, endpoint_process, node_process
from cachefleet.control.observe import ENDPOINT_INPUTS, PARAMETERS_FILE
from cachefleet.engines import config_endpoint, haproxy, memcached, redis, sentinel
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.hosts.base import Host, PortRequest, ProcessSpec
from cachefleet.model.certificates import Certificates
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, InsufficientCacheClusterCapacity, Retry
from cachefleet.model.nodes import READER_SLOT, NodeKey, endpoint_key
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.store.kinds import CLUSTERS
from cachefleet.store.records import effective_parameters, recorded_ports
from cachefleet.store.sqlite import Store

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
    down_after_ms: int = 1000
    # Puts a restoring node's RDB in place before its first start (``SnapshotWorker.seed``).
    seed: Callable[[NodeKey], None] | None = None
    # The installation's CA, for processes with in-transit encryption (None: no TLS on this server).
    certificates: Certificates | None = None

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
                        self.address,
                        port,
                        user=self.credentials.user,
                        password=self.credentials.password,
                        values=values,
                    )
                except Retry as exc:
                    # Best effort: the next pass observes the node again and tries once more; a
                    # failure here must not keep the rest of the plan (failover steps) from running.
                    log.warning("%s/%s: %s", node.cluster_id, node.node_id, exc.reason)
            case ReplicaOf(node, primary):
                port = self.host.port_of(node)
                if port is not None:
                    await redis.set_replicaof(
                        self.address,
                        port,
                        user=self.credentials.user,
                        password=self.credentials.password,
                        primary=primary,
                    )
            case Switchover(old, new):
                await redis.switchover(old, new, user=self.credentials.user, password=self.credentials.password)
            case ReloadEndpoint(node, inputs):
                spec = self._endpoint(node, inputs)
                await asyncio.to_thread(self.host.reload, node, spec, haproxy.RELOAD_SIGNAL)
            case SetEndpointPrimary(node, server):
                await asyncio.to_thread(haproxy.set_primary, self.host.node_dir(node) / haproxy.ADMIN_SOCKET, server)
            case SentinelFailover(node, group_id, primary):
                port = self.host.port_of(node)
                if port is not None:
                    user, password = self.credentials.user, self.credentials.password
                    await redis.pause_and_drain(primary, user=user, password=password)
                    try:
                        await sentinel.failover(self.address, port, group_id)
                    except Retry:
                        await redis.unpause(primary, user=user, password=password)
                        raise
            case RemoveNode(node):
                await asyncio.to_thread(self.host.remove, node)
            case DetachMember(cluster_id):
                cluster = CLUSTERS.get(self.store, cluster_id)
                CLUSTERS.put_spec(self.store, cluster_id, replace(cluster.spec, replication_group_id=None))
            case DeleteRecord(kind, resource_id):
                self.store.delete(kind, resource_id)

    async def _live(self, node: NodeKey, commands: Sequence[str]) -> None:
        """Best effort, as ConfigSet: the next pass compares the node's settings again."""
        port = self.host.port_of(node)
        if port is None:
            return
        spec = CLUSTERS.get(self.store, node.cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        reach = access(spec, values, self.credentials, self.certificates)
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
                self.address, port, user=self.credentials.user, password=self.credentials.password
            )
        await asyncio.to_thread(self.host.stop, node)
        await asyncio.to_thread(self.host.start, node, process)

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
        config = haproxy.EndpointConfig(
            bind=self.address,
            primary_port=port,
            reader_port=reader,
            nodes=inputs.nodes,
            primary=inputs.primary,
            admin_user=self.credentials.user,
            admin_password=self.credentials.password,
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
        config = sentinel.SentinelConfig(
            port=port,
            bind=self.address,
            data_dir=node_dir,
            master_name=group_id,
            primary=primary,
            quorum=2,
            admin_user=self.credentials.user,
            admin_password=self.credentials.password,
            my_id=sentinel.my_id(f"{group_id}/{node.node_id}"),
            down_after_ms=self.down_after_ms,
            reconfig_script=node_dir / RECONFIG_SCRIPT,
        )
        return ProcessSpec(
            argv=sentinel.argv(self.tools.sentinel, node_dir / SENTINEL_CONF),
            files={SENTINEL_CONF: sentinel.render_config(config)},
            scripts={RECONFIG_SCRIPT: sentinel.reconfig_script(self.tools.python, admin_socket)},
        )

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
                binary=binary.path,
                node_dir=self.host.node_dir(node),
                port=port,
                address=self.address,
                values=values,
                credentials=self.credentials,
                certificates=self.certificates,
            )
        node_dir = self.host.node_dir(node)
        directives = redis.parameter_directives(values, memory) if values else {}
        config = redis.RedisNodeConfig(
            port=port,
            bind=self.address,
            data_dir=node_dir,
            maxmemory_bytes=int(directives.get("maxmemory", memory)),
            admin_user=self.credentials.user,
            admin_password=self.credentials.password,
            replicaof=replicaof,
            parameters=tuple(directives.items()),
        )
        return ProcessSpec(
            argv=redis.argv(binary.path, node_dir / REDIS_CONF),
            files={REDIS_CONF: redis.render_config(config), PARAMETERS_FILE: started_with},
        )

    def _config_endpoint(self, node: NodeKey, cluster_id: str, inputs: DiscoveryInputs) -> ProcessSpec:
        port = self.host.port_of(node)
        if port is None:
            raise Retry(f"the configuration endpoint of {cluster_id} has no port yet")
        spec = CLUSTERS.get(self.store, cluster_id).spec
        _, values = effective_parameters(self.store, spec.engine, spec.engine_version, spec.parameter_group)
        return endpoint_process(
            spec,
            inputs,
            python=self.tools.python,
            node_dir=self.host.node_dir(node),
            port=port,
            address=self.address,
            values=values,
            credentials=self.credentials,
            certificates=self.certificates,
        )

    def _binary(self, spec: CacheClusterSpec) -> EngineBinary:
        for binary in self.engines:
            if binary.engine == spec.engine and binary.version == spec.engine_version:
                return binary
        raise Fatal(f"{spec.engine} {spec.engine_version} is no longer installed on this host")


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
