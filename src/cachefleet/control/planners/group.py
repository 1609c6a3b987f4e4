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

Where each process runs is decided here too (``model.placement``) and recorded in the statuses:
- a new member is placed in its AZ, on a host no other member uses when hosts allow; a member whose
  host is ``lost`` is placed again (same member id), in its AZ when a host there has room, else
  elsewhere with an event saying so, and starts as a replica of the primary Sentinel names;
- a member on a ``draining`` host moves off it, one member at a time and only while all is quiet: a
  second process of the member syncs on the target host, then takes over and the old one goes. The
  primary moves last: with Sentinel, by a failover that first pauses writes until the replicas have
  every acknowledged write (as TestFailover); without, by a switchover to its own second process;
- Sentinels are placed one per host and AZ when hosts allow, and placed again off lost or draining
  hosts, one at a time; the endpoint proxy stays on the embedded host (``HostMap.endpoint``);
- nothing is commanded on a host out of reach: a lost host's leftovers are removed by the host's own
  pass when it returns (``control.kinds.host``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    AnnounceSentinels,
    DeleteRecord,
    DetachMember,
    EndpointInputs,
    Event,
    JoinSentinel,
    LeaveSentinel,
    Plan,
    ReloadEndpoint,
    RemoveNode,
    ReplicaOf,
    ResetSentinel,
    RestartNode,
    SentinelFailover,
    SetEndpointPrimary,
    StartEndpoint,
    StartNode,
    StartSentinel,
    StartSharedSentinel,
    Switchover,
    TuneSentinel,
)
from cachefleet.control.hosts import HostMap, memory_of
from cachefleet.control.observe import (
    UNPLACED,
    EndpointObservation,
    GroupObservation,
    NodeObservation,
    SentinelObservation,
)
from cachefleet.control.planners import params, reboot, security
from cachefleet.control.planners.nodes import cluster_status, lifecycle_status, node_status, port_held
from cachefleet.engines.haproxy import ServerState, server_name
from cachefleet.engines.sentinel import (
    ASK_PERIOD_MS,
    FAST_PING_PERIOD_MS,
    PING_PERIOD_MS,
    SentinelView,
    Timings,
    my_id,
)
from cachefleet.model.errors import Fatal
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    PORT_SLOT,
    READER_SLOT,
    NodeKey,
    Placement,
    endpoint_key,
    group_sentinel_keys,
    is_shared,
    member_key,
    sentinel_keys,
    shared_sentinel_keys,
    shared_set,
)
from cachefleet.model.placement import Want, no_room, place_each
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import PRIMARY, REPLICA, ClusterState, ClusterStatus, GroupState, GroupStatus
from cachefleet.model.transit import TransitMode

KIND = "replication-group"
CLUSTER = "cache-cluster"
RECOVERING = f"Recovering cache nodes {MEMBER_NODE_ID}"
RECOVERED = f"Finished recovery for cache nodes {MEMBER_NODE_ID}"
Members = dict[str, tuple[CacheClusterSpec, ClusterStatus]]


@dataclass(frozen=True)
class _Place:
    """Where a member runs: ``at`` (None: nowhere yet, no host had room), whether it was placed in
    this pass (its new host gives it a port), and where it is moving to."""

    at: Placement | None
    fresh: bool = False
    moving_to: Placement | None = None


