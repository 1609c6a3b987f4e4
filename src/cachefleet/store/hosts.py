"""Hosts, subnets and cache subnet groups as the API and the reconciler read them from the store.

The embedded host is implicit (``model.hosts``): its spec is the installation's settings (address
and AZs), passed in by the caller; a record of it is stored only once an operator changes it (a
drain), and only its drain flag and status are read from there. Registered hosts are records.

Placement (``model.placement``) needs each host's load: the nodes whose statuses place them there
(a node moving to a host counts on both), and the memory of their node types (``memory_of``, from
``engines.nodetypes``, passed in: the store does not know engines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from cachefleet.model.errors import CacheSubnetGroupNotFound
from cachefleet.model.hosts import (
    DEFAULT_SUBNET_GROUP,
    LOCAL_HOST,
    PLACEABLE,
    CacheSubnetGroupSpec,
    HostSpec,
    HostState,
    HostStatus,
    Subnet,
    local_subnet,
)
from cachefleet.model.nodes import Placement
from cachefleet.model.placement import Room
from cachefleet.model.status import NodeStatus
from cachefleet.store.kinds import CLUSTERS, GROUPS, HOSTS, SUBNET_GROUPS, Resource
from cachefleet.store.sqlite import Store

Host = Resource[HostSpec, HostStatus]
EPOCH = datetime(1970, 1, 1)


def local_spec(address: str, zones: Iterable[str]) -> HostSpec:
    """The embedded host as the settings describe it: one subnet per AZ of the installation."""
    return HostSpec(LOCAL_HOST, address, tuple(Subnet(local_subnet(z), z) for z in zones), EPOCH)


def all_hosts(store: Store, local: HostSpec) -> list[Host]:
    """Every host: the embedded one first, then the registered ones in the order they were added."""
    stored = {h.spec.id: h for h in HOSTS.all(store)}
    found = stored.pop(LOCAL_HOST, None)
    if found is None:
        embedded = Resource(local, HostStatus(HostState.ACTIVE), 0)
    else:
        embedded = Resource(replace(local, draining=found.spec.draining), found.status, found.generation)
    return [embedded, *stored.values()]


def find_host(store: Store, local: HostSpec, host_id: str) -> Host | None:
    return next((h for h in all_hosts(store, local) if h.spec.id == host_id.lower()), None)


def subnets(store: Store, local: HostSpec) -> dict[str, str]:
    """Every subnet there is (subnet id -> AZ), from the hosts that are not being removed."""
    found: dict[str, str] = {}
    for host in all_hosts(store, local):
        if not host.spec.removing:
            found.update((s.id, s.zone) for s in host.spec.subnets)
    return found


# -- cache subnet groups -----------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetGroup:
    spec: CacheSubnetGroupSpec
    is_default: bool = False


def find_subnet_group(store: Store, local: HostSpec, name: str) -> SubnetGroup | None:
    lowered = name.lower()
    if lowered == DEFAULT_SUBNET_GROUP:
        every = tuple(sorted(subnets(store, local)))
        return SubnetGroup(CacheSubnetGroupSpec(DEFAULT_SUBNET_GROUP, "Default CacheSubnetGroup", every), True)
    stored = SUBNET_GROUPS.find(store, lowered)
    return SubnetGroup(stored.spec) if stored is not None else None


def get_subnet_group(store: Store, local: HostSpec, name: str) -> SubnetGroup:
    group = find_subnet_group(store, local, name)
    if group is None:
        raise CacheSubnetGroupNotFound(f"Cache subnet group {name} not found.")
    return group


def all_subnet_groups(store: Store, local: HostSpec) -> list[SubnetGroup]:
    default = find_subnet_group(store, local, DEFAULT_SUBNET_GROUP)
    assert default is not None
    return [default, *(SubnetGroup(g.spec) for g in SUBNET_GROUPS.all(store))]


def allowed_subnets(store: Store, name: str | None) -> frozenset[str] | None:
    """The subnets a resource with subnet group ``name`` may run on; None: every one (``default``).

    A stored group that has gone (it cannot be deleted while used) allows nothing.
    """
    if name is None or name.lower() == DEFAULT_SUBNET_GROUP:
        return None
    stored = SUBNET_GROUPS.find(store, name)
    return frozenset(stored.spec.subnet_ids) if stored is not None else frozenset()


def subnet_group_users(store: Store, name: str) -> list[str]:
    """Ids of the replication groups and standalone clusters created in subnet group ``name``."""
    lowered = name.lower()
    users = [g.spec.id for g in GROUPS.all(store) if (g.spec.subnet_group or DEFAULT_SUBNET_GROUP) == lowered]
    users += [
        c.spec.id
        for c in CLUSTERS.all(store)
        if not c.spec.replication_group_id and (c.spec.subnet_group or DEFAULT_SUBNET_GROUP) == lowered
    ]
    return users


def subnets_in_use(store: Store, local: HostSpec, name: str) -> set[str]:
    """The subnets of group ``name`` where its users' nodes run now (a node's subnet: its host's
    subnet in the node's AZ)."""
    users = set(subnet_group_users(store, name))
    hosts = {h.spec.id: h.spec for h in all_hosts(store, local)}
    used: set[str] = set()
    for cluster in CLUSTERS.all(store):
        if cluster.spec.id not in users and cluster.spec.replication_group_id not in users:
            continue
        for node in cluster.status.nodes:
            for placement in node_placements(node):
                host = hosts.get(placement.host)
                used |= {s.id for s in host.subnets if s.zone == placement.zone} if host else set()
    return used


