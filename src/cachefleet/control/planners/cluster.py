"""Planner for a standalone cache cluster: Memcached with 1-40 nodes, or one Redis node.

A Memcached cluster also has its configuration endpoint (``discovery``): the nodes it lists, and
the config version that rises with every change of that list.
"""

from __future__ import annotations

import json
from dataclasses import replace
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
)
from cachefleet.control.observe import ClusterObservation, ConfigEndpointObservation, NodeObservation
from cachefleet.control.planners import params, reboot, security
from cachefleet.control.planners.nodes import cluster_status, node_status, port_held
from cachefleet.model.nodes import NodeKey, config_endpoint_key, node_key
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import PRIMARY, ClusterState, ClusterStatus, NodeState

KIND = "cache-cluster"


def node_keys(spec: CacheClusterSpec) -> list[NodeKey]:
    return [node_key(spec.id, n) for n, _ in spec.nodes]


def leaving_keys(spec: CacheClusterSpec, status: ClusterStatus) -> list[NodeKey]:
    """Nodes the cluster still runs that its spec no longer has (removed by ModifyCacheCluster)."""
    kept = {n for n, _ in spec.nodes}
    return [node_key(spec.id, n.node_id) for n in status.nodes if n.node_id not in kept]


def plan(
    spec: CacheClusterSpec,
    status: ClusterStatus,
    observed: ClusterObservation,
    *,
    now: str,
    wanted: params.Wanted,
    secure: security.Wanted | None = None,
) -> Plan:
    """``secure``: the users and TLS of a Redis cluster's node (None for Memcached)."""
    keys = node_keys(spec)
    memcached = spec.engine == "memcached"
    if spec.deleting:
        extra = [*leaving_keys(spec, status), config_endpoint_key(spec.id)] if memcached else []
        return Plan(
            actions=(*(RemoveNode(k) for k in [*keys, *extra]), DeleteRecord(KIND, spec.id)),
            events=(Event(spec.id, KIND, "Cache cluster deleted"),),
        )
    observed_nodes = observed.nodes
    actions: list[Action] = []
    blocked: list[Event] = []
    for key in keys:
        obs = observed_nodes[key]
        if obs.port is None:
            recorded = status.node(key.node_id)
            actions.append(AllocatePort(key, port=recorded.port if recorded else None))
        elif obs.port_taken:
            # The node keeps its port (its clients know it): it waits until the port is free again.
            blocked.append(Event(spec.id, KIND, port_held(spec.id, key.node_id, obs.port)))
        elif obs.pid is None:
            actions.append(StartNode(key))
        elif obs.redis is not None and obs.redis.role != "master":
            actions.append(ReplicaOf(key, None))
    if memcached and observed.endpoint is not None and observed.endpoint.port is None:
        actions.append(AllocatePort(config_endpoint_key(spec.id), port=status.configuration_port))
    if actions:
        return Plan(actions=tuple(actions))

    nodes = tuple(
        node_status(
            k.node_id,
            status.node(k.node_id),
            port=observed_nodes[k].port,
            running=observed_nodes[k].pid is not None,
            ready=observed_nodes[k].serving,
            role=PRIMARY if spec.engine != "memcached" else None,
            now=now,
        )
        for k in keys
    )
    new_status = cluster_status(status, nodes)
    events: list[Event] = []
    discovery: list[Action] = []
    settled = True
    if memcached and observed.endpoint is not None:
        discovery, new_status, events, settled = _discovery(spec, status, new_status, observed)
    if status.status == ClusterState.CREATING and new_status.status == ClusterState.AVAILABLE:
        events.append(Event(spec.id, KIND, "Cache cluster created"))

    checks = {k.node_id: params.check_node(k, observed_nodes[k], wanted) for k in keys}
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
        secured = security.nodes({k: observed_nodes[k] for k in keys}, secure, datetime.fromisoformat(now))
        renewal = security.next_renewal((observed_nodes[k].certificate for k in keys), datetime.fromisoformat(now))
        config_actions = [*secured.actions, *config_actions]
        if secured.in_sync and not secured.actions and all(n.status == NodeState.AVAILABLE for n in nodes):
            new_status = replace(new_status, security_done=spec.security.version, acl_fingerprint=secure.fingerprint)
        elif status.status == ClusterState.MODIFYING:
            new_status = replace(new_status, status=ClusterState.MODIFYING)  # until the nodes have it
    ready = {k.node_id: _ready(spec, observed_nodes[k]) for k in keys}
    taken = reboot.step(spec, status, ready, may_restart=not config_actions)
    restart: list[Action] = []
    if taken is not None:
        if taken.restart is not None:
            restart.append(RestartNode(node_key(spec.id, taken.restart)))
        new_status = reboot.record(new_status, taken, spec.reboot_requests)
        events += [Event(spec.id, KIND, m) for m in taken.events]
    return Plan(
        actions=(*discovery, *restart, *config_actions),
        statuses={(KIND, spec.id): new_status},
        events=tuple(events),
        converged=all(n.status == NodeState.AVAILABLE for n in nodes)
        and not config_actions
        and taken is None
        and settled,
        blocked=tuple(blocked),
        revisit=renewal,
    )


def _discovery(
    spec: CacheClusterSpec, previous: ClusterStatus, status: ClusterStatus, observed: ClusterObservation
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
        actions.append(StartConfigEndpoint(key, spec.id, inputs))
    elif endpoint.inputs != inputs.to_json():
        actions.append(ReloadConfigEndpoint(key, spec.id, inputs))
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
    actions += [RemoveNode(k) for k in gone]
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
