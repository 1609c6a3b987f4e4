"""Rules every planner shares: how one node's status follows from what was observed."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from cachefleet.model.status import ClusterState, ClusterStatus, GroupState, NodeState, NodeStatus

S = TypeVar("S", GroupState, ClusterState)


def node_status(
    node_id: str,
    previous: NodeStatus | None,
    *,
    port: int | None,
    running: bool,
    ready: bool,
    role: str | None,
    now: str,
) -> NodeStatus:
    """``creating`` until the node first serves, then ``available``; ``rebooting`` from the moment its
    process is found gone until it serves again. A live process that misses one probe (Sentinel cuts
    client connections when it promotes a node) keeps the status it had.

    The port stays recorded while the node has none on its host (its directory was lost): the store
    is where a replacement finds the port its clients know.
    """
    created_at = previous.created_at if previous and previous.created_at else (now if ready else None)
    if ready:
        state = NodeState.AVAILABLE
    elif created_at is None:
        state = NodeState.CREATING
    elif not running or previous is None:
        state = NodeState.REBOOTING
    else:
        state = previous.status
    if port is None and previous is not None:
        port = previous.port
    return NodeStatus(node_id=node_id, status=state, port=port, role=role, created_at=created_at)


def lifecycle_status(previous: S, all_ready: bool) -> S:
    """``creating`` and ``modifying`` end once every node serves; nodes recovering later do not undo it."""
    states = type(previous)
    if previous in (states.CREATING, states.MODIFYING) and not all_ready:
        return previous
    return states.AVAILABLE if previous in (states.CREATING, states.MODIFYING, states.AVAILABLE) else previous


def cluster_status(previous: ClusterStatus, nodes: tuple[NodeStatus, ...]) -> ClusterStatus:
    all_ready = all(n.status == NodeState.AVAILABLE for n in nodes)
    # Reboot progress and the parameter apply status carry over; planners update them themselves.
    return replace(previous, status=lifecycle_status(previous.status, all_ready), nodes=nodes, message="")


def port_held(cluster_id: str, node_id: str, port: int | None) -> str:
    """The event that names a node's port conflict (the loop records it once, then backs off)."""
    return (
        f"Cache node {node_id} of {cluster_id} cannot start: its port {port} is held by another process. "
        "Retrying until the port is free"
    )
