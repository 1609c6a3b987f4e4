"""Planner for a standalone cache cluster: Memcached with 1-40 nodes, or one Redis node."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    Event,
    Plan,
    RemoveNode,
    ReplicaOf,
    RestartNode,
    StartNode,
)
from cachefleet.control.observe import NodeObservation
from cachefleet.control.planners import params, reboot, security
from cachefleet.control.planners.nodes import cluster_status, node_status, port_held
from cachefleet.model.nodes import NodeKey, cluster_node_keys, node_key
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import PRIMARY, ClusterState, ClusterStatus, NodeState

KIND = "cache-cluster"


def node_keys(spec: CacheClusterSpec) -> list[NodeKey]:
    return cluster_node_keys(spec.id, spec.num_nodes)


def plan(
    spec: CacheClusterSpec,
    status: ClusterStatus,
    observed: dict[NodeKey, NodeObservation],
    *,
    now: str,
    wanted: params.Wanted,
    secure: security.Wanted | None = None,
) -> Plan:
    """``secure``: the users and TLS of a Redis cluster's node (None for Memcached)."""
    keys = node_keys(spec)
    if spec.deleting:
        return Plan(
            actions=(*(RemoveNode(k) for k in keys), DeleteRecord(KIND, spec.id)),
            events=(Event(spec.id, KIND, "Cache cluster deleted"),),
        )
    actions: list[Action] = []
    blocked: list[Event] = []
    for key in keys:
        obs = observed[key]
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
    if actions:
        return Plan(actions=tuple(actions))

    nodes = tuple(
        node_status(
            k.node_id,
            status.node(k.node_id),
            port=observed[k].port,
            running=observed[k].pid is not None,
            ready=observed[k].serving,
            role=PRIMARY if spec.engine != "memcached" else None,
            now=now,
        )
        for k in keys
    )
    new_status = cluster_status(status, nodes)
    events: list[Event] = []
    if status.status == ClusterState.CREATING and new_status.status == ClusterState.AVAILABLE:
        events.append(Event(spec.id, KIND, "Cache cluster created"))

    checks = {k.node_id: params.check_node(k, observed[k], wanted) for k in keys}
    config_actions: list[Action] = [c.action for c in checks.values() if c.action is not None]
    node_params = {n: c.status for n, c in checks.items()}
    new_status = replace(
        new_status,
        nodes=tuple(replace(n, parameter_status=node_params[n.node_id]) for n in new_status.nodes),
        parameter_apply_status=params.apply_status(node_params.values()),
    )
    if config_actions and status.status == ClusterState.MODIFYING:
        new_status = replace(new_status, status=ClusterState.MODIFYING)  # modifying ends once the parameters are in
    events += [
        Event(spec.id, KIND, m)
        for m in params.events(status.parameter_apply_status, new_status.parameter_apply_status, node_params)
    ]

    secured = security.Step()
    if secure is not None:
        secured = security.nodes({k: observed[k] for k in keys}, secure, datetime.fromisoformat(now))
        config_actions = [*secured.actions, *config_actions]
        if secured.in_sync and not secured.actions and all(n.status == NodeState.AVAILABLE for n in nodes):
            new_status = replace(new_status, security_done=spec.security.version, acl_fingerprint=secure.fingerprint)
        elif status.status == ClusterState.MODIFYING:
            new_status = replace(new_status, status=ClusterState.MODIFYING)  # until the nodes have it
    ready = {k.node_id: _ready(spec, observed[k]) for k in keys}
    taken = reboot.step(spec, status, ready, may_restart=not config_actions)
    restart: list[Action] = []
    if taken is not None:
        if taken.restart is not None:
            restart.append(RestartNode(node_key(spec.id, taken.restart)))
        new_status = reboot.record(new_status, taken, spec.reboot_requests)
        events += [Event(spec.id, KIND, m) for m in taken.events]
    return Plan(
        actions=(*restart, *config_actions),
        statuses={(KIND, spec.id): new_status},
        events=tuple(events),
        converged=all(n.status == NodeState.AVAILABLE for n in nodes) and not config_actions and taken is None,
        blocked=tuple(blocked),
    )


def _ready(spec: CacheClusterSpec, obs: NodeObservation) -> bool:
    if spec.engine == "memcached":
        return obs.serving
    return obs.serving and obs.redis is not None and obs.redis.role == "master"
