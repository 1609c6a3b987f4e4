"""RebootCacheCluster as a pure step function: restart the asked nodes one at a time.

The spec counts reboot requests; the cluster's status records how far the current one got: the node
restarted and not yet serving again (``restarting``) and those back (``restarted``). Each pass moves
a node that serves again to ``restarted``, and only then restarts the next, so a group never has two
members down at once for a reboot. A crash between a restart and the status write restarts that
node once more, which loses nothing: its data went to disk first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from cachefleet.model.specs import CacheClusterSpec
from cachefleet.model.status import ClusterState, ClusterStatus, NodeState


@dataclass(frozen=True)
class RebootStep:
    restart: str | None  # the node to restart in this pass
    restarting: tuple[str, ...]
    restarted: tuple[str, ...]
    finished: bool
    events: tuple[str, ...]


def step(
    spec: CacheClusterSpec, status: ClusterStatus, ready: Mapping[str, bool], *, may_restart: bool
) -> RebootStep | None:
    """None when no reboot is asked for; else what this pass does about it.

    ``ready`` says which nodes serve in their role; ``may_restart`` is False while anything else is
    being done to the cluster (or to its replication group).
    """
    if spec.reboot_requests <= status.reboots_done:
        return None
    restarting: list[str] = []
    restarted = list(status.restarted)
    events: list[str] = []
    for node in status.restarting:
        if ready.get(node, False):
            restarted.append(node)
            events.append(f"Cache node {node} restarted")
        else:
            restarting.append(node)
    remaining = [n for n in spec.reboot_nodes if n not in restarted and n not in restarting]
    restart = None
    if not restarting and remaining and may_restart:
        restart = remaining[0]
        restarting.append(restart)
        remaining.remove(restart)
        events.append(f"Cache node {restart} shutdown")
    finished = not restarting and not remaining
    return RebootStep(restart, tuple(restarting), tuple(restarted), finished, tuple(events))


def record(status: ClusterStatus, taken: RebootStep | None, requests: int) -> ClusterStatus:
    """The cluster status after ``taken``: ``rebooting cluster nodes`` until every node is back."""
    if taken is None:
        return status
    if taken.finished:
        return replace(status, status=ClusterState.AVAILABLE, reboots_done=requests, restarting=(), restarted=())
    nodes = tuple(replace(n, status=NodeState.REBOOTING) if n.node_id in taken.restarting else n for n in status.nodes)
    return replace(
        status,
        status=ClusterState.REBOOTING,
        nodes=nodes,
        restarting=taken.restarting,
        restarted=taken.restarted,
    )