# -- what each host carries --------------------------------------------------------------------


def node_placements(node: NodeStatus) -> list[Placement]:
    """The hosts a node occupies: where it runs and, while it moves, where it is going."""
    return [p for p in (node.placement, node.moving_to) if p is not None]


def load(store: Store, memory_of: Callable[[str], int]) -> dict[str, tuple[int, int]]:
    """host id -> (cache nodes, bytes of node-type memory) placed on it (``node_placements``: where a
    node runs and where it is moving to). SQLite reads the node types and hosts out of the records:
    every creation asks this, and decoding every cluster cost it time in proportion to the fleet."""
    found: dict[str, tuple[int, int]] = {}
    for path in ("placement.host", "moving_to.host"):
        for node_type, host in store.json_pairs(CLUSTERS.name, "node_type", "nodes", path):
            nodes, used = found.get(host, (0, 0))
            found[host] = (nodes + 1, used + memory_of(node_type))
    return found


def rooms(store: Store, local: HostSpec, memory_of: Callable[[str], int]) -> list[Room]:
    """Every host as placement sees it, with what it carries now."""
    carried = load(store, memory_of)
    found = []
    for host in all_hosts(store, local):
        spec = host.spec
        nodes, memory = carried.get(spec.id, (0, 0))
        placeable = host.status.status in PLACEABLE and not spec.draining and not spec.removing
        subnet_zones = {s.id: s.zone for s in spec.subnets}
        max_memory = spec.memory_bytes if spec.memory_bytes is not None else host.status.reported_memory_bytes
        found.append(Room(spec.id, spec.address, subnet_zones, placeable, nodes, memory, spec.max_nodes, max_memory))
    return found


def nodes_on(store: Store, host_id: str) -> int:
    """How many cache nodes the statuses place on ``host_id`` (moving ones included, as
    ``node_placements`` counts them). SQLite reads the hosts out of the statuses: each host's beat
    asks this, and decoding every cluster once a second cost CPU in proportion to the fleet."""
    return sum(
        host == host_id
        for path in ("placement.host", "moving_to.host")
        for host in store.json_values(CLUSTERS.name, "status", path, each="nodes")
    )


def recorded_ports(store: Store) -> set[int]:
    """Every port recorded for a node, on any host, and for a group endpoint: none is handed to another
    node, even while its own node's directory is lost (the replacement takes it back).

    Port numbers stay distinct across hosts too: a group's endpoint names its servers by port
    (``engines/haproxy.server_name``), and its members may run on several hosts."""
    # SQLite reads the fields out of the statuses; no record is decoded (a creation asks this,
    # whatever the size of the fleet).
    ports = set(store.json_values(CLUSTERS.name, "status", "port", each="nodes"))
    for key in ("primary_endpoint_port", "reader_endpoint_port"):
        ports |= set(store.json_values(GROUPS.name, "status", key))
    return {int(p) for p in ports if p}
