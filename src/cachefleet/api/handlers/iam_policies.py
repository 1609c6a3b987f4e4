"""IAM managed policies: customer managed ones with their versions, AWS managed ones (read-only),
and their attachment to users and groups."""

from __future__ import annotations

from typing import Any

from cachefleet.api.handlers.iam_common import (
    Call,
    checked_document,
    encoded_document,
    get_group,
    get_policy,
    get_user,
    page,
    policy_view,
    tag_pairs,
)
from cachefleet.model.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
)
from cachefleet.model.iam import (
    MANAGED_POLICY_BYTES,
    MAX_ATTACHED_POLICIES,
    MAX_MANAGED_POLICIES,
    MAX_POLICY_VERSIONS,
    POLICY_ID_PREFIX,
    check_name,
    check_path,
    new_id,
    parse_policy_arn,
    policy_arn,
)
from cachefleet.store.iam import ManagedPolicy


async def create_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name("PolicyName", params["PolicyName"], 128)
    path = check_path("Path", params.get("Path", "/"), policy=True)
    document = checked_document(params["PolicyDocument"], limit=MANAGED_POLICY_BYTES, quota="PolicySize")
    if call.identities.policy_named(name) is not None:
        raise EntityAlreadyExists(f"A policy called {name} already exists. Duplicate names are not allowed.")
    if call.identities.count_policies() >= MAX_MANAGED_POLICIES:
        raise LimitExceeded(f"Cannot exceed quota for PoliciesPerAccount: {MAX_MANAGED_POLICIES}")
    policy = ManagedPolicy(
        arn=policy_arn(call.account, path, name),
        policy_id=new_id(POLICY_ID_PREFIX, call.random),
        name=name,
        path=path,
        description=params.get("Description"),
        default_version="v1",
        created_at=call.now,
        updated_at=call.now,
        tags=tag_pairs(params),
    )
    if not call.identities.add_policy(policy, document):
        raise EntityAlreadyExists(f"A policy called {name} already exists. Duplicate names are not allowed.")
    return {"Policy": policy_view(call, policy)}


def _known(call: Call, arn: str) -> ManagedPolicy:
    parsed = parse_policy_arn(arn)  # InvalidInput for something that is no policy ARN
    if parsed.account not in ("aws", call.account):
        raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
    return get_policy(call, arn)


def _customer(call: Call, arn: str) -> ManagedPolicy:
    policy = _known(call, arn)
    if policy.aws_managed:
        raise InvalidInput(f"The AWS managed policy {arn} cannot be changed.")
    return policy


