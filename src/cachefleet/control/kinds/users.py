"""RBAC users and user groups as reconciled kinds: the reconciler owns their statuses.

The API answers at once with ``modifying``/``deleting`` (a user group with ``creating``); a pass here
carries the change out and records the outcome:

- a user being modified, or a user group being created or modified, wakes every replication group
  whose user group holds it and waits until each of them has recorded that all its nodes run the
  users as they are now (``GroupStatus.acl_fingerprint``, written by the group's planner once every
  node's ACL marker says so); then it becomes ``active`` (a group with the members it was given:
  ``applied_user_ids``, until then Describe shows the difference as ``PendingChanges``);
- a user being deleted leaves every user group that holds it (those go ``modifying``, as on
  ElastiCache, and carry the removal to the nodes) and is then removed; a user group being deleted
  (the API refuses while a replication group uses it) is removed.

A replication group being deleted, or whose creation failed, is not waited for.
"""

from __future__ import annotations

from dataclasses import replace

from cachefleet.control.kinds.base import Services, WorkerKind
from cachefleet.control.security import wanted_users
from cachefleet.engines import acl
from cachefleet.model.lifecycle import Event
from cachefleet.model.status import GroupState, UserGroupState, UserState
from cachefleet.store import statuses
from cachefleet.store.kinds import GROUPS, USER_GROUPS, USERS

# How soon a user or group waiting for replication groups looks again (they converge in milliseconds).
WAIT = 0.1


def nodes_have(services: Services, user_group_ids: set[str]) -> bool:
    """Whether every replication group using one of these user groups runs its users as they are now
    on all its nodes (each is woken, so that it converges now rather than at its next resync)."""
    done = True
    for group in GROUPS.all(services.store):
        spec = group.spec
        if not user_group_ids & set(spec.security.user_group_ids):
            continue
        if spec.deleting or group.status.status in (GroupState.CREATE_FAILED, GroupState.DELETING):
            continue
        wanted = acl.fingerprint(wanted_users(services.store, spec.security))
        if group.status.acl_fingerprint != wanted:
            services.wake((GROUPS.name, spec.id))
            done = False
    return done


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
            holding = {g.spec.user_group_id for g in USER_GROUPS.all(store) if user.spec.user_id in g.spec.user_ids}
            if not nodes_have(self._services, holding):
                return WAIT
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
        if not nodes_have(self._services, {group.spec.user_group_id}):
            return WAIT
        key = (USER_GROUPS.name, group.spec.user_group_id)
        done = replace(current, status=UserGroupState.ACTIVE, applied_user_ids=group.spec.user_ids)
        if not statuses.record(store, {key: done}, {key: group.generation}, {USER_GROUPS.name: USER_GROUPS}):
            return 0.0
        return None
