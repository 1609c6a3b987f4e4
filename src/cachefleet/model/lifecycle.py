"""Which API calls each lifecycle state allows: the one table the handlers consult.

Statuses themselves are written only by the reconciler; the API sets ``creating`` on create and
``deleting`` on delete, which are the two transitions ElastiCache answers with at once.
"""

from __future__ import annotations

from cachefleet.model import status as st
from cachefleet.model.errors import InvalidCacheClusterState, InvalidReplicationGroupState, InvalidSnapshotState

# (resource kind, operation) -> the statuses in which the operation is accepted
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("replication-group", "DeleteReplicationGroup"): frozenset({st.AVAILABLE, st.CREATE_FAILED}),
    ("replication-group", "ModifyReplicationGroup"): frozenset({st.AVAILABLE}),
    ("replication-group", "TestFailover"): frozenset({st.AVAILABLE}),
    ("replication-group", "IncreaseReplicaCount"): frozenset({st.AVAILABLE}),
    ("replication-group", "DecreaseReplicaCount"): frozenset({st.AVAILABLE}),
    ("replication-group", "CreateCacheCluster.ReplicationGroupId"): frozenset({st.AVAILABLE}),
    ("cache-cluster", "DeleteCacheCluster"): frozenset({st.AVAILABLE, st.RESTORE_FAILED, st.CREATE_FAILED}),
    ("cache-cluster", "CreateReplicationGroup.PrimaryClusterId"): frozenset({st.AVAILABLE}),
    ("cache-cluster", "ModifyCacheCluster"): frozenset({st.AVAILABLE}),
    ("cache-cluster", "RebootCacheCluster"): frozenset({st.AVAILABLE}),
    ("replication-group", "CreateSnapshot"): frozenset({st.AVAILABLE}),
    ("cache-cluster", "CreateSnapshot"): frozenset({st.AVAILABLE}),
    # A snapshot is usable (copied, exported, restored) while others use it too.
    ("snapshot", "CopySnapshot"): frozenset({st.AVAILABLE, st.COPYING, st.RESTORING}),
    ("snapshot", "Restore"): frozenset({st.AVAILABLE, st.COPYING, st.RESTORING}),
    ("snapshot", "DeleteSnapshot"): frozenset({st.AVAILABLE, st.FAILED}),
}

_ERRORS = {
    "replication-group": (InvalidReplicationGroupState, "Replication group"),
    "cache-cluster": (InvalidCacheClusterState, "Cache cluster"),
    "snapshot": (InvalidSnapshotState, "Snapshot"),
}


def require(kind: str, operation: str, resource_id: str, status: str) -> None:
    """Raise the kind's InvalidState fault unless ``operation`` is allowed in ``status``."""
    if status in ALLOWED[(kind, operation)]:
        return
    error, noun = _ERRORS[kind]
    raise error(f"{noun} {resource_id} is not in available state (current status: {status}).")
