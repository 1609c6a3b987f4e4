"""Planner for a cluster-mode-disabled replication group: one primary, up to five replicas.

Who is primary: with automatic failover on, whatever a majority of the group's Sentinels name; with
it off, the spec (the control plane switches over itself, losing no acknowledged write).

Rules that protect data, each learnt the hard way (docs/architecture.md section 7):
- a replica starts already pointed at the primary, and only once the primary accepts connections;
- a dead primary is not restarted while Sentinel can still promote a replica: restarted with its old
  config it would come back as an empty master and its replicas would copy the emptiness;
- the group is ``available`` only once every replica reports ``master_link_status:up`` (Redis counts
  a replica as connected before it has any data), its endpoint routes to the primary, and, with
  automatic failover, every Sentinel watches the primary and has reached all of its replicas and
  peers (it lists the ones it knows from its config before it has reached them);
- the primary endpoint takes writes only to the node named primary: every other server of its
  backend is kept in maintenance, so a restarted or demoted node never gets a write through it.

Parameters and reboots come last and stay out of the way: CONFIG SET steps go at the end of the
plan (best effort), and a member is restarted for RebootCacheCluster only when nothing else is to be
done and every member serves in its role, one member at a time, a replica pointed at the primary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    DeleteRecord,
    DetachMember,
    EndpointInputs,
    Event,
    Plan,
    ReloadEndpoint,
    RemoveNode,
    ReplicaOf,
    RestartNode,
    SentinelFailover,
    SetEndpointPrimary,
    StartEndpoint,
    StartNode,
    StartSentinel,
    Switchover,
    TuneSentinel,
)
from cachefleet.control.observe import EndpointObservation, GroupObservation, NodeObservation
from cachefleet.control.planners import params, reboot, security
from cachefleet.control.planners.nodes import cluster_status, lifecycle_status, node_status, port_held
from cachefleet.engines.haproxy import ServerState, server_name
from cachefleet.engines.sentinel import ASK_PERIOD_MS, FAST_PING_PERIOD_MS, PING_PERIOD_MS, SentinelView, Timings
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    PORT_SLOT,
    READER_SLOT,
    NodeKey,
    endpoint_key,
    member_key,
    sentinel_keys,
)
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import PRIMARY, REPLICA, ClusterState, ClusterStatus, GroupState, GroupStatus
from cachefleet.model.transit import TransitMode

KIND = "replication-group"
CLUSTER = "cache-cluster"
RECOVERING = f"Recovering cache nodes {MEMBER_NODE_ID}"
RECOVERED = f"Finished recovery for cache nodes {MEMBER_NODE_ID}"
Members = dict[str, tuple[CacheClusterSpec, ClusterStatus]]


@dataclass(frozen=True)
class _View:
    """Facts one pass derives from the observation before deciding anything."""

    primary_id: str
    primary: Address | None
    ports: dict[str, int | None]
    sentinels_watch: bool  # Sentinels run for this group, so they own the roles
    # Every Sentinel watches the primary, lists the replicas and is connected to every peer: one may
    # be restarted (security) without leaving the others short of a quorum.
    sentinels_healthy: bool
    # ... and is connected to every replica, which reports its link to the primary up: a failover
    # could promote any of them now. What ``available`` and TestFailover wait for.
    sentinels_ready: bool
    replication_id: str  # what the members of a new group are seeded with (StartNode.replication_id)


def plan(
    spec: ReplicationGroupSpec,
    status: GroupStatus,
    members: Members,
    observed: GroupObservation,
    *,
    address: str,
    now: str,
    wanted: params.Wanted,
    secure: security.Wanted,
) -> Plan:
    if spec.deleting:
        return _plan_delete(spec, list(members), status.primary_cluster_id or spec.primary_cluster_id, observed)
    view = _view(spec, status, members, observed, address)
    actions: list[Action] = []
    group_status = replace(status, primary_cluster_id=view.primary_id)
    events = _failover_events(spec, status, view.primary_id)
    recovering = dict.fromkeys(status.recovering)
    if events and status.primary_cluster_id in members:
        # ElastiCache reports the old primary as recovering until it is back as a synced replica.
        recovering[status.primary_cluster_id] = None
        events.append(Event(status.primary_cluster_id, CLUSTER, RECOVERING))

    switch = _switchover(spec, status, observed, view, address)
    if switch is not None:
        actions.append(switch)
    else:
        for cluster_id, (_, previous) in members.items():
            action = _converge_member(
                cluster_id, previous, view, observed, creating=status.status == GroupState.CREATING
            )
            if action is None:
                continue
            actions.append(action)
            if isinstance(action, StartNode) and _was_serving(previous) and cluster_id not in recovering:
                recovering[cluster_id] = None
                events.append(Event(cluster_id, CLUSTER, RECOVERING))

    moment = datetime.fromisoformat(now)
    # Users, TLS and certificates of the running members first: a move between TLS modes changes
    # the nodes' ports before the endpoint is reloaded for them (docs/security.md).
    secured = security.nodes({member_key(m): observed.nodes[m] for m in members}, secure, moment)
    actions += secured.actions
    endpoint_actions = _converge_endpoint(spec, status, observed, view, address, mode=secure.mode)
    actions += endpoint_actions
    actions += _converge_sentinels(spec, observed, view, members)
    sentinel_actions: tuple[Action, ...] = ()
    if spec.automatic_failover:
        sentinel_actions = security.sentinels(
            observed.sentinels,
            secure,
            spec.id,
            view.primary,
            nodes_moved=secured.transport,
            healthy=view.sentinels_healthy,
            now=moment,
        )
        actions += sentinel_actions
    if (
        spec.failover_requests > status.failovers_done
        and view.sentinels_ready
        and _all_nodes_ready(members, observed, view)
    ):
        assert view.primary is not None  # sentinels_ready says they all watch it
        actions.append(SentinelFailover(sentinel_keys(spec.id)[0], spec.id, view.primary))
        group_status = replace(group_status, failovers_done=spec.failover_requests)

    for cluster_id in list(recovering):
        obs = observed.nodes.get(cluster_id)
        if obs is None or (obs.serving and _in_role(obs, is_primary=False, primary=view.primary, link=True)):
            del recovering[cluster_id]
            if obs is not None:
                events.append(Event(cluster_id, CLUSTER, RECOVERED))
    group_status = replace(group_status, recovering=tuple(recovering))
    statuses = _member_statuses(members, observed, view, recovering, now)
    for cluster_id, new in statuses.items():
        events += _member_events(cluster_id, members[cluster_id][1], new, status.status)
    config_actions = _parameters(members, observed, wanted, statuses, events)
    quiet = (
        not actions
        and not config_actions
        and _all_nodes_ready(members, observed, view)
        and _endpoint_ready(observed.endpoint, view)
    )
    actions += _reboots(members, observed, view, statuses, events, may_restart=quiet)
    actions += config_actions
    all_ready = (
        _all_nodes_ready(members, observed, view)
        and _endpoint_ready(observed.endpoint, view)
        and (view.sentinels_ready or not spec.automatic_failover)
    )
    if all_ready and secured.in_sync and not secured.actions and not endpoint_actions and not sentinel_actions:
        # Every node runs the wanted users and TLS mode, the endpoint and Sentinels follow it.
        group_status = replace(
            group_status,
            security_done=spec.security.version,
            transit_mode=spec.security.mode_text,
            user_group_ids=spec.security.user_group_ids,
            acl_fingerprint=secure.fingerprint,
        )
    # Setting a Sentinel's periods (its ping period back to its default) does not hold the group up.
    settled = all(isinstance(a, TuneSentinel) for a in actions)
    group_status = replace(
        group_status,
        status=lifecycle_status(status.status, all_ready and settled),
        failover_active=spec.automatic_failover and (status.failover_active or view.sentinels_ready),
        # Kept while the endpoint has no port on its host (its directory was lost): it gets them back.
        primary_endpoint_port=observed.endpoint.port or status.primary_endpoint_port,
        reader_endpoint_port=observed.endpoint.reader_port or status.reader_endpoint_port,
    )
    events += _lifecycle_events(spec, status, group_status)
    return Plan(
        actions=tuple(actions),
        statuses={(KIND, spec.id): group_status, **{(CLUSTER, c): s for c, s in statuses.items()}},
        events=tuple(events),
        converged=all_ready
        and not actions
        and spec.failover_requests <= group_status.failovers_done
        and all(m.reboot_requests <= statuses[c].reboots_done for c, (m, _) in members.items()),
        blocked=_blocked(observed),
        revisit=security.next_renewal(
            [*(n.certificate for n in observed.nodes.values()), *(s.certificate for s in observed.sentinels.values())],
            moment,
        ),
    )


def _blocked(observed: GroupObservation) -> tuple[Event, ...]:
    """Members that keep their port and wait, because a process that is not theirs holds it."""
    return tuple(
        Event(cluster_id, CLUSTER, port_held(cluster_id, MEMBER_NODE_ID, obs.port))
        for cluster_id, obs in observed.nodes.items()
        if obs.port_taken
    )


def _reboots(
    members: Members,
    observed: GroupObservation,
    view: _View,
    statuses: dict[str, ClusterStatus],
    events: list[Event],
    *,
    may_restart: bool,
) -> list[Action]:
    """RebootCacheCluster of members: one member restarted at a time, only while all is quiet."""
    actions: list[Action] = []
    busy = any(s.restarting for _, s in members.values())
    for cluster_id, (member, previous) in members.items():
        obs = observed.nodes[cluster_id]
        is_primary = cluster_id == view.primary_id
        ready = obs.serving and _in_role(obs, is_primary=is_primary, primary=view.primary, link=True)
        allowed = may_restart and not busy and (is_primary or view.primary is not None)
        taken = reboot.step(member, previous, {MEMBER_NODE_ID: ready}, may_restart=allowed)
        if taken is None:
            continue
        if taken.restart is not None:
            busy = True
            actions.append(RestartNode(member_key(cluster_id), None if is_primary else view.primary))
        statuses[cluster_id] = reboot.record(statuses[cluster_id], taken, member.reboot_requests)
        events += [Event(cluster_id, CLUSTER, m) for m in taken.events]
    return actions


def _parameters(
    members: Members,
    observed: GroupObservation,
    wanted: params.Wanted,
    statuses: dict[str, ClusterStatus],
    events: list[Event],
) -> list[Action]:
    """CONFIG SET where a member's live parameters differ; apply statuses for every member."""
    actions: list[Action] = []
    for cluster_id, (_, previous) in members.items():
        check = params.check_node(member_key(cluster_id), observed.nodes[cluster_id], wanted)
        if check.action is not None:
            actions.append(check.action)
        new = statuses[cluster_id]
        statuses[cluster_id] = replace(
            new,
            nodes=tuple(replace(n, parameter_status=check.status) for n in new.nodes),
            parameter_apply_status=check.status,
        )
        messages = params.events(previous.parameter_apply_status, check.status, {MEMBER_NODE_ID: check.status})
        events += [Event(cluster_id, CLUSTER, m) for m in messages]
    return actions


