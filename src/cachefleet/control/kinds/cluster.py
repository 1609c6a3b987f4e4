"""Cache clusters as a reconciled kind: standalone clusters (Memcached, one Redis node) on their own.

A replication group's member is planned with its group, which knows the roles: a change to a
member wakes its group. A standalone cluster being deleted waits for its final snapshot; one whose
restore failed (``restore-failed``) is left alone until it is deleted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from cachefleet.control.actions import Plan
from cachefleet.control.hosts import HostMap, host_map, needs_placing, with_placements
from cachefleet.control.kinds.base import Generations, PlannedKind, Services, embedded_pids, taking, wanted_parameters
from cachefleet.control.kinds.group import restore_message, seed_name, wake_seed, wanted_security
from cachefleet.control.memcached_processes import access
from cachefleet.control.observe import ClusterObservation, Where, observe_config_endpoint, observe_nodes
from cachefleet.control.planners import busy, params, security
from cachefleet.control.planners import cluster as cluster_planner
from cachefleet.engines import memcached
from cachefleet.model.errors import RestoreFailed
from cachefleet.model.lifecycle import Event
from cachefleet.model.nodes import config_endpoint_key
from cachefleet.model.status import ClusterState
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS
from cachefleet.store.records import CLUSTER, GROUP, Cluster, effective_parameters
from cachefleet.store.sqlite import Store


@dataclass(frozen=True)
class ClusterLoad:
    cluster: Cluster
    wanted: params.Wanted
    saving: bool  # a snapshot of it is being taken
    generations: Generations
    hosts: HostMap
    secure: security.Wanted | None  # a Redis cluster's users and TLS (None for Memcached)
    access: memcached.Access = memcached.PLAIN  # how its Memcached nodes are reached (TLS, auth)


class ClusterKind(PlannedKind[ClusterLoad, ClusterObservation]):
    records = CLUSTERS

    def __init__(self, services: Services) -> None:
        self._services = services
        self._store = services.store

    def resync_ids(self, store: Store) -> list[str]:
        # A group's members are planned with their group, which the resync looks at itself: each
        # member's pass would only wake the group again (at 200 groups, four group passes a sweep).
        members = set(store.ids_with(self.name, "spec", "replication_group_id"))
        return [i for i in store.ids(self.name) if i not in members]

    def load(self, resource_id: str) -> ClusterLoad | Plan | None:
        cluster = CLUSTERS.find(self._store, resource_id)
        if cluster is None:
            return None
        spec = cluster.spec
        if spec.replication_group_id:
            self._services.wake((GROUP, spec.replication_group_id))
            return None
        snapshots = taking(self._store, spec.id)
        if spec.deleting and snapshots:
            return Plan()  # the final snapshot first, then the nodes go
        if not spec.deleting and cluster.status.status == ClusterState.RESTORE_FAILED:
            return None  # nothing to run: the seed was refused; DeleteCacheCluster cleans up
        reach = memcached.PLAIN
        if spec.engine == "memcached":
            observer = self._services.observer
            _, values = effective_parameters(self._store, spec.engine, spec.engine_version, spec.parameter_group)
            reach = access(spec, values, observer.credentials, observer.ca_file)
        wanted, generations = wanted_parameters(
            self._store,
            spec.engine,
            spec.engine_version,
            spec.node_type,
            spec.parameter_group,
            memcached_live=reach.auth != memcached.SASL_AUTH,
        )
        generations[(CLUSTER, spec.id)] = cluster.generation
        local = self._services.local_host
        cluster = replace(cluster, status=with_placements(cluster.status, spec.node_azs, local))
        hosts = host_map(self._store, local, spec.subnet_group, placing=False)
        keys = cluster_planner.node_keys(spec)
        nodes = [cluster.status.node(k.node_id) for k in keys]
        placements = [n.placement if n is not None else None for n in nodes]
        placements += [n.moving_to for n in nodes if n is not None and n.moving_to is not None]
        if not spec.deleting and needs_placing(hosts, placements):
            hosts = host_map(self._store, local, spec.subnet_group, placing=True)
        secure = wanted_security(self._services, spec.security) if spec.engine != "memcached" else None
        return ClusterLoad(cluster, wanted, bool(snapshots), generations, hosts, secure, reach)

    async def observe(self, loaded: ClusterLoad) -> ClusterObservation:
        spec, status, hosts = loaded.cluster.spec, loaded.cluster.status, loaded.hosts
        keys = cluster_planner.node_keys(spec)
        nodes: list[Where] = []
        targets: list[Where] = []
        for key in keys:
            node = status.node(key.node_id)
            at = node.placement if node is not None else None
            nodes.append((key, at, hosts.reachable(at)))
            if node is not None and node.moving_to is not None:
                targets.append((key, node.moving_to, hosts.reachable(node.moving_to)))
        observer = self._services.observer
        seen, moving = await asyncio.gather(
            observe_nodes(observer, nodes, engine=spec.engine, access=loaded.access),
            observe_nodes(observer, targets, engine=spec.engine, access=loaded.access),
        )
        endpoint = None
        if spec.engine == "memcached":
            # The configuration endpoint runs on the embedded host, as the group endpoints do.
            endpoint = await observe_config_endpoint(observer, config_endpoint_key(spec.id), hosts.endpoint)
        running = [(at, obs.pid) for (_, at, _), obs in zip(nodes + targets, seen + moving, strict=True)]
        if endpoint is not None:
            running.append((hosts.endpoint, endpoint.pid))
        self._services.watch((self.name, spec.id), embedded_pids(running))
        return ClusterObservation(
            nodes=dict(zip(keys, seen, strict=True)),
            targets={k: obs for (k, _, _), obs in zip(targets, moving, strict=True)},
            endpoint=endpoint,
        )

    def plan(self, loaded: ClusterLoad, observed: ClusterObservation) -> Plan:
        cluster = loaded.cluster
        plan = cluster_planner.plan(
            cluster.spec,
            busy.unbusy(cluster.status),
            observed,
            hosts=loaded.hosts,
            now=self._services.now(),
            wanted=loaded.wanted,
            secure=loaded.secure,
        )
        return busy.snapshotting(plan, None, [cluster.spec.id]) if loaded.saving else plan

    def restore_failed(self, resource_id: str, error: RestoreFailed) -> None:
        seed = seed_name(self._services, error.cluster_id)
        with self._store.transaction():
            if CLUSTERS.find(self._store, resource_id) is None:
                return
            message = f"Restore from {seed} failed: {error.reason}"
            statuses.change(self._store, CLUSTERS, resource_id, Event.FAIL_RESTORE, message=message)
            self._services.event(resource_id, CLUSTER, restore_message(resource_id, error.reason))
        wake_seed(self._services, error.cluster_id)