@dataclass(frozen=True)
class _View:
    """Facts one pass derives from the observation before deciding anything."""

    primary_id: str
    primary: Address | None
    ports: dict[str, int | None]
    addresses: dict[str, Address]  # by member: its host's address and its port, once it has one
    places: dict[str, _Place]
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
    hosts: HostMap,
    now: str,
    wanted: params.Wanted,
    secure: security.Wanted,
) -> Plan:
    if spec.deleting:
        return _plan_delete(spec, status, members, observed, hosts)
    events: list[Event] = []
    waiting: list[Event] = []
    places = _placements(spec, members, hosts, events, waiting)
    pre = _view(spec, status, members, observed, places)
    moves = _moves(spec, members, observed, places, view=pre, hosts=hosts, events=events)
    observed, places = moves.observed, moves.places
    waiting += moves.waiting
    view = _view(spec, status, members, observed, places)
    actions: list[Action] = list(moves.actions)
    group_status = replace(status, primary_cluster_id=view.primary_id)
    failed_over = _failover_events(spec, status, view.primary_id)
    events += failed_over
    recovering = dict.fromkeys(status.recovering)
    if failed_over and status.primary_cluster_id in members:
        # ElastiCache reports the old primary as recovering until it is back as a synced replica.
        recovering[status.primary_cluster_id] = None
        events.append(Event(status.primary_cluster_id, CLUSTER, RECOVERING))

    switch = _switchover(spec, status, observed, view)
    if switch is not None:
        actions.append(switch)
    elif not moves.switching:
        for cluster_id, (_, previous) in members.items():
            if cluster_id in moves.busy:
                continue
            action = _converge_member(
                cluster_id, previous, view, observed, hosts, creating=status.status == GroupState.CREATING
            )
            if action is None:
                continue
            actions.append(action)
            replaced = places[cluster_id].fresh and _was_serving(previous)
            restarted = isinstance(action, StartNode) and _was_serving(previous)
            if (replaced or restarted) and cluster_id not in recovering:
                recovering[cluster_id] = None
                events.append(Event(cluster_id, CLUSTER, RECOVERING))

    moment = datetime.fromisoformat(now)
    # Users, TLS and certificates of the running members first: a move between TLS modes changes
    # the nodes' ports before the endpoint is reloaded for them (docs/security.md). A member being
    # placed or moved in this pass is rendered with them when it starts.
    running = {
        member_key(m): place.at
        for m, place in places.items()
        if m in members
        and m not in moves.busy
        and not place.fresh
        and place.at is not None
        and hosts.reachable(place.at)
    }
    secured = security.nodes({k: observed.nodes[k.cluster_id] for k in running}, running, secure, moment)
    actions += secured.actions
    endpoint_actions = _converge_endpoint(spec, status, observed, view, hosts, mode=secure.mode)
    actions += endpoint_actions
    sentinel_actions, sentinel_places = _converge_sentinels(
        spec, status, observed, view=view, members=members, hosts=hosts, events=events, quiet=not moves.failover
    )
    actions += sentinel_actions
    group_status = replace(group_status, sentinels=sentinel_places)
    secured_sentinels: tuple[Action, ...] = ()
    if spec.automatic_failover and not _shares(sentinel_places):
        # (The shared Sentinels speak plain text and have no certificate: nothing to secure.)
        # Only Sentinels observed where they stay (one placed in this pass is seen there next pass).
        settled = {
            k: at
            for k in observed.sentinels
            if (at := sentinel_places.get(k.node_id)) is not None and at == status.sentinels.get(k.node_id)
        }
        secured_sentinels = security.sentinels(
            {k: observed.sentinels[k] for k in settled},
            settled,
            secure,
            spec.id,
            view.primary,
            nodes_moved=secured.transport,
            healthy=view.sentinels_healthy,
            now=moment,
        )
        actions += secured_sentinels
    if (
        spec.failover_requests > status.failovers_done
        and view.sentinels_ready
        and _all_nodes_ready(members, observed, view)
        and not moves.actions
    ):
        assert view.primary is not None  # sentinels_ready says they all watch it
        actions.append(_sentinel_failover(spec, status.sentinels, view.primary, observed))
        group_status = replace(group_status, failovers_done=spec.failover_requests)
    elif moves.failover:
        assert view.primary is not None
        actions.append(_sentinel_failover(spec, status.sentinels, view.primary, observed))

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
    config_actions = _parameters(members, observed, view, wanted, statuses=statuses, events=events)
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
    if all_ready and secured.in_sync and not secured.actions and not endpoint_actions and not secured_sentinels:
        # Every node runs the wanted users and TLS mode, the endpoint and Sentinels follow it.
        group_status = replace(
            group_status,
            security_done=spec.security.version,
            transit_mode=spec.security.mode_text,
            user_group_ids=spec.security.user_group_ids,
            acl_fingerprint=secure.fingerprint,
        )
    # Setting a Sentinel's periods (its ping period back to its default) does not hold the group up.
    only_tunings = all(isinstance(a, TuneSentinel) for a in actions)
    group_status = replace(
        group_status,
        status=lifecycle_status(status.status, all_ready and only_tunings),
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
        and not any(p.moving_to for p in view.places.values())
        and not any(hosts.drains(p.at) for p in view.places.values())
        and spec.failover_requests <= group_status.failovers_done
        and all(m.reboot_requests <= statuses[c].reboots_done for c, (m, _) in members.items()),
        blocked=_blocked(observed) + tuple(waiting) + tuple(_stranded_events(spec, members, observed, view)),
        revisit=security.next_renewal(
            [*(n.certificate for n in observed.nodes.values()), *(s.certificate for s in observed.sentinels.values())],
            moment,
        ),
    )


def _sentinel_failover(
    spec: ReplicationGroupSpec, placed: dict[str, Placement], primary: Address, observed: GroupObservation
) -> SentinelFailover:
    """Asked of the first Sentinel that answered this pass, where it runs (as observed)."""
    keys = group_sentinel_keys(spec.id, placed)
    watching = [k for k in keys if observed.sentinels.get(k) and observed.sentinels[k].view]
    key = next(iter(watching), keys[0])
    return SentinelFailover(key, placed[key.node_id], spec.id, primary)


# -- where members run ---------------------------------------------------------------------------


