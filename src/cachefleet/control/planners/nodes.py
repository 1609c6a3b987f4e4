"""Rules every planner shares: how one node's status follows from what was observed."""

from __future__ import annotations

from dataclasses import replace

from cachefleet.model import status as st
from cachefleet.model.status import ClusterStatus, NodeStatus


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
    client connections when it promotes a node) keeps the status it had."""
    created_at = previous.created_at if previous and previous.created_at else (now if ready else None)
    if ready:
        state = st.AVAILABLE
    elif created_at is None:
        state = st.CREATING
    elif not running or previous is None:
        state = st.REBOOTING
    else:
        state = previous.status
    return NodeStatus(node_id=node_id, status=state, port=port, role=role, created_at=created_at)


def lifecycle_status(previous: str, all_ready: bool) -> str:
    """``creating`` and ``modifying`` end once every node serves; nodes recovering later do not undo it."""
    if previous in (st.CREATING, st.MODIFYING) and not all_ready:
        return previous
    return st.AVAILABLE if previous in (st.CREATING, st.MODIFYING, st.AVAILABLE) else previous


def cluster_status(previous: ClusterStatus, nodes: tuple[NodeStatus, ...]) -> ClusterStatus:
    all_ready = all(n.status == st.AVAILABLE for n in nodes)
    # Reboot progress and the parameter apply status carry over; planners update them themselves.
    return replace(previous, status=lifecycle_status(previous.status, all_ready), nodes=nodes, message="")