def _view(
    spec: ReplicationGroupSpec, status: GroupStatus, members: Members, observed: GroupObservation, address: str
) -> _View:
    ports = {m: observed.nodes[m].port for m in members}
    by_port = {p: m for m, p in ports.items() if p is not None}
    named = _sentinel_primary(observed, by_port, address) if spec.automatic_failover else None
    if spec.automatic_failover:
        primary_id = named or status.primary_cluster_id or spec.primary_cluster_id
    else:
        primary_id = spec.primary_cluster_id
    port = ports.get(primary_id)
    primary = (address, port) if port else None
    watching = spec.automatic_failover and any(s.pid is not None for s in observed.sentinels.values())
    replicas, peers = len(members) - 1, len(observed.sentinels) - 1
    views = [s.view for s in observed.sentinels.values()]
    healthy = (
        spec.automatic_failover
        and primary is not None
        and len(views) > 0
        and all(
            v is not None
            and (v.master_host, v.master_port) == primary
            and v.num_replicas >= replicas
            # Connected, not merely listed: every Sentinel lists its known peers (and replicas) from
            # its first second, flagged disconnected until it reaches them (``engines.sentinel``).
            and v.connected_peers >= peers
            and not v.flags & {"s_down", "o_down", "failover_in_progress"}
            for v in views
        )
    )
    ready = healthy and all(v is not None and v.ready_replicas >= replicas for v in views)
    return _View(primary_id, primary, ports, watching, healthy, ready, replication_id(spec))


