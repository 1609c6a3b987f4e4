"""Planner for a cluster-mode-disabled replication group: one primary, up to five replicas.

Replicas are started already pointed at the primary (``replicaof`` in their config), so a node never
comes up as a second master. The group is ``available`` only once every replica reports
``master_link_status:up``: Redis counts a replica as connected before it has any data.
"""

from __future__ import annotations

from cachefleet.control.actions import (
    Action,
    Address,
    AllocatePort,
    DeleteRecord,
    DetachMember,
    Event,
    Plan,
    RemoveNode,
    ReplicaOf,
    StartNode,
)
from cachefleet.control.observe import NodeObservation
from cachefleet.control.planners.nodes import cluster_status, lifecycle_status, node_status
from cachefleet.hosts.base import NodeKey
from cachefleet.model import status as st
from cachefleet.model.specs import CacheClusterSpec, ReplicationGroupSpec
from cachefleet.model.status import ClusterStatus, GroupStatus

KIND = "replication-group"
CLUSTER = "cache-cluster"


def member_key(cluster_id: str) -> NodeKey:
    return NodeKey(cluster_id, "0001")


def plan(
    spec: ReplicationGroupSpec,
    status: GroupStatus,
    members: dict[str, tuple[CacheClusterSpec, ClusterStatus]],
    observed: dict[NodeKey, NodeObservation],
    *,
    address: str,
    now: str,
) -> Plan:
    primary_id = status.primary_cluster_id or spec.primary_cluster_id
    if spec.deleting:
        return _plan_delete(spec, list(members), primary_id)

    primary_port = observed[member_key(primary_id)].port
    primary: Address | None = (address, primary_port) if primary_port else None
    actions: list[Action] = []
    for cluster_id in members:
        action = _converge_member(
            member_key(cluster_id),
            observed[member_key(cluster_id)],
            is_primary=cluster_id == primary_id,
            primary=primary,
        )
        if action is not None:
            actions.append(action)
    if actions:
        return Plan(actions=tuple(actions))

    statuses: dict[str, ClusterStatus] = {}
    for cluster_id, (_, previous) in members.items():
        is_primary = cluster_id == primary_id
        obs = observed[member_key(cluster_id)]
        ready = obs.serving and _in_role(obs, is_primary=is_primary, primary=primary)
        node = node_status(
            "0001",
            previous.node("0001"),
            port=obs.port,
            ready=ready,
            role=st.PRIMARY if is_primary else st.REPLICA,
            now=now,
        )
        statuses[cluster_id] = cluster_status(previous, (node,))
    all_ready = all(s.nodes[0].status == st.AVAILABLE for s in statuses.values())
    new_status = GroupStatus(status=lifecycle_status(status.status, all_ready), primary_cluster_id=primary_id)
    events: tuple[Event, ...] = ()
    if status.status == st.CREATING and new_status.status == st.AVAILABLE:
        events = (Event(spec.id, KIND, f"Replication group {spec.id} created"),)
    return Plan(
        group_statuses={spec.id: new_status}, cluster_statuses=statuses, events=events, converged=all_ready
    )


def _converge_member(
    key: NodeKey, obs: NodeObservation, *, is_primary: bool, primary: Address | None
) -> Action | None:
    if obs.port is None:
        return AllocatePort(key)
    if obs.pid is None:
        if is_primary:
            return StartNode(key)
        # A replica waits for its primary's address rather than starting alone.
        return StartNode(key, replicaof=primary) if primary else None
    if obs.redis is None or _in_role(obs, is_primary=is_primary, primary=primary, link=False):
        return None
    return ReplicaOf(key, None if is_primary else primary)


def _in_role(obs: NodeObservation, *, is_primary: bool, primary: Address | None, link: bool = True) -> bool:
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


def _plan_delete(spec: ReplicationGroupSpec, member_ids: list[str], primary_id: str) -> Plan:
    retained = primary_id if spec.retain_primary_cluster else None
    actions: list[Action] = []
    for cluster_id in member_ids:
        if cluster_id == retained:
            actions.append(DetachMember(cluster_id))
        else:
            actions += [RemoveNode(member_key(cluster_id)), DeleteRecord(CLUSTER, cluster_id)]
    actions.append(DeleteRecord(KIND, spec.id))
    return Plan(
        actions=tuple(actions), events=(Event(spec.id, KIND, f"Replication group {spec.id} deleted"),)
    )
