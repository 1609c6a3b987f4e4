"""Which engine processes a resource runs, and how each is named: the process layout of the fleet.

A cache cluster's nodes are ``<cluster id>/0001``, ``0002``...; a replication group member is a
cache cluster of one node (``0001``). The processes that serve a whole replication group rather than
one member (its Sentinels and the HAProxy process behind its primary and reader endpoints) live
under ``rg.<group id>``, and a Memcached cluster's configuration endpoint under ``cfg.<cluster id>``,
which no cache cluster id can collide with: cluster ids never contain a dot.

Every ``NodeKey`` is built by the functions here, never by hand elsewhere. A key names a process,
not where it runs: its ``Placement`` (host, address, zone) is recorded in the status and carried by
the actions, so the same member keeps its key when it is replaced on another host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cachefleet.model.ids import node_id

MEMBER_NODE_ID = "0001"  # a replication group's member is a cache cluster of one node
PORT_SLOT = "port"  # a process's main port: a node's, a Sentinel's, the primary endpoint's
READER_SLOT = "reader"  # the reader endpoint's port, the group endpoint's second slot
SENTINELS = 3  # one per AZ, quorum 2


@dataclass(frozen=True)
class NodeKey:
    """One process of the fleet: node ``node_id`` of ``cluster_id`` (a cache cluster, or ``rg.<id>``)."""

    cluster_id: str
    node_id: str

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.node_id}"


@dataclass(frozen=True)
class Placement:
    """Where a process runs: its host, the address it binds to (its host's), and the AZ it serves.

    Recorded in statuses (a node's in its cluster's, a Sentinel's in its group's) and carried by
    every action that touches the process, so configs, files, admin sockets and observations all go
    through the host that runs it. The port is recorded beside it (it comes from that host).
    """

    host: str
    address: str
    zone: str

    def to_json(self) -> dict[str, str]:
        return {"host": self.host, "address": self.address, "zone": self.zone}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Placement:
        return cls(str(data["host"]), str(data["address"]), str(data["zone"]))


def node_key(cluster_id: str, node: str) -> NodeKey:
    return NodeKey(cluster_id, node)


def cluster_node_keys(cluster_id: str, count: int) -> list[NodeKey]:
    """The nodes of a cache cluster of ``count`` nodes: ``0001`` to ``count``."""
    return [NodeKey(cluster_id, node_id(i)) for i in range(1, count + 1)]


def member_key(cluster_id: str) -> NodeKey:
    """The one node of a replication group's member cluster."""
    return NodeKey(cluster_id, MEMBER_NODE_ID)


def group_dir_id(group_id: str) -> str:
    return f"rg.{group_id}"


def endpoint_key(group_id: str) -> NodeKey:
    """The group's endpoint: its ports (primary endpoint in slot ``port``, reader endpoint in
    ``reader``) and what the host's endpoint proxy (``PROXY_KEY``) serves for it. Older versions ran
    one HAProxy per group here; the proxy takes such a group over (``control.proxy``)."""
    return NodeKey(group_dir_id(group_id), "endpoint")


def endpoint_group(key: NodeKey) -> str | None:
    """The group whose endpoint ``key`` is (``endpoint_key``); None for any other process."""
    prefix = group_dir_id("")
    if key.node_id != "endpoint" or not key.cluster_id.startswith(prefix):
        return None
    return key.cluster_id.removeprefix(prefix)


# The host's endpoint proxies: HAProxy processes serving the groups' endpoints on that host, each up
# to a number of groups (docs/decisions.md, "The shared endpoint proxy"). "host." holds a dot, so no cache
# cluster id can collide with it. The first one keeps the name it had when a host ran one proxy.
PROXY_KEY = NodeKey("host.endpoints", "haproxy")


def proxy_key(index: int) -> NodeKey:
    """The host's endpoint proxy ``index`` (from 1): ``haproxy``, then ``haproxy-2``..."""
    return PROXY_KEY if index == 1 else NodeKey(PROXY_KEY.cluster_id, f"{PROXY_KEY.node_id}-{index}")


def proxy_index(key: NodeKey) -> int | None:
    """The index of an endpoint proxy's key (``proxy_key``); None for any other process."""
    if key.cluster_id != PROXY_KEY.cluster_id:
        return None
    if key.node_id == PROXY_KEY.node_id:
        return 1
    number = key.node_id.removeprefix(f"{PROXY_KEY.node_id}-")
    return int(number) if number.isdigit() and number != key.node_id and int(number) > 1 else None


def config_endpoint_key(cluster_id: str) -> NodeKey:
    """A Memcached cluster's configuration endpoint process (auto discovery), under ``cfg.<cluster id>``."""
    return NodeKey(f"cfg.{cluster_id}", "endpoint")


def sentinel_keys(group_id: str, count: int = SENTINELS) -> list[NodeKey]:
    return [NodeKey(group_dir_id(group_id), f"sentinel-{i}") for i in range(1, count + 1)]


# The embedded host's shared Sentinels: sets of three, each watching the primaries of up to a set's
# size of groups that have no in-transit encryption (docs/decisions.md, "Shared Sentinels"). A node
# id of this prefix in a group's recorded Sentinels names one of them (``shared-1`` to ``shared-3``
# the first set, ``shared-4`` to ``shared-6`` the second...); any other (``sentinel-1``...) a
# Sentinel of the group's own.
SHARED_SENTINELS_DIR = "sentinels.shared"  # no cluster id contains a dot
SHARED_PREFIX = "shared-"


def shared_sentinel_keys(index: int = 1) -> list[NodeKey]:
    """The three Sentinels of shared set ``index`` (from 1)."""
    first = (index - 1) * SENTINELS
    return [NodeKey(SHARED_SENTINELS_DIR, f"{SHARED_PREFIX}{first + i}") for i in range(1, SENTINELS + 1)]


def is_shared(node_id: str) -> bool:
    return node_id.startswith(SHARED_PREFIX)


def shared_set(node_id: str) -> int:
    """The set a shared Sentinel's node id belongs to (``shared-4`` is in set 2)."""
    return (int(node_id.removeprefix(SHARED_PREFIX)) - 1) // SENTINELS + 1


def first_with_room(loads: Mapping[int, int], size: int) -> int:
    """Pure: the shared process (from 1) a new group goes to, a Sentinel set or an endpoint proxy:
    the first one serving fewer than ``size`` groups (one emptied by deletions fills again before a
    new one starts), or the next one when all are full."""
    index = 1
    while loads.get(index, 0) >= size:
        index += 1
    return index


def sentinel_key(group_id: str, node_id: str) -> NodeKey:
    """The Sentinel a group records as ``node_id``: a shared one, or one of its own."""
    return NodeKey(SHARED_SENTINELS_DIR if is_shared(node_id) else group_dir_id(group_id), node_id)


def group_sentinel_keys(group_id: str, placed: Iterable[str]) -> list[NodeKey]:
    """The Sentinels a group records (``placed``: their node ids), shared ones first (a group moving
    from its own to the shared ones records both until the shared ones watch it); its own three when
    it records none yet."""
    ids = sorted(placed, key=lambda i: (not is_shared(i), i))
    return [sentinel_key(group_id, i) for i in ids] if ids else sentinel_keys(group_id)