def replication_id(spec: ReplicationGroupSpec) -> str:
    """The group's seed replication id: 40 hex digits, as Redis's own, stable for the group's life
    (a control plane that restarts mid-creation seeds the remaining members alike) and distinct
    between groups, so no node ever resyncs partially from another group's primary."""
    return hashlib.sha256(f"{spec.id}/{spec.created_at.isoformat()}".encode()).hexdigest()[:40]


def _sentinel_primary(observed: GroupObservation, by_port: dict[int, str], address: str) -> str | None:
    """The member a majority of all the group's Sentinels name as primary, if there is one."""
    votes: dict[str, int] = {}
    for sentinel in observed.sentinels.values():
        if sentinel.view is not None and sentinel.view.master_host == address:
            member = by_port.get(sentinel.view.master_port)
            if member is not None:
                votes[member] = votes.get(member, 0) + 1
    majority = len(observed.sentinels) // 2 + 1
    return next((m for m, n in votes.items() if n >= majority), None)


def _switchover(
    spec: ReplicationGroupSpec, status: GroupStatus, observed: GroupObservation, view: _View, address: str
) -> Switchover | None:
    """A planned change of primary asked through ModifyReplicationGroup(PrimaryClusterId)."""
    current = status.primary_cluster_id
    if spec.automatic_failover or current is None or current == view.primary_id or current not in view.ports:
        return None
    old, new = observed.nodes[current], observed.nodes[view.primary_id]
    if not (old.redis and new.redis and old.redis.role == "master" and new.redis.role == "slave"):
        return None  # nothing left to hand over: the normal convergence below settles the roles
    assert old.port is not None
    assert new.port is not None
    return Switchover(old=(address, old.port), new=(address, new.port))


