"""Replication groups (cluster mode disabled) as a reconciled kind: a group is planned with its members.

A group being deleted waits for its final snapshot; one whose creation failed (``create-failed``)
is left alone until it is deleted. While a snapshot of the group is taken, the planner sees the
group and the member saved as ``available`` and the pass records ``snapshotting`` over its decision
(``planners.busy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cachefleet.control.actions import Plan
from cachefleet.control.kinds.base import Generations, PlannedKind, Services, taking, wanted_parameters
from cachefleet.control.observe import GroupObservation, observe_group
from cachefleet.control.planners import busy, params, security
from cachefleet.control.planners import group as group_planner
from cachefleet.control.security import wanted_users
from cachefleet.model.errors import RestoreFailed
from cachefleet.model.lifecycle import Event
from cachefleet.model.security import Security
from cachefleet.model.status import ClusterState, GroupState
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, GROUPS, SNAPSHOTS
from cachefleet.store.records import CLUSTER, GROUP, Group


@dataclass(frozen=True)
class GroupLoad:
    group: Group
    members: group_planner.Members  # as the planner sees them (``busy.unbusy``)
    wanted: params.Wanted
    saving: tuple[str, ...] | None  # while a snapshot is taken: the members whose nodes are saved
    generations: Generations
    secure: security.Wanted  # the users and TLS every process of the group runs


class GroupKind(PlannedKind[GroupLoad, GroupObservation]):
    records = GROUPS

    def __init__(self, services: Services) -> None:
        self._services = services
        self._store = services.store

    def load(self, resource_id: str) -> GroupLoad | Plan | None:
        group = GROUPS.find(self._store, resource_id)
        if group is None:
            self._services.follow((self.name, resource_id), resource_id, ())  # deleted: no more events
            return None
        spec = group.spec
        snapshots = taking(self._store, spec.id)
        if spec.deleting and snapshots:
            return Plan()  # the final snapshot first, then the nodes go
        if not spec.deleting and group.status.status == GroupState.CREATE_FAILED:
            return None  # nothing to run: DeleteReplicationGroup cleans up
        clusters = [c for m in spec.members if (c := CLUSTERS.find(self._store, m)) is not None]
        wanted, generations = wanted_parameters(
            self._store, spec.engine, spec.engine_version, spec.node_type, spec.parameter_group
        )
        generations[(GROUP, spec.id)] = group.generation
        generations.update({(CLUSTER, c.spec.id): c.generation for c in clusters})
        return GroupLoad(
            group=group,
            members={c.spec.id: (c.spec, busy.unbusy(c.status)) for c in clusters},
            wanted=wanted,
            saving=tuple(s.status.node_cluster_id or "" for s in snapshots) if snapshots else None,
            generations=generations,
            secure=wanted_security(self._services, spec.security),
        )

    async def observe(self, loaded: GroupLoad) -> GroupObservation:
        spec = loaded.group.spec
        observed = await observe_group(self._services.observer, spec.id, list(loaded.members), engine=spec.engine)
        pids = [observed.endpoint.pid, *(n.pid for n in observed.nodes.values())]
        pids += [s.pid for s in observed.sentinels.values()]
        self._services.watch((self.name, spec.id), [pid for pid in pids if pid is not None])
        address = self._services.observer.address
        running = [(address, s.port) for s in observed.sentinels.values() if s.pid is not None and s.port is not None]
        self._services.follow((self.name, spec.id), spec.id, running)
        return observed

    def plan(self, loaded: GroupLoad, observed: GroupObservation) -> Plan:
        group = loaded.group
        plan = group_planner.plan(
            group.spec,
            busy.unbusy(group.status),
            loaded.members,
            observed,
            address=self._services.observer.address,
            now=self._services.now(),
            wanted=loaded.wanted,
            secure=loaded.secure,
        )
        if loaded.saving is not None:
            plan = busy.snapshotting(plan, group.spec.id, loaded.saving)
        return plan

    def restore_failed(self, resource_id: str, error: RestoreFailed) -> None:
        """The first primary's seed was refused: the group ends ``create-failed``, its members
        ``restore-failed``, and nothing is started."""
        seed = seed_name(self._services, error.cluster_id)
        message = f"Restore from {seed} failed: {error.reason}"
        with self._store.transaction():
            group = GROUPS.find(self._store, resource_id)
            if group is None:
                return
            statuses.change(self._store, GROUPS, resource_id, Event.FAIL_CREATE, message=message)
            for member in group.spec.members:
                statuses.change_from(
                    self._store, CLUSTERS, member, ClusterState.CREATING, Event.FAIL_RESTORE, message=message
                )
            self._services.event(error.cluster_id, CLUSTER, restore_message(error.cluster_id, error.reason))
            self._services.event(resource_id, GROUP, f"Failed to create replication group {resource_id}: {message}")
        wake_seed(self._services, error.cluster_id)


def wanted_security(services: Services, spec: Security) -> security.Wanted:
    """What a group's (or standalone cluster's) processes must run: its users (read from the store:
    a user's change reaches every group using it) and TLS mode, named by the address clients use."""
    users = wanted_users(services.store, spec)
    return security.Wanted(users=users, mode=spec.transit.mode, address=services.observer.address)


def seed_name(services: Services, cluster_id: str) -> str | None:
    cluster = CLUSTERS.find(services.store, cluster_id)
    return (cluster.spec.seed_snapshot or cluster.spec.seed_object) if cluster else None


def wake_seed(services: Services, cluster_id: str) -> None:
    """The seed snapshot's ``restoring`` ends: its next pass shows what still reads it."""
    cluster = CLUSTERS.find(services.store, cluster_id)
    if cluster is not None and cluster.spec.seed_snapshot:
        services.wake((SNAPSHOTS.name, cluster.spec.seed_snapshot))


def restore_message(cluster_id: str, reason: str) -> str:
    return f"Restore from snapshot failed for cache cluster {cluster_id}: {reason}"
