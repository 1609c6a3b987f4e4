"""Rules every planner shares: how one node's status follows from what was observed."""

from __future__ import annotations

from cachefleet.model import status as st
from cachefleet.model.status import ClusterStatus, NodeStatus


def node_status(
    node_id: str, previous: NodeStatus | None, *, port: int | None, ready: bool, role: str | None, now: str
) -> NodeStatus:
    """``creating`` until the node first serves, then ``available``, or ``rebooting`` while it recovers."""
    created_at = previous.created_at if previous and previous.created_at else (now if ready else None)
    state = st.AVAILABLE if ready else st.REBOOTING if created_at else st.CREATING
    return NodeStatus(node_id=node_id, status=state, port=port, role=role, created_at=created_at)


def lifecycle_status(previous: str, all_ready: bool) -> str:
    """``creating`` ends the first time every node serves; recovering nodes later do not undo it."""
    if previous == st.CREATING and not all_ready:
        return st.CREATING
    return st.AVAILABLE if previous in (st.CREATING, st.AVAILABLE) else previous


def cluster_status(previous: ClusterStatus, nodes: tuple[NodeStatus, ...]) -> ClusterStatus:
    all_ready = all(n.status == st.AVAILABLE for n in nodes)
    return ClusterStatus(status=lifecycle_status(previous.status, all_ready), nodes=nodes)
