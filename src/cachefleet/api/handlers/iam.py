"""The registries of the IAM and STS operations this server implements, and STS's one handler.

Dispatch is by the SigV4 scope's service; each registry is keyed by the Action of its own service
model (IAM's ``CreateUser`` and ElastiCache's ``CreateUser`` are different operations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cachefleet.api import constraints
from cachefleet.api.context import Context
from cachefleet.api.handlers import Operation, iam_groups, iam_policies, iam_users
from cachefleet.api.handlers.iam_common import Call, IamHandler
from cachefleet.api.inputs import Inputs, implemented, not_yet
from cachefleet.model.errors import CacheFleetError
from cachefleet.protocol.service import load_service_model

IAM = "iam"
STS = "sts"


async def get_caller_identity(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    caller = call.caller
    return {"UserId": caller.user_id, "Account": caller.account, "Arn": caller.arn}


IAM_HANDLERS: dict[str, IamHandler] = {
    # Users
    "CreateUser": iam_users.create_user,
    "GetUser": iam_users.get_user_,
    "ListUsers": iam_users.list_users,
    "UpdateUser": iam_users.update_user,
    "DeleteUser": iam_users.delete_user,
    "TagUser": iam_users.tag_user,
    "UntagUser": iam_users.untag_user,
    "ListUserTags": iam_users.list_user_tags,
    # Access keys
    "CreateAccessKey": iam_users.create_access_key,
    "ListAccessKeys": iam_users.list_access_keys,
    "UpdateAccessKey": iam_users.update_access_key,
    "DeleteAccessKey": iam_users.delete_access_key,
    # Inline policies of users
    "PutUserPolicy": iam_users.put_user_policy,
    "GetUserPolicy": iam_users.get_user_policy,
    "ListUserPolicies": iam_users.list_user_policies,
    "DeleteUserPolicy": iam_users.delete_user_policy,
    # Managed policies
    "CreatePolicy": iam_policies.create_policy,
    "GetPolicy": iam_policies.get_policy_,
    "ListPolicies": iam_policies.list_policies,
    "DeletePolicy": iam_policies.delete_policy,
    "CreatePolicyVersion": iam_policies.create_policy_version,
    "GetPolicyVersion": iam_policies.get_policy_version,
    "ListPolicyVersions": iam_policies.list_policy_versions,
    "SetDefaultPolicyVersion": iam_policies.set_default_policy_version,
    "DeletePolicyVersion": iam_policies.delete_policy_version,
    "AttachUserPolicy": iam_policies.attach_user_policy,
    "DetachUserPolicy": iam_policies.detach_user_policy,
    "ListAttachedUserPolicies": iam_policies.list_attached_user_policies,
    "AttachGroupPolicy": iam_policies.attach_group_policy,
    "DetachGroupPolicy": iam_policies.detach_group_policy,
    "ListAttachedGroupPolicies": iam_policies.list_attached_group_policies,
    "ListEntitiesForPolicy": iam_policies.list_entities_for_policy,
    # Groups
    "CreateGroup": iam_groups.create_group,
    "GetGroup": iam_groups.get_group_,
    "ListGroups": iam_groups.list_groups,
    "DeleteGroup": iam_groups.delete_group,
    "AddUserToGroup": iam_groups.add_user_to_group,
    "RemoveUserFromGroup": iam_groups.remove_user_from_group,
    "ListGroupsForUser": iam_groups.list_groups_for_user,
    "PutGroupPolicy": iam_groups.put_group_policy,
    "GetGroupPolicy": iam_groups.get_group_policy,
    "ListGroupPolicies": iam_groups.list_group_policies,
    "DeleteGroupPolicy": iam_groups.delete_group_policy,
}

STS_HANDLERS: dict[str, IamHandler] = {
    "GetCallerIdentity": get_caller_identity,
}

# Members IAM has that this version does not build (refused, never ignored).
_NOT_YET: dict[str, tuple[str, ...]] = {
    "CreateUser": ("PermissionsBoundary",),
    "ListPolicies": ("PolicyUsageFilter",),
    "ListEntitiesForPolicy": ("PathPrefix", "PolicyUsageFilter"),
}


def _operation(service: str, name: str, handler: IamHandler) -> Operation:
    """An IAM or STS handler as the edge runs operations: the service model's constraints checked
    (IAM answers ValidationError for them), then the handler with the caller of this request."""
    shape = load_service_model(service).operation(name).input_shape
    members: Iterable[str] = shape.members if shape is not None else ()
    later = _NOT_YET.get(name, ())

    async def run(ctx: Context, params: dict[str, Any]) -> dict[str, Any] | None:
        constraints.check(shape, params)
        if ctx.identities is None or ctx.caller is None:
            raise CacheFleetError(f"{service} is not configured on this server.")
        return await handler(Call(ctx.identities, ctx.caller, ctx.clock()), params)

    inputs = Inputs(implemented(*(m for m in members if m not in later)), not_yet(*later))
    return Operation(run, inputs)


def iam_operations() -> Mapping[str, Operation]:
    return {name: _operation(IAM, name, handler) for name, handler in IAM_HANDLERS.items()}


def sts_operations() -> Mapping[str, Operation]:
    return {name: _operation(STS, name, handler) for name, handler in STS_HANDLERS.items()}