def _placements(
    spec: ReplicationGroupSpec, members: Members, hosts: HostMap, events: list[Event], waiting: list[Event]
) -> dict[str, _Place]:
    """Each member's place: as recorded; placed when it has none; placed again when its host is lost."""
    places: dict[str, _Place] = {}
    wants: list[tuple[str, Want, Placement | None]] = []
    memory = memory_of(spec.node_type)
    for cluster_id, (member, previous) in members.items():
        node = previous.node(MEMBER_NODE_ID)
        at = node.placement if node is not None else None
        if at is None:
            wants.append((cluster_id, Want(cluster_id, member.node_azs[0], memory), None))
        elif hosts.lost(at):
            wants.append((cluster_id, Want(cluster_id, at.zone, memory, strict=False), at))
        else:
            places[cluster_id] = _Place(at, moving_to=node.moving_to if node is not None else None)
    if not wants:
        return places
    together = Counter(h for p in places.values() for h in _hosts_of(p))
    choices = place_each([w for _, w, _ in wants], hosts.rooms, subnets=hosts.subnets, together=together)
    for (cluster_id, want, lost), choice in zip(wants, choices, strict=True):
        if choice is None:
            if lost is None:
                raise Fatal(no_room(want))
            message = f"Cache node {MEMBER_NODE_ID} of {cluster_id} cannot be replaced: {no_room(want)} Retrying"
            waiting.append(Event(cluster_id, CLUSTER, message))
            places[cluster_id] = _Place(lost)
            continue
        at = Placement(choice.host, choice.address, choice.zone)
        places[cluster_id] = _Place(at, fresh=True)
        if lost is not None:
            events.append(Event(cluster_id, CLUSTER, replacing(cluster_id, MEMBER_NODE_ID, lost, at)))
    return places


def replacing(cluster_id: str, node_id: str, lost: Placement, at: Placement) -> str:
    """The event of a node replaced because its host was lost (saying so when it changed AZ)."""
    message = f"Replacing cache node {node_id} of {cluster_id}: host {lost.host} was lost; it now runs on "
    message += f"host {at.host}"
    if at.zone != lost.zone:
        message += f" in {at.zone}, since no host of {lost.zone} could take it"
    return message


def _hosts_of(place: _Place) -> list[str]:
    return [p.host for p in (place.at, place.moving_to) if p is not None]


@dataclass(frozen=True)
class _Moves:
    places: dict[str, _Place]
    observed: GroupObservation  # members that finished moving are seen where they now run
    actions: tuple[Action, ...] = ()
    busy: frozenset[str] = frozenset()  # members whose move owns them this pass
    switching: bool = False  # a primary hands over to its second process: nothing else this pass
    failover: bool = False  # the primary is on a draining host: Sentinel moves the role first
    waiting: tuple[Event, ...] = ()


def _moves(
    spec: ReplicationGroupSpec,
    members: Members,
    observed: GroupObservation,
    places: dict[str, _Place],
    *,
    view: _View,
    hosts: HostMap,
    events: list[Event],
) -> _Moves:
    """Members moving off draining hosts: the moves under way carried on, and at most one started."""
    places = dict(places)
    nodes = dict(observed.nodes)
    actions: list[Action] = []
    busy: set[str] = set()
    switching = False
    for cluster_id, place in list(places.items()):
        target = place.moving_to
        if target is None or place.at is None:
            continue
        key = member_key(cluster_id)
        busy.add(cluster_id)
        seen = observed.targets.get(cluster_id, UNPLACED)
        is_primary = cluster_id == view.primary_id
        if not hosts.drains(place.at) or not hosts.reachable(target) or hosts.drains(target):
            # Undrained meanwhile, or the target is gone or drained itself: the move is called off.
            places[cluster_id] = replace(place, moving_to=None)
            if hosts.reachable(target):
                actions.append(RemoveNode(key, target))
            continue
        follows = view.addresses.get(cluster_id) if is_primary else view.primary
        current = nodes[cluster_id]
        if seen.port is None:
            actions.append(AllocatePort(key, target))
        elif seen.port_taken:
            continue
        elif seen.pid is None:
            if follows is not None and (current.serving if is_primary else _primary_serves(nodes, view)):
                actions.append(StartNode(key, target, replicaof=follows))
        elif is_primary and _is_master(seen) and not _is_master(current):
            # The switchover to its second process is done: that one is the primary now.
            _finish(cluster_id, place, seen, places=places, nodes=nodes, actions=actions, events=events, hosts=hosts)
        elif _in_role(seen, is_primary=False, primary=follows, link=True):
            if not is_primary:
                _finish(
                    cluster_id, place, seen, places=places, nodes=nodes, actions=actions, events=events, hosts=hosts
                )
            elif not spec.automatic_failover and follows is not None and seen.port is not None:
                actions.append(Switchover(old=follows, new=(target.address, seen.port)))
                switching = True
    waiting: list[Event] = []
    failover = False
    quiet = not busy and not actions and _all_nodes_ready(members, observed, view)
    draining = [m for m, p in places.items() if hosts.drains(p.at) and not p.fresh and p.moving_to is None]
    draining.sort(key=lambda m: m == view.primary_id)  # replicas first, the primary last
    if quiet and draining:
        cluster_id = draining[0]
        place = places[cluster_id]
        assert place.at is not None
        if cluster_id == view.primary_id and spec.automatic_failover:
            if view.sentinels_ready and len(members) > 1:
                failover = True
                events.append(Event(spec.id, KIND, f"Moving the primary role off draining host {place.at.host}"))
        else:
            together = Counter(h for m, p in places.items() if m != cluster_id for h in _hosts_of(p))
            want = Want(cluster_id, place.at.zone, memory_of(spec.node_type), strict=False)
            (choice,) = place_each([want], hosts.rooms, subnets=hosts.subnets, together=together)
            if choice is None:
                message = f"Cache node {MEMBER_NODE_ID} of {cluster_id} cannot leave draining host {place.at.host}"
                waiting.append(Event(cluster_id, CLUSTER, f"{message}: {no_room(want)} Retrying"))
            else:
                target = Placement(choice.host, choice.address, choice.zone)
                places[cluster_id] = replace(place, moving_to=target)
                actions.append(AllocatePort(member_key(cluster_id), target))
                busy.add(cluster_id)
                message = f"Moving cache node {MEMBER_NODE_ID} of {cluster_id} off draining host {place.at.host}"
                events.append(Event(cluster_id, CLUSTER, f"{message} to host {target.host}"))
    return _Moves(
        places,
        replace(observed, nodes=nodes),
        tuple(actions),
        frozenset(busy),
        switching,
        failover,
        tuple(waiting),
    )


