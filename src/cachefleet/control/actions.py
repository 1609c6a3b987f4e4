"""The steps a planner may ask for. Plain values: the executor gives them effect, each idempotently.

Every step on a process names where it runs (``at``: its host, address and AZ, as its status records
it), so the executor gives it effect through that host's driver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cachefleet.engines.acl import AclUser
from cachefleet.engines.sentinel import Timings
from cachefleet.model.nodes import PORT_SLOT, NodeKey, Placement
from cachefleet.store.kinds import Stored

Address = tuple[str, int]


@dataclass(frozen=True)
class AllocatePort:
    """Give the node a port in ``slot`` for life: ``port`` when the store recorded one for it (its
    directory was lost, and a replacement keeps the address clients know), else a free one."""

    node: NodeKey
    at: Placement
    slot: str = PORT_SLOT
    port: int | None = None


@dataclass(frozen=True)
class StartNode:
    """Start the node's process; a Redis replica starts pointed at ``replicaof``, never as a stray master.

    ``replication_id``: a node of a group being created. Before its first start it gets an empty
    dataset stamped with this replication id, the same for every member (``redis.seed_rdb``), so its
    replicas join with a partial resync instead of a full sync: no fork, no RDB sent, nothing to wait
    for. A node that already has data is never seeded.
    """

    node: NodeKey
    at: Placement
    replicaof: Address | None = None
    replication_id: str | None = None


@dataclass(frozen=True)
class RestartNode:
    """Stop the node with its data kept (Redis: SHUTDOWN SAVE) and start it again on a fresh config.

    RebootCacheCluster's step; a Redis replica comes back pointed at ``replicaof``.
    """

    node: NodeKey
    at: Placement
    replicaof: Address | None = None


@dataclass(frozen=True)
class ConfigSet:
    """Set parameters that take effect at once on a running Redis node (CONFIG SET), best effort."""

    node: NodeKey
    at: Placement
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReplicaOf:
    node: NodeKey
    at: Placement
    primary: Address | None  # None: REPLICAOF NO ONE


@dataclass(frozen=True)
class Switchover:
    """A planned change of primary (automatic failover off): pause writes, catch up, swap roles."""

    old: Address
    new: Address


@dataclass(frozen=True)
class EndpointInputs:
    """What a group's endpoint config is rendered from.

    Only the node set is compared on each pass (``to_json``): a new primary is routed to through the
    admin socket, since a reload would also cut, ten seconds later, the sessions that clients had
    already moved to the new primary. The config is always rendered with the current primary, so a
    reload or a restart never routes back to an old one.
    """

    nodes: tuple[Address, ...]
    primary: Address
    # TLS behind the endpoint: "" (none), "preferred" or "required"; with preferred, each node's
    # plain-text port beside its TLS one (``(TLS port, plain port)``, in node order).
    tls: str = ""
    plain_ports: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> str:
        """The canonical text kept beside the running config: the node set (and TLS, when on)."""
        data: dict[str, object] = {"nodes": [list(n) for n in self.nodes]}
        if self.tls:
            data.update(tls=self.tls, plain=[list(p) for p in self.plain_ports])
        return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class StartEndpoint:
    node: NodeKey
    at: Placement
    inputs: EndpointInputs


@dataclass(frozen=True)
class ReloadEndpoint:
    node: NodeKey
    at: Placement
    inputs: EndpointInputs


@dataclass(frozen=True)
class SetEndpointPrimary:
    """Only the primary's server takes writes; every other one is put in maintenance, sessions cut."""

    node: NodeKey
    at: Placement
    server: str


@dataclass(frozen=True)
class StartSentinel:
    node: NodeKey
    at: Placement
    group_id: str
    primary: Address


@dataclass(frozen=True)
class StartSharedSentinel:
    """Start one of the host's shared Sentinels if it is not running: on its own file when it has one
    (Sentinel rewrote it with every group's monitor), else on a first file that watches nothing. Any
    group that uses it may ask; the host starts one process (``Host.start`` is idempotent)."""

    node: NodeKey
    at: Placement


@dataclass(frozen=True)
class JoinSentinel:
    """A group joins a shared Sentinel: ``SENTINEL MONITOR`` of its primary (unless monitored) and
    ``SENTINEL SET`` of its settings and scripts (``engines.sentinel.join``)."""

    node: NodeKey
    at: Placement
    group_id: str
    primary: Address


@dataclass(frozen=True)
class LeaveSentinel:
    """A group leaves a shared Sentinel: ``SENTINEL REMOVE`` (deleted, or automatic failover off)."""

    node: NodeKey
    at: Placement
    group_id: str


@dataclass(frozen=True)
class ResetSentinel:
    """One shared Sentinel forgets the replicas and peers of the group that are gone (a removed
    member, the group's former Sentinels of its own): the group leaves it and joins it again in one
    exchange (``engines.sentinel.join``). Not ``SENTINEL RESET``, after which Sentinel lists the
    replicas again only at its next INFO of the primary, up to 10 s later."""

    node: NodeKey
    at: Placement
    group_id: str
    primary: Address


