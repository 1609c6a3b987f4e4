"""Replication groups (cluster mode disabled) as a reconciled kind: a group is planned with its members.

A group being deleted waits for its final snapshot; one whose creation failed (``create-failed``)
is left alone until it is deleted. While a snapshot of the group is taken, the planner sees the
group and the member saved as ``available`` and the pass records ``snapshotting`` over its decision
(``planners.busy``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cachefleet.control.actions import Plan
from cachefleet.control.hosts import HostMap, host_map, needs_placing, shared_set_to_join, with_placements
from cachefleet.control.kinds.base import (
    Generations,
    PlannedKind,
    Services,
    embedded_pids,
    taking,
    wanted_parameters,
)
from cachefleet.control.observe import GroupObservation, Where, observe_group
from cachefleet.control.planners import busy, params, security
from cachefleet.control.planners import group as group_planner
from cachefleet.control.security import wanted_users
from cachefleet.model.errors import RestoreFailed
from cachefleet.model.hosts import LOCAL_HOST, HostSpec
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import (
    MEMBER_NODE_ID,
    Placement,
    group_sentinel_keys,
    is_shared,
    member_key,
    sentinel_keys,
)
from cachefleet.model.security import Security
from cachefleet.model.specs import ReplicationGroupSpec
from cachefleet.model.status import ClusterState, GroupState, GroupStatus
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
    hosts: HostMap
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
        local = self._services.local_host
        members = {
            c.spec.id: (c.spec, with_placements(busy.unbusy(c.status), c.spec.node_azs, local)) for c in clusters
        }
        group = replace(group, status=_legacy_sentinels(spec, group.status, members, local))
        hosts = host_map(self._store, local, spec.subnet_group, placing=False)
        nodes = [member.node(MEMBER_NODE_ID) for _, member in members.values()]
        placements = [n.placement if n is not None else None for n in nodes]
        placements += [n.moving_to for n in nodes if n is not None and n.moving_to is not None]
        if spec.automatic_failover and not spec.deleting:
            keys = group_sentinel_keys(spec.id, group.status.sentinels)
            placements += [group.status.sentinels.get(k.node_id) for k in keys]
        if needs_placing(hosts, placements):
            hosts = host_map(self._store, local, spec.subnet_group, placing=True)
        hosts = replace(hosts, shared_sentinels=self._services.shared_sentinels)
        if hosts.shared_sentinels and _may_join_shared(spec, group.status):
            # Only a group that may join now asks which set (one query over every group's Sentinels).
            # Groups created at once may all take the same set: its size is exceeded by at most their number.
            hosts = replace(hosts, shared_set=shared_set_to_join(self._store, self._services.shared_set_size))
        return GroupLoad(
            group=group,
            members=members,
            wanted=wanted,
            saving=tuple(s.status.node_cluster_id or "" for s in snapshots) if snapshots else None,
            generations=generations,
            hosts=hosts,
            secure=wanted_security(self._services, spec.security),
        )

    async def observe(self, loaded: GroupLoad) -> GroupObservation:
        spec, status, hosts = loaded.group.spec, loaded.group.status, loaded.hosts
        members: list[Where] = []
        targets: list[Where] = []
        for cluster_id, (_, member) in loaded.members.items():
            node = member.node(MEMBER_NODE_ID)
            at = node.placement if node is not None else None
            members.append((member_key(cluster_id), at, hosts.reachable(at)))
            if node is not None and node.moving_to is not None:
                targets.append((member_key(cluster_id), node.moving_to, hosts.reachable(node.moving_to)))
        sentinels: list[Where] = [
            (k, at, hosts.reachable(at))
            for k in group_sentinel_keys(spec.id, status.sentinels)
            for at in [status.sentinels.get(k.node_id)]
        ]
        observed = await observe_group(
            self._services.observer,
            spec.id,
            members,
            targets=targets,
            sentinels=sentinels,
            endpoint=hosts.endpoint,
            engine=spec.engine,
        )
        running: list[tuple[Placement | None, int | None]] = [(hosts.endpoint, observed.endpoint.pid)]
        for where, seen in ((members, observed.nodes), (targets, observed.targets)):
            running += [(at, seen[k.cluster_id].pid) for k, at, _ in where if k.cluster_id in seen]
        running += [(at, observed.sentinels[k].pid) for k, at, _ in sentinels if k in observed.sentinels]
        self._services.watch((self.name, spec.id), embedded_pids(running))
        # Sentinels on the embedded host wake the group on their events; an agent host's are followed
        # by ``control.follow``, which wakes the group too.
        events_from = [
            (at.address, sentinel.port)
            for k, at, _ in sentinels
            if at is not None
            and at.host == LOCAL_HOST
            and (sentinel := observed.sentinels.get(k)) is not None
            and sentinel.pid is not None
            and sentinel.port is not None
        ]
        self._services.follow((self.name, spec.id), spec.id, events_from)
        return observed

    def plan(self, loaded: GroupLoad, observed: GroupObservation) -> Plan:
        group = loaded.group
        plan = group_planner.plan(
            group.spec,
            busy.unbusy(group.status),
            loaded.members,
            observed,
            hosts=loaded.hosts,
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
    a user's change reaches every group using it) and TLS mode; certificates name the address of
    the group's endpoint (it runs on the embedded host: ``HostMap.endpoint``)."""
    users = wanted_users(services.store, spec)
    return security.Wanted(users=users, mode=spec.transit.mode, endpoint=services.local_host.address)


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


def _legacy_sentinels(
    spec: ReplicationGroupSpec, status: GroupStatus, members: group_planner.Members, local: HostSpec
) -> GroupStatus:
    """A group recorded before hosts existed whose Sentinels ran: they run on the embedded host."""
    if status.sentinels or not status.failover_active or not spec.automatic_failover:
        return status
    zones = [member.node_azs[0] for member, _ in members.values()] or [""]
    placed = {
        key.node_id: Placement(LOCAL_HOST, local.address, zones[i % len(zones)])
        for i, key in enumerate(sentinel_keys(spec.id))
    }
    return replace(status, sentinels=placed)


def _may_join_shared(spec: ReplicationGroupSpec, status: GroupStatus) -> bool:
    """Whether the planner may put the group on the shared Sentinels in this pass: automatic failover
    on, no TLS, and no shared Sentinel recorded yet (none at all, or its own on the embedded host)."""
    return (
        spec.automatic_failover
        and spec.security.transit.mode is None
        and all(at.host == LOCAL_HOST and not is_shared(node_id) for node_id, at in status.sentinels.items())
    )