def _finish(
    cluster_id: str,
    place: _Place,
    seen: NodeObservation,
    *,
    places: dict[str, _Place],
    nodes: dict[str, NodeObservation],
    actions: list[Action],
    events: list[Event],
    hosts: HostMap,
) -> None:
    """The member's second process takes over: it runs there now, and the old one goes."""
    old, target = place.at, place.moving_to
    assert old is not None
    assert target is not None
    places[cluster_id] = _Place(target)
    nodes[cluster_id] = seen
    if hosts.reachable(old):
        actions.append(RemoveNode(member_key(cluster_id), old))
    message = f"Cache node {MEMBER_NODE_ID} of {cluster_id} moved from host {old.host} to host {target.host}"
    events.append(Event(cluster_id, CLUSTER, message))


def _is_master(obs: NodeObservation) -> bool:
    return obs.redis is not None and obs.redis.role == "master"


def _primary_serves(nodes: dict[str, NodeObservation], view: _View) -> bool:
    primary = nodes.get(view.primary_id)
    return primary is not None and primary.serving


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
            at = view.places[cluster_id].at
            assert at is not None  # it serves, so it runs somewhere
            actions.append(RestartNode(member_key(cluster_id), at, None if is_primary else view.primary))
        statuses[cluster_id] = reboot.record(statuses[cluster_id], taken, member.reboot_requests)
        events += [Event(cluster_id, CLUSTER, m) for m in taken.events]
    return actions


def _parameters(
    members: Members,
    observed: GroupObservation,
    view: _View,
    wanted: params.Wanted,
    *,
    statuses: dict[str, ClusterStatus],
    events: list[Event],
) -> list[Action]:
    """CONFIG SET where a member's live parameters differ; apply statuses for every member."""
    actions: list[Action] = []
    for cluster_id, (_, previous) in members.items():
        at = view.places[cluster_id].at
        check = params.check_node(member_key(cluster_id), at, observed.nodes[cluster_id], wanted)
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
    spec: ReplicationGroupSpec,
    status: GroupStatus,
    members: Members,
    observed: GroupObservation,
    places: dict[str, _Place],
) -> _View:
    ports = {m: _port(observed.nodes[m], members[m][1]) for m in members}
    addresses: dict[str, Address] = {}
    for member, port in ports.items():
        at = places[member].at
        if port is not None and at is not None and not places[member].fresh:
            addresses[member] = (at.address, port)
    by_address = {address: m for m, address in addresses.items()}
    named = _sentinel_primary(_responsible(observed.sentinels), by_address) if spec.automatic_failover else None
    if spec.automatic_failover:
        primary_id = named or status.primary_cluster_id or spec.primary_cluster_id
    else:
        primary_id = spec.primary_cluster_id
    primary = addresses.get(primary_id)
    sentinels = _responsible(observed.sentinels)
    watching = spec.automatic_failover and any(s.pid is not None for s in sentinels.values())
    replicas, peers = len(members) - 1, len(sentinels) - 1
    views = [s.view for s in sentinels.values()]
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
    return _View(primary_id, primary, ports, addresses, places, watching, healthy, ready, replication_id(spec))


def _port(obs: NodeObservation, recorded: ClusterStatus) -> int | None:
    """A member's port: as observed, or as recorded while its host is out of reach (its address stays
    known, so the endpoint keeps its node set and follows Sentinel's failover without a reload)."""
    if obs.port is not None or obs.reachable:
        return obs.port
    node = recorded.node(MEMBER_NODE_ID)
    return node.port if node is not None else None


def replication_id(spec: ReplicationGroupSpec) -> str:
    """The group's seed replication id: 40 hex digits, as Redis's own, stable for the group's life
    (a control plane that restarts mid-creation seeds the remaining members alike) and distinct
    between groups, so no node ever resyncs partially from another group's primary."""
    return hashlib.sha256(f"{spec.id}/{spec.created_at.isoformat()}".encode()).hexdigest()[:40]


