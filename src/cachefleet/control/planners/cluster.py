"""Planner for a standalone cache cluster: Memcached with 1-40 nodes, or one Redis node.

Where each node runs is decided here as for a group's members (``planners.group``): a new node is
placed in its AZ (``model.placement``), a node whose host is lost is placed again (in its AZ when a
host there has room, else elsewhere, with an event) and starts afresh there, and a node on a
draining host moves off it, one node at a time: a second process starts on the target host (a Redis
node as a replica of the first, handed the primary role by a switchover that loses no acknowledged
write; a Memcached node empty, as a cache node replaced by ElastiCache is), then the old one goes.

A Memcached cluster also has its configuration endpoint (``discovery``): the nodes it lists, and
the config version that rises with every change of that list.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    DiscoveryInputs,
    Event,
    Plan,
    ReloadConfigEndpoint,
    RemoveNode,
    ReplicaOf,
    RestartNode,
    StartConfigEndpoint,
    StartNode,
    Switchover,
)
from cachefleet.control.hosts import HostMap, memory_of
from cachefleet.control.observe import UNPLACED, ClusterObservation, ConfigEndpointObservation, NodeObservation
from cachefleet.control.planners import params, reboot, security
from cachefleet.control.planners.group import replacing
from cachefleet.control.planners.nodes import cluster_status, node_status, port_held
from cachefleet.model.errors import Fatal
from cachefleet.model.nodes import NodeKey, Placement, config_endpoint_key, node_key
from cachefleet.model.placement import Want, no_room, place_each
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import PRIMARY, ClusterState, ClusterStatus, NodeState, NodeStatus

KIND = "cache-cluster"


def node_keys(spec: CacheClusterSpec) -> list[NodeKey]:
    return [node_key(spec.id, n) for n, _ in spec.nodes]


def leaving_keys(spec: CacheClusterSpec, status: ClusterStatus) -> list[NodeKey]:
    """Nodes the cluster still runs that its spec no longer has (removed by ModifyCacheCluster)."""
    kept = {n for n, _ in spec.nodes}
    return [node_key(spec.id, n.node_id) for n in status.nodes if n.node_id not in kept]


@dataclass
class _Place:
    at: Placement | None
    fresh: bool = False
    moving_to: Placement | None = None
    replaced_from: str | None = None


@dataclass
class _Pass:
    """What one pass is deciding, shared by its steps."""

    spec: CacheClusterSpec
    hosts: HostMap
    nodes: dict[NodeKey, NodeObservation]
    places: dict[NodeKey, _Place] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    blocked: list[Event] = field(default_factory=list)


def plan(
    spec: CacheClusterSpec,
    status: ClusterStatus,
    observed: ClusterObservation,
    *,
    hosts: HostMap,
    now: str,
    wanted: params.Wanted,
    secure: security.Wanted | None = None,
) -> Plan:
    """``secure``: the users and TLS of a Redis cluster's node (None for Memcached)."""
    keys = node_keys(spec)
    memcached = spec.engine == "memcached"
    if spec.deleting:
        removals: list[Action] = []
        for key in [*keys, *(leaving_keys(spec, status) if memcached else [])]:
            node = status.node(key.node_id)
            for at in (node.placement, node.moving_to) if node is not None else ():
                if at is not None and hosts.reachable(at):
                    removals.append(RemoveNode(key, at))
        if memcached:
            removals.append(RemoveNode(config_endpoint_key(spec.id), hosts.endpoint))
        return Plan(
            actions=(*removals, DeleteRecord(KIND, spec.id)),
            events=(Event(spec.id, KIND, "Cache cluster deleted"),),
        )
    work = _Pass(spec, hosts, dict(observed.nodes))
    _placements(work, status, keys)
    busy = _moves(work, keys, observed)
    places, nodes, actions, events, blocked = work.places, work.nodes, work.actions, work.events, work.blocked
    for key in keys:
        place = places[key]
        if key in busy or place.at is None or not hosts.reachable(place.at):
            continue
        obs = UNPLACED if place.fresh else nodes[key]
        if not obs.reachable:
            continue  # its host did not answer this pass: nothing to command there
        if obs.port is None:
            recorded = status.node(key.node_id)
            keep = recorded.port if recorded is not None and not place.fresh else None
            actions.append(AllocatePort(key, place.at, port=keep))
        elif obs.port_taken:
            # The node keeps its port (its clients know it): it waits until the port is free again.
            blocked.append(Event(spec.id, KIND, port_held(spec.id, key.node_id, obs.port)))
        elif obs.pid is None:
            actions.append(StartNode(key, place.at))
        elif obs.redis is not None and obs.redis.role != "master":
            actions.append(ReplicaOf(key, place.at, None))

    if memcached and observed.endpoint is not None and observed.endpoint.port is None:
        actions.append(AllocatePort(config_endpoint_key(spec.id), hosts.endpoint, port=status.configuration_port))
    node_statuses = tuple(_node(spec, status, key, places[key], nodes[key], now=now) for key in keys)
    new_status = cluster_status(status, node_statuses)
    if actions:
        return Plan(actions=tuple(actions), statuses={(KIND, spec.id): new_status}, events=tuple(events))
    discovery: list[Action] = []
    settled = True
    if memcached and observed.endpoint is not None:
        discovery, new_status, found, settled = _discovery(spec, status, new_status, observed, hosts)
        events += found
    if status.status == ClusterState.CREATING and new_status.status == ClusterState.AVAILABLE:
        events.append(Event(spec.id, KIND, "Cache cluster created"))

    checks = {k.node_id: params.check_node(k, places[k].at, nodes[k], wanted) for k in keys}
    config_actions: list[Action] = [c.action for c in checks.values() if c.action is not None]
    node_params = {n: c.status for n, c in checks.items()}
    new_status = replace(
        new_status,
        nodes=tuple(
            replace(n, parameter_status=node_params.get(n.node_id, n.parameter_status)) for n in new_status.nodes
        ),
        parameter_apply_status=params.apply_status(node_params.values()),
    )
    if config_actions and status.status == ClusterState.MODIFYING:
        new_status = replace(new_status, status=ClusterState.MODIFYING)  # modifying ends once the parameters are in
    events += [
        Event(spec.id, KIND, m)
        for m in params.events(status.parameter_apply_status, new_status.parameter_apply_status, node_params)
    ]

    secured = security.Step()
    renewal = None
    if secure is not None:
        running = {k: at for k in keys if k not in busy and (at := places[k].at) is not None and not places[k].fresh}
        secured = security.nodes({k: nodes[k] for k in running}, running, secure, datetime.fromisoformat(now))
        renewal = security.next_renewal((nodes[k].certificate for k in running), datetime.fromisoformat(now))
        config_actions = [*secured.actions, *config_actions]
        if secured.in_sync and not secured.actions and all(n.status == NodeState.AVAILABLE for n in node_statuses):
            new_status = replace(new_status, security_done=spec.security.version, acl_fingerprint=secure.fingerprint)
        elif status.status == ClusterState.MODIFYING:
            new_status = replace(new_status, status=ClusterState.MODIFYING)  # until the nodes have it
    ready = {k.node_id: _ready(spec, nodes[k]) for k in keys}
    taken = reboot.step(spec, status, ready, may_restart=not config_actions)
    restart: list[Action] = []
    if taken is not None:
        if taken.restart is not None:
            key = node_key(spec.id, taken.restart)
            at = places[key].at
            if at is not None:
                restart.append(RestartNode(key, at))
        new_status = reboot.record(new_status, taken, spec.reboot_requests)
        events += [Event(spec.id, KIND, m) for m in taken.events]
    return Plan(
        actions=(*discovery, *restart, *config_actions),
        statuses={(KIND, spec.id): new_status},
        events=tuple(events),
        converged=all(n.status == NodeState.AVAILABLE for n in node_statuses)
        and not config_actions
        and taken is None
        and not any(hosts.drains(p.at) for p in places.values())
        and settled,
        blocked=tuple(blocked),
        revisit=renewal,
    )


