"""RBAC users and user groups as reconciled kinds: the reconciler owns their statuses.

The API answers at once with ``modifying``/``deleting`` (a user group with ``creating``); a pass here
carries the change out and records the outcome:

- a user being modified becomes ``active`` again with the generation it was given; one being
  deleted leaves every user group that holds it (those go ``modifying``, as on ElastiCache) and is
  then removed;
- a user group being created or modified becomes ``active`` with the members it was given
  (``applied_user_ids``: until then Describe shows the difference as ``PendingChanges``); one being
  deleted is removed.

No replication group uses a user group yet, so nothing has to reach the engines before a status
moves. That is the seam of the integration: before recording ``active``, a pass will wake every
replication group using the user group and wait until each of their nodes reports the group's ACL
fingerprint (``engines.acl.fingerprint``), returning a delay to look again meanwhile.
"""

from __future__ import annotations

from dataclasses import replace

from cachefleet.control.kinds.base import Services, WorkerKind
from cachefleet.model.lifecycle import Event
from cachefleet.model.status import UserGroupState, UserState
from cachefleet.store import statuses
from cachefleet.store.kinds import USER_GROUPS, USERS


class UserKind(WorkerKind):
    records = USERS

    def __init__(self, services: Services) -> None:
        self._services = services

    async def work(self, resource_id: str) -> float | None:
        store = self._services.store
        user = USERS.find(store, resource_id)
        if user is None:
            return None
        key = (USERS.name, user.spec.user_id)
        if user.status.status is UserState.DELETING:
            with store.transaction():
                for group in USER_GROUPS.all(store):
                    if user.spec.user_id in group.spec.user_ids:
                        kept = tuple(u for u in group.spec.user_ids if u != user.spec.user_id)
                        USER_GROUPS.put_spec(store, group.spec.user_group_id, replace(group.spec, user_ids=kept))
                        statuses.change_from(
                            store, USER_GROUPS, group.spec.user_group_id, UserGroupState.ACTIVE, Event.MODIFY
                        )
                store.delete(USERS.name, user.spec.user_id)
            return None
        if user.status.applied_generation != user.generation or user.status.status is not UserState.ACTIVE:
            done = replace(user.status, status=UserState.ACTIVE, applied_generation=user.generation)
            # Refused (and looked at again at once) when the user changed meanwhile.
            if not statuses.record(store, {key: done}, {key: user.generation}, {USERS.name: USERS}):
                return 0.0
        return None


class UserGroupKind(WorkerKind):
    records = USER_GROUPS

    def __init__(self, services: Services) -> None:
        self._services = services

    async def work(self, resource_id: str) -> float | None:
        store = self._services.store
        group = USER_GROUPS.find(store, resource_id)
        if group is None:
            return None
        if group.status.status is UserGroupState.DELETING:
            store.delete(USER_GROUPS.name, group.spec.user_group_id)
            return None
        current = group.status
        if current.status is UserGroupState.ACTIVE and current.applied_user_ids == group.spec.user_ids:
            return None
        key = (USER_GROUPS.name, group.spec.user_group_id)
        done = replace(current, status=UserGroupState.ACTIVE, applied_user_ids=group.spec.user_ids)
        if not statuses.record(store, {key: done}, {key: group.generation}, {USER_GROUPS.name: USER_GROUPS}):
            return 0.0
        return None