def _responsible(sentinels: dict[NodeKey, SentinelObservation]) -> dict[NodeKey, SentinelObservation]:
    """The Sentinels that decide for the group: while it moves from Sentinels of its own to the
    shared ones, its own, until the shared ones are ready and its own go."""
    own = {k: s for k, s in sentinels.items() if not is_shared(k.node_id)}
    return own if own and len(own) < len(sentinels) else sentinels


def _sentinel_primary(sentinels: dict[NodeKey, SentinelObservation], by_address: dict[Address, str]) -> str | None:
    """The member a majority of all the group's Sentinels name as primary, if there is one."""
    votes: dict[str, int] = {}
    for sentinel in sentinels.values():
        if sentinel.view is not None:
            member = by_address.get((sentinel.view.master_host, sentinel.view.master_port))
            if member is not None:
                votes[member] = votes.get(member, 0) + 1
    majority = len(sentinels) // 2 + 1
    return next((m for m, n in votes.items() if n >= majority), None)


def _switchover(
    spec: ReplicationGroupSpec, status: GroupStatus, observed: GroupObservation, view: _View
) -> Switchover | None:
    """A planned change of primary asked through ModifyReplicationGroup(PrimaryClusterId)."""
    current = status.primary_cluster_id
    if spec.automatic_failover or current is None or current == view.primary_id or current not in view.ports:
        return None
    old, new = observed.nodes[current], observed.nodes[view.primary_id]
    if not (old.redis and new.redis and old.redis.role == "master" and new.redis.role == "slave"):
        return None  # nothing left to hand over: the normal convergence below settles the roles
    old_address, new_address = view.addresses.get(current), view.addresses.get(view.primary_id)
    if old_address is None or new_address is None:
        return None
    return Switchover(old=old_address, new=new_address)


def _converge_member(
    cluster_id: str,
    previous: ClusterStatus,
    view: _View,
    observed: GroupObservation,
    hosts: HostMap,
    *,
    creating: bool,
) -> Action | None:
    key = member_key(cluster_id)
    place = view.places[cluster_id]
    at = place.at
    if at is None or not hosts.reachable(at):
        return None  # no host had room (an event says so), or its host is out of reach: nothing to command
    obs = UNPLACED if place.fresh else observed.nodes[cluster_id]
    if not obs.reachable:
        return None  # its host did not answer this pass (not yet marked unreachable): nothing to command
    is_primary = cluster_id == view.primary_id
    seed = view.replication_id if creating else None
    if obs.port is None:
        recorded = previous.node(MEMBER_NODE_ID)
        # The port it had, unless it is new on this host (its host was lost, or it never had one).
        keep = recorded.port if recorded is not None and not place.fresh else None
        return AllocatePort(key, at, port=keep)
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
                return StartNode(key, at, replicaof=view.primary, replication_id=seed)
            return None
        if view.sentinels_watch and _another_member_serves(observed, view):
            # Sentinel will promote (or is promoting) another member; then this node returns as its
            # replica. Only when no member is left at all does it restart as an (empty) primary.
            return None
        if _stranded(previous, observed, view):
            return None  # its data stayed on its lost host; a replica has it (``_stranded_events``)
        return StartNode(key, at, replication_id=seed)
    if view.sentinels_watch or obs.redis is None or _in_role(obs, is_primary=is_primary, primary=view.primary):
        return None  # with Sentinel watching, roles are Sentinel's to change
    if not is_primary and observed.nodes[view.primary_id].pid is None:
        return None  # never repointed at a primary that does not run (one lost with its host has no data)
    return ReplicaOf(key, at, None if is_primary else view.primary)


def _stranded(previous: ClusterStatus, observed: GroupObservation, view: _View) -> bool:
    """A primary placed again after its host was lost has no data; while a replica serves, starting
    it as a primary would make the replicas copy its emptiness (docs/architecture.md section 7)."""
    node = previous.node(MEMBER_NODE_ID)
    return node is not None and node.replaced_from is not None and _another_member_serves(observed, view)


