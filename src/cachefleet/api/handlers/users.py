"""RBAC: CreateUser, ModifyUser, DeleteUser, DescribeUsers and the same four for user groups.

The rules are ``model.users`` (AWS's codes); passwords are hashed there and only the hashes are
stored. The built-in ``default`` user is never stored: it is added to every lookup here. Statuses:
the API answers ``modifying``, ``deleting`` and a new group's ``creating`` at once; the reconciler
(``control/kinds/users.py``) makes them ``active`` again, or removes the resource.

Nothing here reaches an engine: the reconciler applies a change to every node of every replication
group whose user group holds the user, and only then makes the user or group ``active`` again
(``control/kinds/users.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cachefleet.api import inputs, validate, views
from cachefleet.api.context import Context
from cachefleet.api.paging import page
from cachefleet.api.security import groups_using
from cachefleet.model import lifecycle
from cachefleet.model import users as us
from cachefleet.model.errors import InvalidParameterValue, UserAlreadyExists, UserGroupAlreadyExists
from cachefleet.model.lifecycle import Event
from cachefleet.model.status import UserState
from cachefleet.store import statuses
from cachefleet.store.kinds import USER_GROUPS, USERS

DEFAULT_STATUS = UserState.ACTIVE.value
_FILTERS = ("user-id", "engine")


def _installed(ctx: Context) -> tuple[str, ...]:
    return tuple(e for e in us.ENGINES if any(b.engine == e for b in ctx.engines))


def _users(ctx: Context) -> dict[str, us.User]:
    """Every user by id, the built-in default first."""
    return {us.DEFAULT_USER_ID: us.DEFAULT_USER, **{u.spec.user_id: u.spec for u in USERS.all(ctx.store)}}


def _deleting(ctx: Context) -> frozenset[str]:
    return frozenset(u.spec.user_id for u in USERS.all(ctx.store) if u.status.status is UserState.DELETING)


def _groups(ctx: Context) -> list[us.UserGroup]:
    return [g.spec for g in USER_GROUPS.all(ctx.store)]


def _credentials(params: dict[str, Any]) -> us.Credentials:
    mode = params.get("AuthenticationMode")
    return us.Credentials(
        passwords=tuple(params["Passwords"]) if "Passwords" in params else None,
        no_password_required=params.get("NoPasswordRequired"),
        mode_type=mode.get("Type") if mode is not None else None,
        mode_passwords=tuple(mode["Passwords"]) if mode is not None and "Passwords" in mode else None,
    )


def _user_view(ctx: Context, user: us.User, status: str) -> dict[str, Any]:
    return views.user(ctx, user, status, _groups(ctx))


# -- users ---------------------------------------------------------------------------------------


CREATE_USER_INPUTS = inputs.Inputs(
    inputs.implemented(
        "UserId", "UserName", "Engine", "AccessString", "Passwords", "NoPasswordRequired", "AuthenticationMode", "Tags"
    )
)


async def create_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    installed = _installed(ctx)
    engine = us.check_engine(params["Engine"], installed)
    user = us.new_user(
        user_id=params["UserId"],
        user_name=params["UserName"],
        engine=engine,
        access_string=params["AccessString"],
        credentials=_credentials(params),
        existing=_users(ctx),
        catalog=await ctx.catalog(engine),
        installed=installed,
        tags=validate.tags(params),
    )
    if not statuses.create(ctx.store, USERS, user.user_id, user):
        raise UserAlreadyExists(f"User {user.user_id} already exists.")
    return _user_view(ctx, user, USERS.get(ctx.store, user.user_id).status.status.value)


MODIFY_USER_INPUTS = inputs.Inputs(
    inputs.implemented(
        "UserId",
        "AccessString",
        "AppendAccessString",
        "Passwords",
        "NoPasswordRequired",
        "AuthenticationMode",
        "Engine",
    )
)


async def modify_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    user_id = params["UserId"].lower()
    us.check_modifiable(user_id)
    current = USERS.get(ctx.store, user_id)
    spec = current.spec
    installed = _installed(ctx)
    engine = params.get("Engine")
    catalog_engine = us.check_engine(engine, installed) if engine is not None else spec.engine
    changed = us.modified_user(
        spec,
        access_string=params.get("AccessString"),
        append_access_string=params.get("AppendAccessString"),
        credentials=_credentials(params),
        engine=engine,
        catalog=await ctx.catalog(catalog_engine),
        installed=installed,
    )
    lifecycle.require(USERS.name, "ModifyUser", user_id, current.status.status)
    with ctx.store.transaction():
        USERS.put_spec(ctx.store, user_id, changed)
        status = statuses.change(ctx.store, USERS, user_id, Event.MODIFY)
    return _user_view(ctx, changed, status.status.value)


DELETE_USER_INPUTS = inputs.Inputs(inputs.implemented("UserId"))


async def delete_user(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    user_id = params["UserId"].lower()
    if user_id == us.DEFAULT_USER_ID:
        us.check_user_deletable(us.DEFAULT_USER, _groups(ctx))
    current = USERS.get(ctx.store, user_id)
    lifecycle.require(USERS.name, "DeleteUser", user_id, current.status.status)
    us.check_user_deletable(current.spec, _groups(ctx))
    status = statuses.change(ctx.store, USERS, user_id, Event.DELETE)
    return _user_view(ctx, current.spec, status.status.value)


DESCRIBE_USERS_INPUTS = inputs.Inputs(inputs.implemented("Engine", "UserId", "Filters", "MaxRecords", "Marker"))


async def describe_users(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    stored = {u.spec.user_id: u for u in USERS.all(ctx.store)}
    listed: list[tuple[us.User, str]] = [(us.DEFAULT_USER, DEFAULT_STATUS)]
    listed += [(u.spec, u.status.status.value) for u in stored.values()]
    if "UserId" in params:
        wanted = params["UserId"].lower()
        listed = [(u, s) for u, s in listed if u.user_id == wanted]
        if not listed:
            raise USERS.not_found(wanted)
    if "Engine" in params:
        engine = params["Engine"].lower()
        listed = [(u, s) for u, s in listed if u.engine == engine or u.user_id == us.DEFAULT_USER_ID]
    for name, values in _filters(params):
        accepted = {v.lower() for v in values}
        listed = [(u, s) for u, s in listed if (u.user_id if name == "user-id" else u.engine) in accepted]
    selected, marker = page(listed, params)
    groups = _groups(ctx)
    result: dict[str, Any] = {"Users": [views.user(ctx, u, s, groups) for u, s in selected]}
    if marker:
        result["Marker"] = marker
    return result


def _filters(params: dict[str, Any]) -> list[tuple[str, Sequence[str]]]:
    found: list[tuple[str, Sequence[str]]] = []
    for item in params.get("Filters", []):
        name = item.get("Name", "")
        if name not in _FILTERS:
            raise InvalidParameterValue(f"Invalid filter name {name!r}: valid names are {', '.join(_FILTERS)}.")
        found.append((name, list(item.get("Values", []))))
    return found


# -- user groups ---------------------------------------------------------------------------------


CREATE_GROUP_INPUTS = inputs.Inputs(inputs.implemented("UserGroupId", "Engine", "UserIds", "Tags"))


async def create_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    existing = [g.spec.user_group_id for g in USER_GROUPS.all(ctx.store)]
    group = us.new_user_group(
        user_group_id=params["UserGroupId"],
        engine=params["Engine"],
        user_ids=params.get("UserIds", []),
        users=_users(ctx),
        existing=existing,
        installed=_installed(ctx),
        deleting=_deleting(ctx),
        tags=validate.tags(params),
    )
    if not statuses.create(ctx.store, USER_GROUPS, group.user_group_id, group):
        raise UserGroupAlreadyExists(f"User group {group.user_group_id} already exists.")
    return views.user_group(ctx, group, USER_GROUPS.get(ctx.store, group.user_group_id).status)


MODIFY_GROUP_INPUTS = inputs.Inputs(inputs.implemented("UserGroupId", "UserIdsToAdd", "UserIdsToRemove", "Engine"))


async def modify_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    current = USER_GROUPS.get(ctx.store, params["UserGroupId"])
    engine = params.get("Engine")
    if engine is not None and engine.lower() != current.spec.engine:
        raise InvalidParameterValue(f"User group {current.spec.user_group_id} is a {current.spec.engine} group.")
    changed = us.modified_user_group(
        current.spec,
        to_add=params.get("UserIdsToAdd", []),
        to_remove=params.get("UserIdsToRemove", []),
        users=_users(ctx),
        deleting=_deleting(ctx),
    )
    group_id = current.spec.user_group_id
    lifecycle.require(USER_GROUPS.name, "ModifyUserGroup", group_id, current.status.status)
    with ctx.store.transaction():
        USER_GROUPS.put_spec(ctx.store, group_id, changed)
        status = statuses.change(ctx.store, USER_GROUPS, group_id, Event.MODIFY)
    return views.user_group(ctx, changed, status, groups_using(ctx.store, group_id))


DELETE_GROUP_INPUTS = inputs.Inputs(inputs.implemented("UserGroupId"))


async def delete_user_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    current = USER_GROUPS.get(ctx.store, params["UserGroupId"])
    group_id = current.spec.user_group_id
    lifecycle.require(USER_GROUPS.name, "DeleteUserGroup", group_id, current.status.status)
    us.check_user_group_deletable(current.spec, groups_using(ctx.store, group_id))
    status = statuses.change(ctx.store, USER_GROUPS, group_id, Event.DELETE)
    return views.user_group(ctx, current.spec, status)


DESCRIBE_GROUPS_INPUTS = inputs.Inputs(inputs.implemented("UserGroupId", "MaxRecords", "Marker"))


async def describe_user_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "UserGroupId" in params:
        groups = [USER_GROUPS.get(ctx.store, params["UserGroupId"])]
    else:
        groups = USER_GROUPS.all(ctx.store)
    selected, marker = page(groups, params)
    result: dict[str, Any] = {
        "UserGroups": [
            views.user_group(ctx, g.spec, g.status, groups_using(ctx.store, g.spec.user_group_id)) for g in selected
        ]
    }
    if marker:
        result["Marker"] = marker
    return result