def _converge_member(
    cluster_id: str, previous: ClusterStatus, view: _View, observed: GroupObservation, *, creating: bool
) -> Action | None:
    key = member_key(cluster_id)
    obs = observed.nodes[cluster_id]
    is_primary = cluster_id == view.primary_id
    seed = view.replication_id if creating else None
    if obs.port is None:
        recorded = previous.node(MEMBER_NODE_ID)
        return AllocatePort(key, port=recorded.port if recorded else None)
    if obs.port_taken:
        return None  # it keeps its port, which its clients know: it waits for it (``_blocked``)
    if obs.pid is None:
        if not is_primary:
            # A replica comes back only once its primary accepts connections (else Redis waits a
            # second to retry) and the endpoint is fenced: a demoted node is never reachable for writes.
            primary_serving = observed.nodes[view.primary_id].serving
            fenced = observed.endpoint.servers is None or (
                view.primary is not None and _routes_only_to(observed.endpoint.servers, server_name(view.primary[1]))
            )
            # While the group is being created its primary may be starting in this same pass: the
            # executor starts replicas only once that primary accepts connections.
            primary_starting = creating and observed.nodes[view.primary_id].pid is None
            if view.primary and fenced and (primary_serving or primary_starting):
                return StartNode(key, replicaof=view.primary, replication_id=seed)
            return None
        if view.sentinels_watch and _another_member_serves(observed, view):
            # Sentinel will promote (or is promoting) another member; then this node returns as its
            # replica. Only when no member is left at all does it restart as an (empty) primary.
            return None
        return StartNode(key, replication_id=seed)
    if view.sentinels_watch or obs.redis is None or _in_role(obs, is_primary=is_primary, primary=view.primary):
        return None  # with Sentinel watching, roles are Sentinel's to change
    return ReplicaOf(key, None if is_primary else view.primary)


def _another_member_serves(observed: GroupObservation, view: _View) -> bool:
    # A live process is enough: between Sentinel's promotion and its switch-master, the member it
    # promotes answers as a master, and Sentinel cuts every client connection to it (our probe too).
    return any(o.pid is not None for m, o in observed.nodes.items() if m != view.primary_id)