def _stranded_events(
    spec: ReplicationGroupSpec, members: Members, observed: GroupObservation, view: _View
) -> list[Event]:
    """Without automatic failover nothing promotes a replica: the user is told how to."""
    if spec.automatic_failover or view.primary_id not in members:
        return []
    previous = members[view.primary_id][1]
    if observed.nodes[view.primary_id].pid is not None or not _stranded(previous, observed, view):
        return []
    message = (
        f"The primary {view.primary_id} of {spec.id} was lost with its host and automatic failover is off: "
        "promote a replica with ModifyReplicationGroup PrimaryClusterId (or turn automatic failover on)"
    )
    return [Event(spec.id, KIND, message)]


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
    hosts: HostMap,
    *,
    mode: TransitMode | None,
) -> list[Action]:
    key = endpoint_key(spec.id)
    at = hosts.endpoint
    endpoint = observed.endpoint
    missing = [
        AllocatePort(key, at, slot, recorded)
        for slot, port, recorded in (
            (PORT_SLOT, endpoint.port, status.primary_endpoint_port),
            (READER_SLOT, endpoint.reader_port, status.reader_endpoint_port),
        )
        if port is None
    ]
    if missing:
        return list(missing)
    if view.primary is None or len(view.addresses) < len(view.ports):
        return []
    nodes = tuple(sorted(view.addresses.values()))
    plain: tuple[tuple[int, int], ...] = ()
    if mode is TransitMode.PREFERRED:
        by_port = {o.port: o.plain_port for o in observed.nodes.values() if o.port is not None}
        if any(by_port.get(p) is None for _, p in nodes):
            return []  # a node's plain-text port comes first (``planners.security``)
        plain = tuple((p, by_port[p] or 0) for _, p in nodes)
    wanted = EndpointInputs(nodes=nodes, primary=view.primary, tls=mode.value if mode else "", plain_ports=plain)
    if endpoint.pending == wanted.to_json():
        return []  # the proxy applies it (the group is woken once it serves it)
    if endpoint.pid is None:
        return [StartEndpoint(key, at, wanted)]
    if endpoint.inputs != wanted.to_json():
        return [ReloadEndpoint(key, at, wanted)]
    primary_obs = observed.nodes[view.primary_id]
    # Enforce the routing only once the named primary really is one: during a failover the script that
    # Sentinel runs flips the endpoint itself, and a stale view here must not flip it back.
    primary_is_master = primary_obs.redis is not None and primary_obs.redis.role == "master"
    name = server_name(view.primary[1])
    servers = endpoint.servers
    if _followed_elsewhere(observed, view.primary):
        # The failover follower (``control.follow``) moved it to the replica Sentinel promoted, before
        # a majority of the Sentinels names it: the pass follows them once they do, never back.
        return []
    if servers is not None and primary_is_master and not (_routes_only_to(servers, name) and servers[name].up):
        return [SetEndpointPrimary(key, at, name)]
    return []


def _followed_elsewhere(observed: GroupObservation, primary: Address) -> bool:
    """The failover follower moved the endpoint to another node, which reports master: a replica the
    Sentinels' leader promoted before their majority names it. (Once the majority names it, the
    follower and the pass agree; a former primary that returns still a master is followed by neither.)"""
    followed = observed.followed
    if followed is None or followed == primary:
        return False
    return any(
        o.port is not None and o.redis is not None and o.redis.role == "master" and followed[1] == o.port
        for o in observed.nodes.values()
    )


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
    spec: ReplicationGroupSpec,
    status: GroupStatus,
    observed: GroupObservation,
    *,
    view: _View,
    members: Members,
    hosts: HostMap,
    events: list[Event],
    quiet: bool,
) -> tuple[list[Action], dict[str, Placement]]:
    """The Sentinels' steps, and where each runs now (recorded in the group's status).

    ``quiet``: no failover is asked in this pass, so one Sentinel may leave a draining host."""
    actions: list[Action] = []
    placed = dict(status.sentinels)
    if _shares(placed) and (not spec.automatic_failover or spec.security.transit.mode is not None):
        # Off, or moving to TLS: the shared set speaks plain text. The group leaves it; its own TLS
        # Sentinels are placed in the next pass (docs/decisions.md, "Shared Sentinels").
        return _leave_shared(spec, placed), {}
    shared = {k.node_id: hosts.endpoint for k in shared_sentinel_keys(hosts.shared_set)}
    if not placed and spec.automatic_failover and _may_share(spec, hosts):
        placed = shared
    elif _may_move_to_shared(spec, placed, hosts, view=view, quiet=quiet):
        # Sentinels of its own from an earlier version: the shared ones watch it first, then its own
        # go (``_converge_shared``), so that it is never left without a quorum watching it.
        placed = {**placed, **shared}
    if _shares(placed):
        return _converge_shared(spec, observed, view=view, members=members, placed=placed, hosts=hosts), placed
    if not spec.automatic_failover:
        for key, sentinel in observed.sentinels.items():
            at = placed.get(key.node_id)
            if at is None:
                continue
            if sentinel.port is not None or sentinel.pid is not None:
                actions.append(RemoveNode(key, at))
            elif sentinel.reachable or hosts.lost(at):
                del placed[key.node_id]  # gone; a lost host's leftover goes when the host returns
        return actions, placed
    keys = sentinel_keys(spec.id)
    replace_one = quiet and view.sentinels_ready  # one Sentinel off a draining host at a time, all others healthy
    wants: list[tuple[NodeKey, Want, Placement | None]] = []
    zones = _sentinel_zones(members, view, len(keys))
    for index, key in enumerate(keys):
        at = placed.get(key.node_id)
        if at is None:
            wants.append((key, Want(key.node_id, zones[index], strict=False, node=False), None))
        elif hosts.lost(at):
            wants.append((key, Want(key.node_id, at.zone, strict=False, node=False), at))
        elif hosts.drains(at) and replace_one:
            replace_one = False
            actions.append(RemoveNode(key, at))  # the new one starts once this one is gone (one id, one process)
            wants.append((key, Want(key.node_id, at.zone, strict=False, node=False), at))
    if wants:
        together = Counter(p.host for k, p in placed.items() if k not in {key.node_id for key, _, _ in wants})
        choices = place_each([w for _, w, _ in wants], hosts.rooms, subnets=hosts.subnets, together=together)
        for (key, _, old), choice in zip(wants, choices, strict=True):
            if choice is None:
                continue  # no host takes it now: the others keep watching; tried again next pass
            placed[key.node_id] = Placement(choice.host, choice.address, choice.zone)
            if old is not None:
                message = f"Sentinel {key.node_id} of {spec.id} moved from host {old.host} to host {choice.host}"
                events.append(Event(spec.id, KIND, message))
    for key, sentinel in observed.sentinels.items():
        at = placed.get(key.node_id)
        if at is None or at != status.sentinels.get(key.node_id):
            continue  # placed in this pass: observed next pass where it now is
        if not sentinel.reachable:
            continue
        if sentinel.port is None:
            actions.append(AllocatePort(key, at))
        elif sentinel.pid is None and view.primary is not None and _all_nodes_ready(members, observed, view):
            actions.append(StartSentinel(key, at, spec.id, view.primary))
        elif sentinel.view is not None and sentinel.view.timings is not None:
            wanted = Timings(_ping_period(key, sentinel.view, observed), ASK_PERIOD_MS)
            if sentinel.view.timings != wanted:
                actions.append(TuneSentinel(key, at, wanted))
    return actions, placed


