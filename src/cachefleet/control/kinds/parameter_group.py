"""Cache parameter groups as a reconciled kind: a changed group wakes every cluster and group using it."""

from __future__ import annotations

from cachefleet.control.kinds.base import Services, WorkerKind
from cachefleet.store.kinds import PARAMETER_GROUPS
from cachefleet.store.records import CLUSTER, GROUP, parameter_group_users
from cachefleet.store.sqlite import Store


class ParameterGroupKind(WorkerKind):
    records = PARAMETER_GROUPS

    def __init__(self, services: Services) -> None:
        self._services = services

    def resync_ids(self, store: Store) -> list[str]:
        return []  # it only ever reacts to a change; its users are looked at on their own

    async def work(self, resource_id: str) -> float | None:
        for cluster in parameter_group_users(self._services.store, resource_id):
            group_id = cluster.spec.replication_group_id
            self._services.wake((GROUP, group_id) if group_id else (CLUSTER, cluster.spec.id))
        return None
