"""Following Sentinel's failovers between passes, for groups whose Sentinels run on agent hosts.

A Sentinel on the control plane's machine flips its group's endpoint itself (its reconfig script, at
``+switch-master``). A Sentinel on an agent host cannot reach the endpoint's admin socket, and a pass
moves the endpoint only once a majority of the Sentinels names the promoted replica: the failover
leader's ``+switch-master``, about 3.3 s after the loss of the primary's host. ``Followers`` keeps one
``endpoints.watch.SentinelWatch`` per such group (subscribed to its Sentinels, with their password)
and moves the endpoint on the leader's promotion once the promoted node reports master (about 2.2 s),
or on the first ``+switch-master``, then wakes the group: its pass finds the endpoint where the
Sentinels are about to agree (``planners.group`` does not move it back while it leads to a promoted
master). Groups with TLS are left to the passes (the watch speaks plain text only).

The set of watches is brought in line with the store within a second of a change to it (every
``FULL_SYNC_INTERVAL`` otherwise, for the ports only the hosts know); a group's watch is replaced only
when its Sentinels move, never because a host stopped answering (its last known ports are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachefleet.control.proxy import proxy_of
from cachefleet.endpoints.base import Address
from cachefleet.endpoints.follower import Repoint
from cachefleet.endpoints.watch import SentinelWatch, role_is_master
from cachefleet.engines import haproxy
from cachefleet.hosts.base import Hosts
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Retry
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import MEMBER_NODE_ID, NodeKey, sentinel_keys
from cachefleet.store.kinds import CLUSTERS, GROUPS
from cachefleet.store.records import GROUP
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

SYNC_INTERVAL = 1.0
FULL_SYNC_INTERVAL = 10.0


@dataclass
class _Watching:
    sentinels: dict[str, Address]
    watch: SentinelWatch
    task: asyncio.Task[None]


class Followers:
    def __init__(
        self,
        store: Store,
        hosts: Hosts,
        credentials: Credentials,
        sentinel_password: str,
        wake: Callable[[tuple[str, str]], None],
    ) -> None:
        self._store = store
        self._hosts = hosts
        self._credentials = credentials
        self._sentinel_password = sentinel_password
        self._wake = wake
        self._watching: dict[str, _Watching] = {}
        self._ports: dict[tuple[str, str, str], int] = {}  # (group, sentinel, host) -> its last known port

    def primary(self, group_id: str) -> tuple[str, int] | None:
        """Where it has the group's endpoint lead (None: it does not follow the group)."""
        watching = self._watching.get(group_id)
        followed = watching.watch.primary(group_id) if watching is not None else None
        return (followed.host, followed.port) if followed is not None else None

    async def run(self) -> None:
        # ``sync`` decodes every group: while the store has not changed it is done only every
        # FULL_SYNC_INTERVAL, for what the store does not show (a Sentinel's port on its host).
        last: tuple[int, int] | None = None
        synced_at = float("-inf")
        try:
            while True:
                seen, now = self._store.version(), time.monotonic()
                if seen != last or now - synced_at >= FULL_SYNC_INTERVAL:
                    try:
                        await self.sync()
                        last, synced_at = seen, now
                    except Exception:
                        log.exception("following Sentinels failed; again in %.0f s", SYNC_INTERVAL)
                await asyncio.sleep(SYNC_INTERVAL)
        finally:
            for group_id in list(self._watching):
                await self._stop(group_id)

    async def sync(self) -> None:
        wanted: dict[str, tuple[dict[str, Address], Address | None]] = {}
        # Only groups with a Sentinel off the embedded host are followed: SQLite picks them out of the
        # statuses, so a sync decodes those alone (it runs on every change to the store).
        hosts = self._store.json_pairs(GROUPS.name, "id", "sentinels", "host")
        away = {group_id for group_id, host in hosts if host != LOCAL_HOST}
        for group in GROUPS.many(self._store, sorted(away)):
            spec, status = group.spec, group.status
            placed = status.sentinels
            if spec.deleting or not spec.automatic_failover or spec.security.tls or not placed:
                continue
            if all(at.host == LOCAL_HOST for at in placed.values()):
                continue  # their reconfig script flips the endpoint
            sentinels: dict[str, Address] = {}
            for key in sentinel_keys(spec.id):
                at = placed.get(key.node_id)
                if at is None:
                    continue
                port = await self._port(key, spec.id, at.host)
                if port is not None:
                    sentinels[key.node_id] = Address(at.address, port)
            if len(sentinels) == len(placed):
                wanted[spec.id] = (sentinels, self._primary(status.primary_cluster_id))
        for group_id in list(self._watching):
            if group_id not in wanted or wanted[group_id][0] != self._watching[group_id].sentinels:
                await self._stop(group_id)
        for group_id, (sentinels, primary) in wanted.items():
            if group_id not in self._watching:
                self._start(group_id, sentinels, primary)

    async def _port(self, key: NodeKey, group_id: str, host_id: str) -> int | None:
        known = (group_id, key.node_id, host_id)
        with contextlib.suppress(Retry):
            port = await self._hosts.get(host_id).port_of(key)
            if port is not None:
                self._ports[known] = port
        return self._ports.get(known)

    def _primary(self, cluster_id: str | None) -> Address | None:
        cluster = CLUSTERS.find(self._store, cluster_id) if cluster_id else None
        node = cluster.status.node(MEMBER_NODE_ID) if cluster is not None else None
        if node is None or node.placement is None or node.port is None:
            return None
        return Address(node.placement.address, node.port)

    def _start(self, group_id: str, sentinels: dict[str, Address], primary: Address | None) -> None:
        user, password = self._credentials.user, self._credentials.password
        watch = SentinelWatch(
            sentinels,
            functools.partial(self._repoint, group_id),
            probe=functools.partial(role_is_master, username=user, password=password),
            password=self._sentinel_password,
        )
        watch.track(group_id, primary)
        task = asyncio.create_task(watch.run(), name=f"follow {group_id}")
        self._watching[group_id] = _Watching(dict(sentinels), watch, task)
        log.info(
            "following the Sentinels of %s: %s", group_id, ", ".join(f"{a.host}:{a.port}" for a in sentinels.values())
        )

    async def _stop(self, group_id: str) -> None:
        watching = self._watching.pop(group_id)
        watching.task.cancel()
        await asyncio.gather(watching.task, return_exceptions=True)

    async def _repoint(self, group_id: str, repoint: Repoint) -> None:
        """Route the group's primary endpoint to the node Sentinel promoted, then let its pass look."""
        host = self._hosts.get(LOCAL_HOST)
        admin_socket = await host.node_dir(await proxy_of(host, group_id)) / haproxy.ADMIN_SOCKET
        server = haproxy.server_name(repoint.new.port)
        backends = haproxy.group_primary_backends(group_id, None)  # it follows groups without TLS only
        master = admin_socket.parent / haproxy.MASTER_SOCKET  # old workers' sessions too
        await asyncio.to_thread(haproxy.set_primary, admin_socket, server, backends, master)
        log.info("%s: endpoint moved to %s:%d (%s)", group_id, repoint.new.host, repoint.new.port, repoint.reason)
        self._wake((GROUP, group_id))