def _shares(placed: Mapping[str, Placement]) -> bool:
    """Whether the group's Sentinels are the embedded host's shared ones (as recorded)."""
    return any(is_shared(node_id) for node_id in placed)


def _may_share(spec: ReplicationGroupSpec, hosts: HostMap) -> bool:
    """A group that has no Sentinels yet joins the shared ones when the installation has no agent host
    (every Sentinel would run on the embedded host) and it has no in-transit encryption (the shared
    set speaks plain text). Otherwise it runs three of its own, placed as its members are."""
    return hosts.shared_sentinels and spec.security.transit.mode is None and set(hosts.states) <= {LOCAL_HOST}


def _may_move_to_shared(
    spec: ReplicationGroupSpec, placed: Mapping[str, Placement], hosts: HostMap, *, view: _View, quiet: bool
) -> bool:
    """A group whose own Sentinels (an earlier version's) all run on the embedded host moves to the
    shared ones, once they are all ready and nothing else happens."""
    return (
        bool(placed)
        and not _shares(placed)
        and spec.automatic_failover
        and _may_share(spec, hosts)
        and all(at.host == LOCAL_HOST for at in placed.values())
        and quiet
        and view.sentinels_ready
    )


def _leave_shared(spec: ReplicationGroupSpec, placed: Mapping[str, Placement]) -> list[Action]:
    """``SENTINEL REMOVE`` on every shared Sentinel (idempotent), and its own stopped if it was
    moving to them: the group records none once they have all answered (a failure keeps the old
    status, and the next pass tries again)."""
    keys = group_sentinel_keys(spec.id, placed)
    return [
        LeaveSentinel(k, at, spec.id) if is_shared(k.node_id) else RemoveNode(k, at)
        for k in keys
        if (at := placed.get(k.node_id)) is not None
    ]


