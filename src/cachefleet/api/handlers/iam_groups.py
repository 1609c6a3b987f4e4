"""IAM groups: membership and inline policies (attached managed policies are in ``iam_policies``)."""

from __future__ import annotations

from typing import Any

from cachefleet.api.handlers.iam_common import (
    Call,
    delete_inline_policy,
    encoded_document,
    get_group,
    get_user,
    group_view,
    inline_policy,
    page,
    put_inline_policy,
    user_view,
)
from cachefleet.model.errors import DeleteConflict, EntityAlreadyExists, LimitExceeded, NoSuchEntity
from cachefleet.model.iam import (
    GROUP_ID_PREFIX,
    GROUP_INLINE_POLICY_BYTES,
    MAX_GROUPS,
    MAX_GROUPS_PER_USER,
    check_name,
    check_path,
    new_id,
)
from cachefleet.store.iam import Group


async def create_group(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name("GroupName", params["GroupName"], 128)
    path = check_path("Path", params.get("Path", "/"))
    if len(call.identities.groups()) >= MAX_GROUPS:
        raise LimitExceeded(f"Cannot exceed quota for GroupsPerAccount: {MAX_GROUPS}")
    group = Group(new_id(GROUP_ID_PREFIX, call.random), name, path, call.now)
    if not call.identities.add_group(group):
        raise EntityAlreadyExists(f"Group with name {name} already exists.")
    return {"Group": group_view(call, group)}


async def get_group_(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(call, params["GroupName"])
    users, more = page(call.identities.members(group.group_id), params)
    return {"Group": group_view(call, group), "Users": [user_view(call, u) for u in users], **more}


async def list_groups(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    groups, more = page(call.identities.groups(params.get("PathPrefix", "/")), params)
    return {"Groups": [group_view(call, g) for g in groups], **more}


async def delete_group(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    if call.identities.members(group.group_id):
        raise DeleteConflict("Cannot delete entity, must remove users from group first.")
    if call.identities.inline_names(group.group_id):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    if call.identities.attached(group.group_id):
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    call.identities.delete_group(group.group_id)


async def add_user_to_group(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    user = get_user(call, params["UserName"])
    groups = call.identities.groups_for_user(user.user_id)
    if group not in groups and len(groups) >= MAX_GROUPS_PER_USER:
        raise LimitExceeded(f"Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}")
    call.identities.add_member(group.group_id, user.user_id)


async def remove_user_from_group(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    user = get_user(call, params["UserName"])
    if group not in call.identities.groups_for_user(user.user_id):
        raise NoSuchEntity(f"User {user.name} is not in group {group.name}.")
    call.identities.remove_member(group.group_id, user.user_id)


async def list_groups_for_user(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    user = get_user(call, params["UserName"])
    groups, more = page(call.identities.groups_for_user(user.user_id), params)
    return {"Groups": [group_view(call, g) for g in groups], **more}


async def put_group_policy(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    put_inline_policy(call, group.group_id, f"group {group.name}", params, GROUP_INLINE_POLICY_BYTES)


async def get_group_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(call, params["GroupName"])
    name, document = inline_policy(call, group.group_id, "group", params)
    return {"GroupName": group.name, "PolicyName": name, "PolicyDocument": encoded_document(document)}


async def list_group_policies(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    group = get_group(call, params["GroupName"])
    names, more = page(call.identities.inline_names(group.group_id), params)
    return {"PolicyNames": list(names), **more}


async def delete_group_policy(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    delete_inline_policy(call, group.group_id, "group", params)
