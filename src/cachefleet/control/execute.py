"""Giving a plan effect: every step here is safe to repeat, so a crash mid-plan heals on the next pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    DetachMember,
    Event,
    RemoveNode,
    ReplicaOf,
    StartNode,
)
from cachefleet.control.observe import Credentials
from cachefleet.engines import memcached, redis
from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.hosts.base import Host, NodeKey, ProcessSpec
from cachefleet.model.errors import Fatal
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.store.records import CLUSTER, get_cluster
from cachefleet.store.sqlite import Store

REDIS_CONF = "redis.conf"


@dataclass(frozen=True)
class Executor:
    store: Store
    host: Host
    engines: Sequence[EngineBinary]
    credentials: Credentials
    address: str
    clock: Callable[[], datetime]

    async def run(self, actions: Sequence[Action]) -> None:
        for action in actions:
            await self._one(action)

    async def _one(self, action: Action) -> None:
        match action:
            case AllocatePort(node):
                await asyncio.to_thread(self._allocate, node)
            case StartNode(node, replicaof):
                process = self._process(node, replicaof)
                await asyncio.to_thread(self.host.start, node, process)
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
            case RemoveNode(node):
                await asyncio.to_thread(self.host.remove, node)
            case DetachMember(cluster_id):
                cluster = get_cluster(self.store, cluster_id)
                detached = replace(cluster.spec, replication_group_id=None)
                self.store.put_spec(CLUSTER, cluster_id, detached.to_json())
            case DeleteRecord(kind, resource_id):
                self.store.delete(kind, resource_id)

    def record(self, events: Sequence[Event]) -> None:
        for event in events:
            self.store.add_event(event.source_id, event.source_type, event.message, self.clock())

    def _allocate(self, node: NodeKey) -> None:
        taken = {p for k in self.host.nodes() if k != node and (p := self.host.port_of(k)) is not None}
        self.host.allocate_port(node, taken)

    def _process(self, node: NodeKey, replicaof: tuple[str, int] | None) -> ProcessSpec:
        spec = get_cluster(self.store, node.cluster_id).spec
        binary = self._binary(spec)
        port = self.host.port_of(node)
        if port is None:
            raise Fatal(f"node {node.cluster_id}/{node.node_id} has no port")
        memory = memory_bytes(spec.node_type) or 0
        if spec.engine == "memcached":
            argv = memcached.argv(binary.path, port=port, bind=self.address, memory_mb=memory // (1 << 20))
            return ProcessSpec(argv=argv)
        node_dir = self.host.node_dir(node)
        config = redis.RedisNodeConfig(
            port=port,
            bind=self.address,
            data_dir=node_dir,
            maxmemory_bytes=memory,
            admin_user=self.credentials.user,
            admin_password=self.credentials.password,
            replicaof=replicaof,
        )
        return ProcessSpec(
            argv=redis.argv(binary.path, node_dir / REDIS_CONF),
            files={REDIS_CONF: redis.render_config(config)},
        )

    def _binary(self, spec: CacheClusterSpec) -> EngineBinary:
        for binary in self.engines:
            if binary.engine == spec.engine and binary.version == spec.engine_version:
                return binary
        raise Fatal(f"{spec.engine} {spec.engine_version} is no longer installed on this host")