def _placements(work: _Pass, status: ClusterStatus, keys: list[NodeKey]) -> None:
    spec, hosts, places = work.spec, work.hosts, work.places
    wants: list[tuple[NodeKey, Want, Placement | None]] = []
    memory = memory_of(spec.node_type)
    for key, zone in zip(keys, spec.node_azs, strict=True):
        node = status.node(key.node_id)
        at = node.placement if node is not None else None
        if at is None:
            wants.append((key, Want(f"{spec.id}/{key.node_id}", zone, memory), None))
        elif hosts.lost(at):
            wants.append((key, Want(f"{spec.id}/{key.node_id}", at.zone, memory, strict=False), at))
        else:
            assert node is not None
            places[key] = _Place(at, moving_to=node.moving_to, replaced_from=node.replaced_from)
    if wants:
        together = Counter(h for p in places.values() for h in _hosts_of(p))
        choices = place_each([w for _, w, _ in wants], hosts.rooms, subnets=hosts.subnets, together=together)
        for (key, want, lost), choice in zip(wants, choices, strict=True):
            if choice is None:
                if lost is None:
                    raise Fatal(no_room(want))
                message = f"Cache node {key.node_id} of {spec.id} cannot be replaced: {no_room(want)} Retrying"
                work.blocked.append(Event(spec.id, KIND, message))
                places[key] = _Place(lost)
                continue
            at = Placement(choice.host, choice.address, choice.zone)
            places[key] = _Place(at, fresh=True, replaced_from=lost.host if lost is not None else None)
            if lost is not None:
                work.events.append(Event(spec.id, KIND, replacing(spec.id, key.node_id, lost, at)))


