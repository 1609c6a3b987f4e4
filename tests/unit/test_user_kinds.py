"""The reconciler's side of users and user groups: statuses moved on, deletions carried out."""

from __future__ import annotations

import asyncio

from tests.support.fakes import Fleet

from cachefleet.model.lifecycle import Event
from cachefleet.model.status import UserGroupState, UserState
from cachefleet.model.users import User, UserGroup
from cachefleet.store import statuses
from cachefleet.store.kinds import USER_GROUPS, USERS


def _work(fleet: Fleet, kind: str, resource_id: str) -> float | None:
    return asyncio.run(fleet.kinds[kind].work(resource_id))  # type: ignore[union-attr]


def _setup() -> Fleet:
    fleet = Fleet()
    for uid, name in (("app", "app"), ("locked", "default")):
        statuses.create(fleet.store, USERS, uid, User(uid, name, "redis", "on ~* +@all", ("a" * 64,)))
    statuses.create(fleet.store, USER_GROUPS, "team", UserGroup("team", "redis", ("locked", "app")))
    return fleet


def test_a_new_group_becomes_active_with_its_members_applied() -> None:
    fleet = _setup()
    assert USER_GROUPS.get(fleet.store, "team").status.status is UserGroupState.CREATING
    assert _work(fleet, USER_GROUPS.name, "team") is None
    status = USER_GROUPS.get(fleet.store, "team").status
    assert (status.status, status.applied_user_ids) == (UserGroupState.ACTIVE, ("locked", "app"))
    assert _work(fleet, USER_GROUPS.name, "team") is None  # nothing more to do


def test_a_modified_user_becomes_active_with_the_generation_it_was_given() -> None:
    fleet = _setup()
    USERS.put_spec(fleet.store, "app", User("app", "app", "redis", "on ~* +get", ("b" * 64,)))
    statuses.change(fleet.store, USERS, "app", Event.MODIFY)
    assert _work(fleet, USERS.name, "app") is None
    user = USERS.get(fleet.store, "app")
    assert (user.status.status, user.status.applied_generation) == (UserState.ACTIVE, user.generation)


def test_a_deleted_user_leaves_its_groups_which_then_show_modifying() -> None:
    fleet = _setup()
    _work(fleet, USER_GROUPS.name, "team")
    statuses.change(fleet.store, USERS, "app", Event.DELETE)
    assert _work(fleet, USERS.name, "app") is None
    assert USERS.find(fleet.store, "app") is None
    group = USER_GROUPS.get(fleet.store, "team")
    assert group.spec.user_ids == ("locked",)
    assert group.status.status is UserGroupState.MODIFYING
    _work(fleet, USER_GROUPS.name, "team")
    assert USER_GROUPS.get(fleet.store, "team").status.applied_user_ids == ("locked",)


def test_a_deleted_group_is_removed() -> None:
    fleet = _setup()
    _work(fleet, USER_GROUPS.name, "team")
    statuses.change(fleet.store, USER_GROUPS, "team", Event.DELETE)
    assert _work(fleet, USER_GROUPS.name, "team") is None
    assert USER_GROUPS.find(fleet.store, "team") is None
    assert _work(fleet, USER_GROUPS.name, "team") is None  # gone: nothing to do
