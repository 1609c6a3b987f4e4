"""Looking at reality again on every pass: which nodes run, on which port, in which role."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cachefleet.engines import memcached, redis
from cachefleet.hosts.base import Host, NodeKey


@dataclass(frozen=True)
class NodeObservation:
    port: int | None
    pid: int | None
    redis: redis.RedisObservation | None = None
    memcached: memcached.MemcachedObservation | None = None

    @property
    def serving(self) -> bool:
        if self.pid is None:
            return False
        if self.redis is not None:
            return not self.redis.loading
        return self.memcached is not None


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


async def observe_node(
    host: Host, key: NodeKey, *, engine: str, address: str, credentials: Credentials
) -> NodeObservation:
    port, pid = await asyncio.to_thread(lambda: (host.port_of(key), host.pid(key)))
    if port is None or pid is None:
        return NodeObservation(port=port, pid=pid)
    if engine == "memcached":
        return NodeObservation(port, pid, memcached=await memcached.probe(address, port))
    probe = await redis.probe(address, port, user=credentials.user, password=credentials.password)
    return NodeObservation(port, pid, redis=probe)


async def observe_nodes(
    host: Host, keys: list[NodeKey], *, engine: str, address: str, credentials: Credentials
) -> dict[NodeKey, NodeObservation]:
    results = await asyncio.gather(
        *(observe_node(host, k, engine=engine, address=address, credentials=credentials) for k in keys)
    )
    return dict(zip(keys, results, strict=True))
