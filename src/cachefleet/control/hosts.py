"""The driver of each host, and what a pass knows of the hosts: their states and, when it must place
a node, their room.

``Drivers`` gives the ``Host`` a placement names: the embedded host's driver, built once, and one
driver per registered host, built on first use from its record by ``connect`` (the composition root
passes one that makes a ``RemoteHost`` speaking to the host's agent). A host removed from the store
is forgotten.

``HostMap`` is the part of the store a planner reads about hosts: each host's state (a node on a
``lost`` host is replaced, one on an ``unreachable`` host left alone, one on a ``draining`` host moved
off it), the embedded host's address (the group endpoints live there until the endpoint wiring),
and, when the pass has something to place, every host's room (``model.placement``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.hosts.base import Host
from cachefleet.model.errors import Retry
from cachefleet.model.hosts import LOCAL_HOST, OUT_OF_REACH, HostSpec, HostState
from cachefleet.model.nodes import Placement, first_with_room, is_shared, shared_set
from cachefleet.model.placement import Room
from cachefleet.model.status import ClusterStatus
from cachefleet.store import hosts as stored_hosts
from cachefleet.store.kinds import GROUPS, HOSTS
from cachefleet.store.sqlite import Store

Connect = Callable[[HostSpec], Host]


class Drivers:
    def __init__(self, store: Store, local: Host, connect: Connect | None = None) -> None:
        self._store = store
        self._local = local
        self._connect = connect
        self._drivers: dict[str, tuple[HostSpec, Host]] = {}
        self._lock = threading.Lock()

    @property
    def local(self) -> Host:
        return self._local

    def get(self, host_id: str) -> Host:
        if host_id == LOCAL_HOST:
            return self._local
        with self._lock:
            known = self._drivers.get(host_id)
        if known is not None:
            return known[1]
        record = HOSTS.find(self._store, host_id)
        if record is None:
            raise Retry(f"host {host_id} is not registered")
        if self._connect is None:
            raise Retry(f"host {host_id} has an agent, and this control plane speaks to none")
        with self._lock:
            known = self._drivers.get(host_id)
            if known is None:
                known = (record.spec, self._connect(record.spec))
                self._drivers[host_id] = known
        return known[1]

    def forget(self, host_id: str) -> Host | None:
        """Drop a removed host's driver (the caller closes it if it holds connections)."""
        with self._lock:
            known = self._drivers.pop(host_id, None)
        return known[1] if known is not None else None


def memory_of(node_type: str) -> int:
    return memory_bytes(node_type) or 0


@dataclass(frozen=True)
class HostMap:
    """What a planner knows of the hosts (see the module's docstring)."""

    local: HostSpec
    states: Mapping[str, HostState] = field(default_factory=dict)
    draining: frozenset[str] = frozenset()
    rooms: tuple[Room, ...] = ()  # filled only when the pass has something to place
    subnets: frozenset[str] | None = None  # the resource's cache subnet group's (None: every subnet)
    # Whether new groups join the embedded host's shared Sentinels (``planners.group``); off, each
    # runs Sentinels of its own, as earlier versions did.
    shared_sentinels: bool = True
    # The shared set a group that joins them now takes (``shared_set_to_join``).
    shared_set: int = 1

    def state(self, host_id: str) -> HostState:
        """A host the store no longer knows counts as lost: its nodes are replaced."""
        return self.states.get(host_id, HostState.LOST)

    def reachable(self, placement: Placement | None) -> bool:
        return placement is not None and self.state(placement.host) not in OUT_OF_REACH

    def lost(self, placement: Placement | None) -> bool:
        return placement is not None and self.state(placement.host) is HostState.LOST

    def drains(self, placement: Placement | None) -> bool:
        return placement is not None and placement.host in self.draining

    @property
    def endpoint(self) -> Placement:
        """Where a group's endpoint proxy runs: the embedded host (until the endpoint wiring)."""
        return Placement(LOCAL_HOST, self.local.address, "")

    def legacy(self, zone: str) -> Placement:
        """Where a node recorded before hosts existed runs: the embedded host."""
        return Placement(LOCAL_HOST, self.local.address, zone)


def host_map(store: Store, local: HostSpec, subnet_group: str | None, *, placing: bool) -> HostMap:
    hosts = stored_hosts.all_hosts(store, local)
    return HostMap(
        local=local,
        states={h.spec.id: h.status.status for h in hosts},
        draining=frozenset(h.spec.id for h in hosts if h.spec.draining),
        rooms=tuple(stored_hosts.rooms(store, local, memory_of)) if placing else (),
        subnets=stored_hosts.allowed_subnets(store, subnet_group),
    )


def shared_set_to_join(store: Store, size: int) -> int:
    """The shared Sentinel set a group joining now takes: the first that watches fewer than ``size``
    groups, as the groups record it. A Sentinel rewrites and syncs its whole file on every change
    (each monitor, setting, replica and peer it learns), so a group's joining costs what the set
    already watches: bounded sets keep a creation's cost from growing with the installation
    (docs/decisions.md, "Shared Sentinels")."""
    joined = {
        (group_id, shared_set(node_id))
        for group_id, node_id in store.status_keys(GROUPS.name, "sentinels")
        if is_shared(node_id)
    }
    return first_with_room(Counter(index for _, index in joined), size)


def needs_placing(hosts: HostMap, placements: Iterable[Placement | None]) -> bool:
    """Whether a pass over these placements may place something: one missing, on a lost host, on a
    draining host (it moves off), or being moved."""
    return any(p is None or hosts.lost(p) or hosts.drains(p) for p in placements)


def with_placements(status: ClusterStatus, zones: Sequence[str], local: HostSpec) -> ClusterStatus:
    """A status recorded before hosts existed: its nodes that have a port run on the embedded host."""
    if all(n.placement is not None or n.port is None for n in status.nodes):
        return status
    nodes = []
    for node in status.nodes:
        placed = node
        if node.placement is None and node.port is not None:
            index = int(node.node_id) - 1 if node.node_id.isdigit() else 0
            zone = zones[index] if 0 <= index < len(zones) else (zones[0] if zones else "")
            placed = replace(node, placement=Placement(LOCAL_HOST, local.address, zone))
        nodes.append(placed)
    return replace(status, nodes=tuple(nodes))