@dataclass(frozen=True)
class AnnounceSentinels:
    """Publish each Sentinel's hello on the group's primary, so that its peers list it at once rather
    than at its next hello (every 2 s): ``(address, port, id)`` per Sentinel."""

    group_id: str
    primary: Address
    sentinels: tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class SentinelFailover:
    """TestFailover: Sentinel promotes a replica while the primary still lives, so writes on the
    primary are paused first, until its replicas have every acknowledged byte: whatever it accepted
    after the promotion would be thrown away when it rejoins as a replica."""

    node: NodeKey
    at: Placement
    group_id: str
    primary: Address


@dataclass(frozen=True)
class DiscoveryInputs:
    """What a Memcached cluster's configuration endpoint serves: its config version and its members
    (node id, port), in node order. ``to_json`` is kept beside the running endpoint and compared on
    every pass: any difference is a reload (new file, SIGHUP), never a restart."""

    version: int
    members: tuple[tuple[str, int], ...]

    def to_json(self) -> str:
        return json.dumps({"members": [list(m) for m in self.members], "version": self.version}, sort_keys=True)


@dataclass(frozen=True)
class StartConfigEndpoint:
    node: NodeKey
    at: Placement
    cluster_id: str
    inputs: DiscoveryInputs


@dataclass(frozen=True)
class ReloadConfigEndpoint:
    node: NodeKey
    at: Placement
    cluster_id: str
    inputs: DiscoveryInputs


@dataclass(frozen=True)
class LiveParameters:
    """Memcached parameters that a running node changes without a restart (``slabs automove``, ...)."""

    node: NodeKey
    at: Placement
    commands: tuple[str, ...]


@dataclass(frozen=True)
class RestartSentinel:
    """Stop a Sentinel and start it on a config rendered afresh: its TLS changed (a group moving
    between TLS modes), or its certificate is due (Sentinel reads it only at start)."""

    node: NodeKey
    at: Placement
    group_id: str
    primary: Address


@dataclass(frozen=True)
class TuneSentinel:
    """``SENTINEL DEBUG`` periods on a running Sentinel (runtime only, ``engines.sentinel.Timings``):
    the ping period short while it cannot reach a peer that runs, so it connects within a tenth of a
    second of the peer listening instead of a second, Sentinel's own default once it is linked; the
    ask period always short (``engines.sentinel.ASK_PERIOD_MS`` says why)."""

    node: NodeKey
    at: Placement
    timings: Timings


@dataclass(frozen=True)
class SyncAcl:
    """Give a running node the group's application users live (``ACL SETUSER ... reset`` and
    ``DELUSER``: authenticated connections stay), then its marker (``engines.acl.marker``).

    ``present`` is what ``ACL USERS`` answered. The users carry password hashes only, and are kept
    out of the action's text all the same."""

    node: NodeKey
    at: Placement
    users: tuple[AclUser, ...] = field(repr=False)
    present: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class SetTransport:
    """Move a running node to its group's TLS mode live: ``CONFIG SET`` of its ports and TLS files
    (``engines.redis.transport_values``); its main port keeps its number and changes role.
    ``current``: its ``port`` and ``tls-port`` as the pass saw them."""

    node: NodeKey
    at: Placement
    current: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RenewCertificate:
    """Replace a running node's certificate and make it read the new one (no restart, sessions kept)."""

    node: NodeKey
    at: Placement


@dataclass(frozen=True)
class RemoveNode:
    node: NodeKey
    at: Placement


@dataclass(frozen=True)
class DetachMember:
    """A retained primary leaves its deleted group and lives on as a standalone cluster."""

    cluster_id: str


@dataclass(frozen=True)
class DeleteRecord:
    kind: str
    id: str


Action = (
    AllocatePort
    | StartNode
    | RestartNode
    | ConfigSet
    | ReplicaOf
    | Switchover
    | StartEndpoint
    | ReloadEndpoint
    | SetEndpointPrimary
    | StartSentinel
    | StartSharedSentinel
    | JoinSentinel
    | LeaveSentinel
    | ResetSentinel
    | AnnounceSentinels
    | SentinelFailover
    | StartConfigEndpoint
    | ReloadConfigEndpoint
    | LiveParameters
    | RestartSentinel
    | TuneSentinel
    | SyncAcl
    | SetTransport
    | RenewCertificate
    | RemoveNode
    | DetachMember
    | DeleteRecord
)


@dataclass(frozen=True)
class Event:
    source_id: str
    source_type: str  # cache-cluster | replication-group
    message: str


ResourceKey = tuple[str, str]  # (kind, resource id): a record of the store, a key of the reconciler's queue
Status = Stored  # any kind's status (GroupStatus, ClusterStatus...): the writer checks it against its table


@dataclass(frozen=True)
class Plan:
    """What one pass decided: steps to take now, and the statuses and events to record after them.

    ``blocked``: what keeps the resource from converging that only time can change (a node's port
    held by a process that is not ours). The loop records these events once and looks again with
    backoff, rather than at once.

    ``revisit``: converged, but something comes due by itself (a certificate's renewal): the loop
    looks again after this many seconds, since no event will say so and the resync is slow.
    """

    actions: tuple[Action, ...] = ()
    statuses: dict[ResourceKey, Status] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    converged: bool = False
    blocked: tuple[Event, ...] = ()
    revisit: float | None = None