def _hosts_of(place: _Place) -> list[str]:
    return [p.host for p in (place.at, place.moving_to) if p is not None]


def _moves(work: _Pass, keys: list[NodeKey], observed: ClusterObservation) -> set[NodeKey]:
    """Nodes moving off draining hosts: the move under way carried on, or one started when all serve."""
    spec, hosts, places, nodes, actions = work.spec, work.hosts, work.places, work.nodes, work.actions
    busy: set[NodeKey] = set()
    redis = spec.engine != "memcached"
    for key in keys:
        place = places[key]
        target, old = place.moving_to, place.at
        if target is None or old is None:
            continue
        busy.add(key)
        seen = observed.targets.get(key, UNPLACED)
        current = nodes[key]
        if not hosts.drains(old) or not hosts.reachable(target) or hosts.drains(target):
            place.moving_to = None  # called off: undrained, or the target went away
            if hosts.reachable(target):
                actions.append(RemoveNode(key, target))
            continue
        follows = (old.address, current.port) if redis and current.port is not None else None
        if seen.port is None:
            actions.append(AllocatePort(key, target))
        elif seen.port_taken:
            continue
        elif seen.pid is None:
            if not redis or (follows is not None and current.serving):
                actions.append(StartNode(key, target, replicaof=follows))
        elif not redis:
            if seen.serving:
                _finish(work, key, place, seen)
        elif _is_master(seen) and not _is_master(current):
            _finish(work, key, place, seen)  # after the switchover
        elif (
            follows is not None
            and seen.port is not None
            and seen.redis is not None
            and seen.redis.role == "slave"
            and (seen.redis.master_host, seen.redis.master_port) == follows
            and seen.redis.master_link_up
        ):
            actions.append(Switchover(old=follows, new=(target.address, seen.port)))
    if busy or actions or not all(nodes[k].serving for k in keys if hosts.reachable(places[k].at)):
        return busy
    for key in keys:
        place = places[key]
        if place.at is None or place.fresh or not hosts.drains(place.at):
            continue
        together = Counter(h for k, p in places.items() if k != key for h in _hosts_of(p))
        want = Want(f"{spec.id}/{key.node_id}", place.at.zone, memory_of(spec.node_type), strict=False)
        (choice,) = place_each([want], hosts.rooms, subnets=hosts.subnets, together=together)
        if choice is None:
            message = f"Cache node {key.node_id} of {spec.id} cannot leave draining host {place.at.host}"
            work.blocked.append(Event(spec.id, KIND, f"{message}: {no_room(want)} Retrying"))
            continue
        place.moving_to = Placement(choice.host, choice.address, choice.zone)
        actions.append(AllocatePort(key, place.moving_to))
        busy.add(key)
        message = f"Moving cache node {key.node_id} of {spec.id} off draining host {place.at.host}"
        work.events.append(Event(spec.id, KIND, f"{message} to host {choice.host}"))
        break
    return busy


def _finish(work: _Pass, key: NodeKey, place: _Place, seen: NodeObservation) -> None:
    """The node's second process takes over: it runs there now, and the old one goes."""
    old, target = place.at, place.moving_to
    assert old is not None
    assert target is not None
    place.at, place.moving_to = target, None
    work.nodes[key] = seen
    if work.hosts.reachable(old):
        work.actions.append(RemoveNode(key, old))
    message = f"Cache node {key.node_id} of {work.spec.id} moved from host {old.host} to host {target.host}"
    work.events.append(Event(work.spec.id, KIND, message))


