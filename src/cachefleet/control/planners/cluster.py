"""Planner for a standalone cache cluster: Memcached with 1-40 nodes, or one Redis node."""

from __future__ import annotations

from cachefleet.control.actions import (
    Action,
    AllocatePort,
    DeleteRecord,
    Event,
    Plan,
    RemoveNode,
    ReplicaOf,
    StartNode,
)
from cachefleet.control.observe import NodeObservation
from cachefleet.control.planners.nodes import cluster_status, node_status
from cachefleet.hosts.base import NodeKey
from cachefleet.model import status as st
from cachefleet.model.ids import node_id
from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import ClusterStatus

KIND = "cache-cluster"


def node_keys(spec: CacheClusterSpec) -> list[NodeKey]:
    return [NodeKey(spec.id, node_id(i)) for i in range(1, spec.num_nodes + 1)]


def plan(spec: CacheClusterSpec, status: ClusterStatus, observed: dict[NodeKey, NodeObservation], *, now: str) -> Plan:
    keys = node_keys(spec)
    if spec.deleting:
        return Plan(
            actions=(*(RemoveNode(k) for k in keys), DeleteRecord(KIND, spec.id)),
            events=(Event(spec.id, KIND, "Cache cluster deleted"),),
        )
    actions: list[Action] = []
    for key in keys:
        obs = observed[key]
        if obs.port is None:
            actions.append(AllocatePort(key))
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
            role=st.PRIMARY if spec.engine != "memcached" else None,
            now=now,
        )
        for k in keys
    )
    new_status = cluster_status(status, nodes)
    events: tuple[Event, ...] = ()
    if status.status == st.CREATING and new_status.status == st.AVAILABLE:
        events = (Event(spec.id, KIND, "Cache cluster created"),)
    return Plan(
        cluster_statuses={spec.id: new_status},
        events=events,
        converged=all(n.status == st.AVAILABLE for n in nodes),
    )
