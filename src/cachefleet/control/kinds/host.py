"""Hosts as a reconciled kind: is the host's agent answering, since when not, and what is left on it.

Each pass asks the host (``Host.info``) and records, through the one writer, the status that follows
(``model.hosts.computed_state``): ``active``; ``unreachable`` from the first look that fails;
``lost`` once it has not answered for ``lost_after`` seconds, after which the groups and clusters with
nodes there place them again elsewhere (their planners read the status); ``draining`` until no node is
placed on it, then ``drained``. When its state changes, every group and cluster with a process there
is woken, so that a replacement or a move starts at once rather than at the next resync.

A host that answers is cleaned of what no longer belongs there: a node whose resource was deleted, or
whose status places it on another host (it was replaced while this host was lost, or it moved off
it). That is how a lost host's stale nodes go when it comes back; its agent restarts a former Redis
primary only as a replica of the primary the Sentinels name (``cachefleet agent``), so a stale node
is never a second primary meanwhile. A host asked to be removed goes once no node is placed on it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from cachefleet.control.hosts import Drivers
from cachefleet.control.kinds.base import Services, WorkerKind
from cachefleet.hosts.base import Host
from cachefleet.model.errors import Retry
from cachefleet.model.hosts import LOCAL_HOST, HostState, computed_state
from cachefleet.model.nodes import SHARED_SENTINELS_DIR, NodeKey, proxy_index
from cachefleet.store import statuses
from cachefleet.store.hosts import node_placements, nodes_on
from cachefleet.store.kinds import CLUSTERS, GROUPS, HOSTS
from cachefleet.store.records import CLUSTER, GROUP
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

GROUP_PREFIX = "rg."

_TOLD = {
    HostState.ACTIVE: "Host {id} is active",
    HostState.UNREACHABLE: "Host {id} is unreachable: {message}",
    HostState.LOST: "Host {id} is lost: its nodes are replaced on other hosts",
    HostState.DRAINED: "Host {id} is drained: no node runs on it",
}


# How often a host is looked at: nothing tells the control plane that an agent went silent, and the
# periodic resync is only a slow safety net (``control.loop``), so each host keeps its own beat (an
# ``info`` and a node listing: hosts are few). An unreachable host is looked at again when it would
# count as lost, if that comes sooner.
CHECK_INTERVAL = 1.0
# Looking for stale nodes lists every node directory on the host and reads the record of each: at
# every beat that cost the server CPU in proportion to the fleet (a quarter of a core at 200 idle
# groups). Leftovers wait this long, except on a host coming back from unreachable or lost, whose
# leftovers (members replaced elsewhere meanwhile) go at once.
CLEAN_INTERVAL = 30.0


class HostKind(WorkerKind):
    records = HOSTS

    def __init__(self, services: Services, drivers: Drivers, *, lost_after: float) -> None:
        self._services = services
        self._store = services.store
        self._drivers = drivers
        self._lost_after = lost_after
        self._cleaned: dict[str, datetime] = {}  # host id -> when its stale nodes were last looked for

    async def work(self, resource_id: str) -> float | None:
        host = HOSTS.find(self._store, resource_id)
        if host is None:
            return None
        spec, status = host.spec, host.status
        driver = self._drivers.get(spec.id)
        now = self._services.clock()
        message = ""
        info = None
        try:
            info = await driver.info()
        except Retry as exc:
            message = exc.reason
        reachable = info is not None
        since = None if reachable else (status.unreachable_since or now.isoformat())
        lost = since is not None and (now - datetime.fromisoformat(since)).total_seconds() >= self._lost_after
        removed: list[NodeKey] = []
        last = self._cleaned.get(spec.id)
        back = status.unreachable_since is not None or status.status is HostState.LOST
        if reachable and (back or last is None or (now - last).total_seconds() >= CLEAN_INTERVAL):
            removed = await self._clean(spec.id, driver)
            self._cleaned[spec.id] = now
        placed = nodes_on(self._store, spec.id)
        if spec.removing and placed == 0 and (reachable or lost or status.status is HostState.JOINING):
            self._remove(spec.id)
            return None
        state = computed_state(status.status, draining=spec.draining, reachable=reachable, lost=lost,
                               has_nodes=placed > 0)  # fmt: skip
        new = replace(
            status,
            status=state,
            unreachable_since=since,
            message=message,
            nodes=placed,
            agent_version=info.agent_version if info is not None else status.agent_version,
            reported_memory_bytes=info.memory_bytes if info is not None else status.reported_memory_bytes,
        )
        with self._store.transaction():
            if not statuses.write(self._store, HOSTS, spec.id, new):
                return None
            for key in removed:
                self._services.event(spec.id, HOSTS.name, f"Removed stale node {key} from host {spec.id}")
            if state is not status.status and state in _TOLD:
                self._services.event(spec.id, HOSTS.name, _TOLD[state].format(id=spec.id, message=message))
        if state is not status.status:
            log.warning("host %s: %s -> %s %s", spec.id, status.status, state, message)
            self._wake_users(spec.id)
        if since is not None and not lost:
            due = self._lost_after - (now - datetime.fromisoformat(since)).total_seconds()
            return max(0.0, min(CHECK_INTERVAL, due))
        return CHECK_INTERVAL

    async def _clean(self, host_id: str, driver: Host) -> list[NodeKey]:
        """Remove what runs on the host but belongs elsewhere or to nothing any more."""
        removed = []
        for key in await driver.nodes():
            if stale(self._store, host_id, key):
                log.warning("host %s: removing stale node %s", host_id, key)
                await driver.remove(key)
                removed.append(key)
        return removed

    def _remove(self, host_id: str) -> None:
        with self._store.transaction():
            self._store.delete(HOSTS.name, host_id)
            self._services.event(host_id, HOSTS.name, f"Host {host_id} removed")
        driver = self._drivers.forget(host_id)
        if driver is not None:
            driver.close()

    def _wake_users(self, host_id: str) -> None:
        for kind, resource_id in users(self._store, host_id):
            self._services.wake((kind, resource_id))


def stale(store: Store, host_id: str, key: NodeKey) -> bool:
    """Whether node ``key`` found on ``host_id`` belongs nowhere, or somewhere else.

    Only what the store says explicitly is stale: a node of a resource that no longer exists, or one
    whose recorded placement (and move) names another host. A node the store does not place yet (a
    creation in flight) is kept.
    """
    if proxy_index(key) is not None:
        # The endpoint proxies belong to the host (the embedded one) and serve the groups' endpoints
        # there; each stops with its last group (``control.proxy``).
        return host_id != LOCAL_HOST
    if key.cluster_id == SHARED_SENTINELS_DIR:
        return False  # the host's own: groups join and leave them, and they stay
    if key.cluster_id.startswith(GROUP_PREFIX):
        group = GROUPS.find(store, key.cluster_id.removeprefix(GROUP_PREFIX))
        if group is None:
            return True
        if key.node_id == "endpoint":
            return host_id != LOCAL_HOST
        placed = group.status.sentinels.get(key.node_id)
        return placed is not None and placed.host != host_id
    cluster = CLUSTERS.find(store, key.cluster_id)
    if cluster is None:
        return True
    node = cluster.status.node(key.node_id)
    if node is None or node.placement is None:
        return False
    return host_id not in {p.host for p in node_placements(node)}


def users(store: Store, host_id: str) -> list[tuple[str, str]]:
    """The groups and standalone clusters with a process placed on ``host_id``."""
    found: dict[tuple[str, str], None] = {}
    for cluster in CLUSTERS.all(store):
        if any(p.host == host_id for n in cluster.status.nodes for p in node_placements(n)):
            group_id = cluster.spec.replication_group_id
            found[(GROUP, group_id) if group_id else (CLUSTER, cluster.spec.id)] = None
    for group in GROUPS.all(store):
        if any(p.host == host_id for p in group.status.sentinels.values()):
            found[(GROUP, group.spec.id)] = None
    return list(found)