def _is_master(obs: NodeObservation) -> bool:
    return obs.redis is not None and obs.redis.role == "master"


def _node(
    spec: CacheClusterSpec, status: ClusterStatus, key: NodeKey, place: _Place, obs: NodeObservation, *, now: str
) -> NodeStatus:
    seen = UNPLACED if place.fresh else obs
    recorded = status.node(key.node_id)
    if recorded is not None and place.fresh:
        recorded = replace(recorded, port=None)  # its port was its lost host's
    ready = seen.serving
    node = node_status(
        key.node_id,
        recorded,
        port=seen.port,
        running=seen.pid is not None,
        ready=ready,
        role=PRIMARY if spec.engine != "memcached" else None,
        now=now,
    )
    return replace(
        node, placement=place.at, moving_to=place.moving_to, replaced_from=None if ready else place.replaced_from
    )


def _discovery(
    spec: CacheClusterSpec,
    previous: ClusterStatus,
    status: ClusterStatus,
    observed: ClusterObservation,
    hosts: HostMap,
) -> tuple[list[Action], ClusterStatus, list[Event], bool]:
    """The configuration endpoint's list, version and process; nodes leaving once it no longer lists them.

    A node is listed from the moment it first serves and stays listed while it is replaced (its
    clients retry its address); a removed node leaves the list first, and its process goes only
    once the running endpoint serves a list without it.
    """
    endpoint = observed.endpoint
    assert endpoint is not None
    azs = dict(spec.nodes)
    serving = {k.node_id for k, obs in observed.nodes.items() if obs.serving}
    listed = tuple(n for n in azs if n in previous.discovery or n in serving)
    changed = listed != previous.discovery or previous.config_version == 0
    version = previous.config_version + 1 if changed else previous.config_version
    ports = {n.node_id: n.port for n in status.nodes}
    members = tuple((n, port) for n in listed if (port := ports.get(n)) is not None)
    inputs = DiscoveryInputs(version, members)
    key = config_endpoint_key(spec.id)
    actions: list[Action] = []
    if endpoint.pid is None:
        actions.append(StartConfigEndpoint(key, hosts.endpoint, spec.id, inputs))
    elif endpoint.inputs != inputs.to_json():
        actions.append(ReloadConfigEndpoint(key, hosts.endpoint, spec.id, inputs))
    events = []
    if previous.discovery:
        events += [
            Event(spec.id, KIND, f"Added cache node {n} in availability zone {azs[n]}")
            for n in listed
            if n not in previous.discovery
        ]
    served = _served(endpoint)
    leaving = leaving_keys(spec, previous)
    gone = [k for k in leaving if endpoint.pid is not None and served is not None and k.node_id not in served]
    for k in gone:
        node = previous.node(k.node_id)
        for at in (node.placement, node.moving_to) if node is not None else ():
            if at is not None and hosts.reachable(at):
                actions.append(RemoveNode(k, at))
    events += [Event(spec.id, KIND, f"Removed cache node {k.node_id}") for k in gone]
    remaining = tuple(n for n in previous.nodes if n.node_id not in azs and n.node_id not in {k.node_id for k in gone})
    settled = not actions and endpoint.serving and not remaining and set(listed) == set(azs)
    state = status.status
    if previous.status in (ClusterState.CREATING, ClusterState.MODIFYING) and not settled:
        state = previous.status  # created or resized once discovery serves every node
    new_status = replace(
        status,
        status=state,
        nodes=(*status.nodes, *remaining),
        discovery=listed,
        config_version=version,
        configuration_port=endpoint.port,
    )
    if previous.status == ClusterState.MODIFYING and state != ClusterState.MODIFYING and previous.resize_from:
        events.append(
            Event(spec.id, KIND, f"Finished modifying number of nodes from {previous.resize_from} to {len(azs)}")
        )
        new_status = replace(new_status, resize_from=None)
    return actions, new_status, events, settled


def _served(endpoint: ConfigEndpointObservation) -> set[str] | None:
    """The node ids the running endpoint lists, from the inputs file beside it."""
    if endpoint.inputs is None:
        return None
    try:
        return {str(m[0]) for m in json.loads(endpoint.inputs)["members"]}
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _ready(spec: CacheClusterSpec, obs: NodeObservation) -> bool:
    if spec.engine == "memcached":
        return obs.serving
    return obs.serving and obs.redis is not None and obs.redis.role == "master"