async def get_policy_(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return {"Policy": policy_view(call, _known(call, params["PolicyArn"]))}


async def list_policies(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    scope = params.get("Scope", "All")
    found = call.identities.policies(aws=scope in ("All", "AWS"), local=scope in ("All", "Local"))
    prefix = params.get("PathPrefix", "/")
    found = [p for p in found if p.path.startswith(prefix)]
    if params.get("OnlyAttached"):
        found = [p for p in found if call.identities.attached_to(p.arn)]
    policies, more = page(found, params)
    return {"Policies": [policy_view(call, p) for p in policies], **more}


async def delete_policy(call: Call, params: dict[str, Any]) -> None:
    policy = _customer(call, params["PolicyArn"])
    if call.identities.attached_to(policy.arn):
        raise DeleteConflict("Cannot delete a policy attached to entities.")
    if len(call.identities.policy_versions(policy.arn)) > 1:
        raise DeleteConflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's "
            "versions. The default version is deleted with the policy."
        )
    call.identities.delete_policy(policy.arn)


# Versions


def _version_view(policy: ManagedPolicy, version_id: str, document: str | None, created: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "VersionId": version_id,
        "IsDefaultVersion": version_id == policy.default_version,
        "CreateDate": created,
    }
    if document is not None:
        view["Document"] = encoded_document(document)
    return view


async def create_policy_version(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    policy = _customer(call, params["PolicyArn"])
    document = checked_document(params["PolicyDocument"], limit=MANAGED_POLICY_BYTES, quota="PolicySize")
    if len(call.identities.policy_versions(policy.arn)) >= MAX_POLICY_VERSIONS:
        raise LimitExceeded(
            f"A managed policy can have up to {MAX_POLICY_VERSIONS} versions. Before you create a new version, "
            "you must delete an existing version."
        )
    default = bool(params.get("SetAsDefault", False))
    version_id = call.identities.add_policy_version(policy.arn, document, call.now, default=default)
    updated = _customer(call, policy.arn)
    return {"PolicyVersion": _version_view(updated, version_id, document, call.now)}


async def get_policy_version(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    policy = _known(call, params["PolicyArn"])
    for version in call.identities.policy_versions(policy.arn):
        if version.version_id == params["VersionId"]:
            return {"PolicyVersion": _version_view(policy, version.version_id, version.document, version.created_at)}
    raise NoSuchEntity(f"Policy {policy.arn} version {params['VersionId']} does not exist or is not attachable.")


async def list_policy_versions(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    policy = _known(call, params["PolicyArn"])
    versions, more = page(call.identities.policy_versions(policy.arn), params)
    return {"Versions": [_version_view(policy, v.version_id, None, v.created_at) for v in versions], **more}


async def set_default_policy_version(call: Call, params: dict[str, Any]) -> None:
    policy = _customer(call, params["PolicyArn"])
    version_id = params["VersionId"]
    if version_id not in {v.version_id for v in call.identities.policy_versions(policy.arn)}:
        raise NoSuchEntity(f"Policy {policy.arn} version {version_id} does not exist or is not attachable.")
    call.identities.set_default_version(policy.arn, version_id, call.now)


async def delete_policy_version(call: Call, params: dict[str, Any]) -> None:
    policy = _customer(call, params["PolicyArn"])
    version_id = params["VersionId"]
    if version_id not in {v.version_id for v in call.identities.policy_versions(policy.arn)}:
        raise NoSuchEntity(f"Policy {policy.arn} version {version_id} does not exist or is not attachable.")
    if version_id == policy.default_version:
        raise DeleteConflict("Cannot delete the default version of a policy.")
    call.identities.delete_policy_version(policy.arn, version_id)


# Attachments


def _attach(call: Call, owner: str, arn: str, quota: str) -> None:
    policy = _known(call, arn)
    attached = call.identities.attached(owner)
    if policy.arn not in attached and len(attached) >= MAX_ATTACHED_POLICIES:
        raise LimitExceeded(f"Cannot exceed quota for {quota}: {MAX_ATTACHED_POLICIES}")
    call.identities.attach(owner, policy.arn)


def _detach(call: Call, owner: str, arn: str) -> None:
    parse_policy_arn(arn)
    if arn not in call.identities.attached(owner):
        raise NoSuchEntity(f"Policy {arn} was not found.")
    call.identities.detach(owner, arn)


def _attached_view(call: Call, owner: str, params: dict[str, Any]) -> dict[str, Any]:
    prefix = params.get("PathPrefix", "/")
    found = []
    for arn in call.identities.attached(owner):
        policy = call.identities.policy(arn)
        if policy is not None and policy.path.startswith(prefix):
            found.append({"PolicyName": policy.name, "PolicyArn": policy.arn})
    attached, more = page(found, params)
    return {"AttachedPolicies": list(attached), **more}


async def attach_user_policy(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    _attach(call, user.user_id, params["PolicyArn"], "PoliciesPerUser")


async def detach_user_policy(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    _detach(call, user.user_id, params["PolicyArn"])


async def list_attached_user_policies(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return _attached_view(call, get_user(call, params["UserName"]).user_id, params)


async def attach_group_policy(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    _attach(call, group.group_id, params["PolicyArn"], "PoliciesPerGroup")


async def detach_group_policy(call: Call, params: dict[str, Any]) -> None:
    group = get_group(call, params["GroupName"])
    _detach(call, group.group_id, params["PolicyArn"])


async def list_attached_group_policies(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return _attached_view(call, get_group(call, params["GroupName"]).group_id, params)


async def list_entities_for_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    policy = _known(call, params["PolicyArn"])
    wanted = params.get("EntityFilter")
    users, groups = [], []
    for owner in call.identities.attached_to(policy.arn):
        user = call.identities.user_by_id(owner)
        if user is not None and wanted in (None, "User"):
            users.append({"UserName": user.name, "UserId": user.user_id})
        group = call.identities.group_by_id(owner)
        if group is not None and wanted in (None, "Group"):
            groups.append({"GroupName": group.name, "GroupId": group.group_id})
    return {"PolicyGroups": groups, "PolicyUsers": users, "PolicyRoles": [], "IsTruncated": False}