def _converge_shared(
    spec: ReplicationGroupSpec,
    observed: GroupObservation,
    *,
    view: _View,
    members: Members,
    placed: dict[str, Placement],
    hosts: HostMap,
) -> list[Action]:
    """The group on the shared Sentinels: each running (any group using one may start it), the
    group monitored once its replicas are synced (so that Sentinel's first INFO of the primary lists
    them), then introduced to its peers (``AnnounceSentinels``) instead of waiting for their hellos.
    A group moving from Sentinels of its own stops them once the shared ones are ready (``placed``
    loses them), and a shared Sentinel that lists a replica or peer that is gone is reset, one at a
    time while the others are linked."""
    actions: list[Action] = []
    monitoring: list[tuple[NodeKey, int, SentinelView]] = []
    keys = shared_sentinel_keys(min(shared_set(node_id) for node_id in placed if is_shared(node_id)))
    for key in keys:
        at = placed[key.node_id]
        sentinel = observed.sentinels.get(key)
        if sentinel is None or not sentinel.reachable:
            continue
        if sentinel.port is None:
            actions.append(AllocatePort(key, at))
        elif sentinel.pid is None:
            actions.append(StartSharedSentinel(key, at))
        elif sentinel.view is None:
            # Not monitored: a new group, or a Sentinel whose file was lost. Sentinel's own file keeps
            # the monitor across its restarts, so this is rare after the first time.
            # A probe that merely failed asks again: ``JoinSentinel`` leaves a monitored master as it is.
            if view.primary is not None and _all_nodes_ready(members, observed, view):
                actions.append(JoinSentinel(key, at, spec.id, view.primary))
        else:
            monitoring.append((key, sentinel.port, sentinel.view))
            timings = sentinel.view.timings
            wanted = Timings(PING_PERIOD_MS, ASK_PERIOD_MS)  # the same for every group: no group's own
            if timings is not None and timings != wanted:
                actions.append(TuneSentinel(key, at, wanted))
    peers, replicas = len(keys) - 1, len(members) - 1
    on_primary = (
        view.primary is not None
        and len(monitoring) == len(keys)
        and all((v.master_host, v.master_port) == view.primary for _, _, v in monitoring)
    )
    if not on_primary or view.primary is None:
        return actions
    if any(v.num_other_sentinels < peers for _, _, v in monitoring):
        hellos = tuple((placed[k.node_id].address, port, my_id(str(k))) for k, port, _ in monitoring)
        actions.append(AnnounceSentinels(spec.id, view.primary, hellos))
    ready = _all_nodes_ready(members, observed, view) and all(
        v.ready_replicas >= replicas
        and v.connected_peers >= peers
        and not v.flags & {"s_down", "o_down", "failover_in_progress"}
        for _, _, v in monitoring
    )
    own = [k for k in group_sentinel_keys(spec.id, placed) if not is_shared(k.node_id)]
    if own and ready:
        for key in own:
            at = placed.pop(key.node_id)
            if hosts.reachable(at):
                actions.append(RemoveNode(key, at))
    elif not own and ready and not actions and not any(p.moving_to for p in view.places.values()):
        # (A member moving off a draining host has a second process, an extra replica meanwhile.)
        stale = [k for k, _, v in monitoring if v.num_other_sentinels > peers or v.num_replicas > replicas]
        if stale:
            actions.append(ResetSentinel(stale[0], placed[stale[0].node_id], spec.id, view.primary))
    return actions


def _sentinel_zones(members: Members, view: _View, count: int) -> list[str | None]:
    """One AZ per Sentinel: the members' AZs in turn, so Sentinels sit one per AZ when hosts allow."""
    zones = list(dict.fromkeys(p.at.zone for p in view.places.values() if p.at is not None))
    if not zones:
        zones = list(dict.fromkeys(m.node_azs[0] for m, _ in members.values()))
    return [zones[i % len(zones)] if zones else None for i in range(count)]


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
        place = view.places[cluster_id]
        obs = UNPLACED if place.fresh else observed.nodes[cluster_id]
        is_primary = cluster_id == view.primary_id
        in_role = _in_role(obs, is_primary=is_primary, primary=view.primary, link=True)
        # A new node is available once it serves in its role (a replica: with its data); after that,
        # a node is available while it serves: roles in flux during a failover are the group's affair.
        ready = obs.serving and (in_role or _was_serving(previous)) and cluster_id not in recovering
        recorded = previous.node(MEMBER_NODE_ID)
        if recorded is not None and place.fresh:
            recorded = replace(recorded, port=None)  # its port was its lost host's
        node = node_status(
            MEMBER_NODE_ID,
            recorded,
            port=obs.port,
            running=obs.pid is not None,
            ready=ready,
            role=PRIMARY if is_primary else REPLICA,
            now=now,
        )
        replaced_from = None if ready else (recorded.replaced_from if recorded is not None else None)
        if place.fresh and previous.node(MEMBER_NODE_ID) is not None:
            lost = previous.node(MEMBER_NODE_ID)
            replaced_from = lost.placement.host if lost is not None and lost.placement is not None else None
        node = replace(node, placement=place.at, moving_to=place.moving_to, replaced_from=replaced_from)
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
    spec: ReplicationGroupSpec, status: GroupStatus, members: Members, observed: GroupObservation, hosts: HostMap
) -> Plan:
    primary_id = status.primary_cluster_id or spec.primary_cluster_id
    retained = primary_id if spec.retain_primary_cluster else None
    # Sentinels go first, so that tearing the nodes down never triggers a failover. What runs on a
    # host out of reach is left to that host's own pass when it returns (the records are gone then).
    actions: list[Action] = []
    for key in group_sentinel_keys(spec.id, status.sentinels):
        at = status.sentinels.get(key.node_id)
        if at is not None and hosts.reachable(at):
            # A shared Sentinel forgets the group; one of its own goes with it.
            actions.append(LeaveSentinel(key, at, spec.id) if is_shared(key.node_id) else RemoveNode(key, at))
    actions.append(RemoveNode(endpoint_key(spec.id), hosts.endpoint))
    for cluster_id, (_, member_status) in members.items():
        if cluster_id == retained:
            actions.append(DetachMember(cluster_id))
            continue
        node = member_status.node(MEMBER_NODE_ID)
        for at in (node.placement, node.moving_to) if node is not None else ():
            if at is not None and hosts.reachable(at):
                actions.append(RemoveNode(member_key(cluster_id), at))
        actions.append(DeleteRecord(CLUSTER, cluster_id))
    actions.append(DeleteRecord(KIND, spec.id))
    return Plan(actions=tuple(actions), events=(Event(spec.id, KIND, f"Replication group {spec.id} deleted"),))