def _in_role(obs: NodeObservation, *, is_primary: bool, primary: Address | None, link: bool = False) -> bool:
    info = obs.redis
    if info is None:
        return False
    if is_primary:
        return info.role == "master"
    return (
        primary is not None
        and info.role == "slave"
        and (info.master_host, info.master_port) == primary
        and (info.master_link_up or not link)
    )


def _converge_endpoint(
    spec: ReplicationGroupSpec,
    status: GroupStatus,
    observed: GroupObservation,
    view: _View,
    address: str,
    *,
    mode: TransitMode | None,
) -> list[Action]:
    key = endpoint_key(spec.id)
    endpoint = observed.endpoint
    missing = [
        AllocatePort(key, slot, recorded)
        for slot, port, recorded in (
            (PORT_SLOT, endpoint.port, status.primary_endpoint_port),
            (READER_SLOT, endpoint.reader_port, status.reader_endpoint_port),
        )
        if port is None
    ]
    if missing:
        return list(missing)
    if view.primary is None or any(p is None for p in view.ports.values()):
        return []
    nodes = tuple(sorted((address, p) for p in view.ports.values() if p is not None))
    plain: tuple[tuple[int, int], ...] = ()
    if mode is TransitMode.PREFERRED:
        by_port = {o.port: o.plain_port for o in observed.nodes.values() if o.port is not None}
        if any(by_port.get(p) is None for _, p in nodes):
            return []  # a node's plain-text port comes first (``planners.security``)
        plain = tuple((p, by_port[p] or 0) for _, p in nodes)
    wanted = EndpointInputs(nodes=nodes, primary=view.primary, tls=mode.value if mode else "", plain_ports=plain)
    if endpoint.pid is None:
        return [StartEndpoint(key, wanted)]
    if endpoint.inputs != wanted.to_json():
        return [ReloadEndpoint(key, wanted)]
    primary_obs = observed.nodes[view.primary_id]
    # Enforce the routing only once the named primary really is one: during a failover the script that
    # Sentinel runs flips the endpoint itself, and a stale view here must not flip it back.
    primary_is_master = primary_obs.redis is not None and primary_obs.redis.role == "master"
    name = server_name(view.primary[1])
    servers = endpoint.servers
    if servers is not None and primary_is_master and not (_routes_only_to(servers, name) and servers[name].up):
        return [SetEndpointPrimary(key, name)]
    return []


def _routes_only_to(servers: dict[str, ServerState], name: str) -> bool:
    return all(s.maint != (n == name) for n, s in servers.items()) and name in servers


def _endpoint_ready(endpoint: EndpointObservation, view: _View) -> bool:
    if endpoint.servers is None or view.primary is None:
        return False
    server = endpoint.servers.get(server_name(view.primary[1]))
    if server is None or not server.up or server.maint:
        return False
    # The reader endpoint serves once a replica has passed HAProxy's health check: right after a
    # reload (a move between TLS modes) none has yet, for a tenth of a second or so.
    reader = endpoint.reader_servers
    return not reader or len(view.ports) < 2 or any(s.up and not s.maint for s in reader.values())


def _converge_sentinels(
    spec: ReplicationGroupSpec, observed: GroupObservation, view: _View, members: Members
) -> list[Action]:
    actions: list[Action] = []
    for key, sentinel in observed.sentinels.items():
        if not spec.automatic_failover:
            if sentinel.port is not None or sentinel.pid is not None:
                actions.append(RemoveNode(key))
        elif sentinel.port is None:
            actions.append(AllocatePort(key))
        elif sentinel.pid is None and view.primary is not None and _all_nodes_ready(members, observed, view):
            actions.append(StartSentinel(key, spec.id, view.primary))
        elif sentinel.view is not None and sentinel.view.timings is not None:
            wanted = Timings(_ping_period(key, sentinel.view, observed), ASK_PERIOD_MS)
            if sentinel.view.timings != wanted:
                actions.append(TuneSentinel(key, wanted))
    return actions


