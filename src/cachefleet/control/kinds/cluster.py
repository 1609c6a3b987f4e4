"""Cache clusters as a reconciled kind: standalone clusters (Memcached, one Redis node) on their own.

A replication group's member is planned with its group, which knows the roles: a change to a
member wakes its group. A standalone cluster being deleted waits for its final snapshot; one whose
restore failed (``restore-failed``) is left alone until it is deleted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cachefleet.control.actions import Plan
from cachefleet.control.kinds.base import Generations, PlannedKind, Services, taking, wanted_parameters
from cachefleet.control.kinds.group import restore_message, seed_name, wake_seed, wanted_security
from cachefleet.control.memcached_processes import access
from cachefleet.control.observe import ClusterObservation, observe_config_endpoint, observe_nodes
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


@dataclass(frozen=True)
class ClusterLoad:
    cluster: Cluster
    wanted: params.Wanted
    saving: bool  # a snapshot of it is being taken
    generations: Generations
    secure: security.Wanted | None  # a Redis cluster's users and TLS (None for Memcached)
    access: memcached.Access = memcached.PLAIN  # how its Memcached nodes are reached (TLS, auth)


class ClusterKind(PlannedKind[ClusterLoad, ClusterObservation]):
    records = CLUSTERS

    def __init__(self, services: Services) -> None:
        self._services = services
        self._store = services.store

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
        secure = wanted_security(self._services, spec.security) if spec.engine != "memcached" else None
        return ClusterLoad(cluster, wanted, bool(snapshots), generations, secure, reach)

    async def observe(self, loaded: ClusterLoad) -> ClusterObservation:
        spec, observer = loaded.cluster.spec, self._services.observer
        keys = cluster_planner.node_keys(spec)
        if spec.engine != "memcached":
            return ClusterObservation(await observe_nodes(observer, keys, engine=spec.engine))
        nodes, endpoint = await asyncio.gather(
            observe_nodes(observer, keys, engine=spec.engine, access=loaded.access),
            observe_config_endpoint(observer, config_endpoint_key(spec.id)),
        )
        return ClusterObservation(nodes, endpoint)

    def plan(self, loaded: ClusterLoad, observed: ClusterObservation) -> Plan:
        cluster = loaded.cluster
        plan = cluster_planner.plan(
            cluster.spec,
            busy.unbusy(cluster.status),
            observed,
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