def _ping_period(key: NodeKey, view: SentinelView, observed: GroupObservation) -> int:
    """Short while a Sentinel is not linked to every peer and they all run: a peer that started after
    it refused its first connection, and Sentinel tries again only after a ping period. Its default
    otherwise, so that pings stay at one a second per instance (a dead peer is not worth the retries)."""
    peers = [s for k, s in observed.sentinels.items() if k != key]
    if view.connected_peers < len(peers) and all(p.pid is not None for p in peers):
        return FAST_PING_PERIOD_MS
    return PING_PERIOD_MS


def _all_nodes_ready(members: Members, observed: GroupObservation, view: _View) -> bool:
    return all(
        observed.nodes[m].serving
        and _in_role(observed.nodes[m], is_primary=m == view.primary_id, primary=view.primary, link=True)
        for m in members
    )


def _member_statuses(
    members: Members, observed: GroupObservation, view: _View, recovering: dict[str, None], now: str
) -> dict[str, ClusterStatus]:
    statuses: dict[str, ClusterStatus] = {}
    for cluster_id, (_, previous) in members.items():
        obs = observed.nodes[cluster_id]
        is_primary = cluster_id == view.primary_id
        in_role = _in_role(obs, is_primary=is_primary, primary=view.primary, link=True)
        # A new node is available once it serves in its role (a replica: with its data); after that,
        # a node is available while it serves: roles in flux during a failover are the group's affair.
        ready = obs.serving and (in_role or _was_serving(previous)) and cluster_id not in recovering
        node = node_status(
            MEMBER_NODE_ID,
            previous.node(MEMBER_NODE_ID),
            port=obs.port,
            running=obs.pid is not None,
            ready=ready,
            role=PRIMARY if is_primary else REPLICA,
            now=now,
        )
        statuses[cluster_id] = cluster_status(previous, (node,))
    return statuses


def _was_serving(previous: ClusterStatus) -> bool:
    node = previous.node(MEMBER_NODE_ID)
    return node is not None and node.created_at is not None


def _member_events(
    cluster_id: str, previous: ClusterStatus, new: ClusterStatus, group_state: GroupState
) -> list[Event]:
    events = []
    if (
        previous.status == ClusterState.CREATING
        and new.status == ClusterState.AVAILABLE
        and group_state != GroupState.CREATING
    ):
        events.append(Event(cluster_id, CLUSTER, "Cache cluster created"))
    return events


def _failover_events(spec: ReplicationGroupSpec, before: GroupStatus, primary_id: str) -> list[Event]:
    """ElastiCache's wording and order: the cache cluster's event first, then the group's."""
    old = before.primary_cluster_id
    if not spec.automatic_failover or old is None or primary_id == old:
        return []
    message = f"Failover from primary node {old} to replica node {primary_id} completed"
    return [Event(primary_id, CLUSTER, message), Event(spec.id, KIND, message)]


def _lifecycle_events(spec: ReplicationGroupSpec, before: GroupStatus, after: GroupStatus) -> list[Event]:
    events = []
    if before.status == GroupState.CREATING and after.status == GroupState.AVAILABLE:
        events.append(Event(spec.id, KIND, f"Replication group {spec.id} created"))
    elif after.failover_active and not before.failover_active:
        events.append(Event(spec.id, KIND, f"Automatic failover has been turned on for replication group {spec.id}"))
    elif before.failover_active and not after.failover_active:
        events.append(Event(spec.id, KIND, f"Automatic failover has been turned off for replication group {spec.id}"))
    return events


def _plan_delete(
    spec: ReplicationGroupSpec, member_ids: list[str], primary_id: str, observed: GroupObservation
) -> Plan:
    retained = primary_id if spec.retain_primary_cluster else None
    # Sentinels go first, so that tearing the nodes down never triggers a failover.
    actions: list[Action] = [RemoveNode(k) for k in observed.sentinels]
    actions.append(RemoveNode(endpoint_key(spec.id)))
    for cluster_id in member_ids:
        if cluster_id == retained:
            actions.append(DetachMember(cluster_id))
        else:
            actions += [RemoveNode(member_key(cluster_id)), DeleteRecord(CLUSTER, cluster_id)]
    actions.append(DeleteRecord(KIND, spec.id))
    return Plan(actions=tuple(actions), events=(Event(spec.id, KIND, f"Replication group {spec.id} deleted"),))
