"""What the IAM and STS handlers share: the call they serve, lookups that raise IAM's errors, paging,
and the wire views of users, groups, keys and policies."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from cachefleet.model.errors import InvalidInput, LimitExceeded, NoSuchEntity
from cachefleet.model.iam import Principal, check_name, group_arn, user_arn
from cachefleet.model.policy import document_size, parse_policy
from cachefleet.store.iam import AccessKey, Group, IdentityStore, ManagedPolicy, User

T = TypeVar("T")


def random_string(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class Call:
    """One IAM or STS request: the identity store, who is calling, and when."""

    identities: IdentityStore
    caller: Principal
    now: datetime
    random: Callable[[str, int], str] = random_string

    @property
    def account(self) -> str:
        return self.identities.account


IamHandler = Callable[[Call, dict[str, Any]], Awaitable[dict[str, Any] | None]]


# Lookups


def get_user(call: Call, name: str) -> User:
    user = call.identities.user(name)
    if user is None:
        raise NoSuchEntity(f"The user with name {name} cannot be found.")
    return user


def get_group(call: Call, name: str) -> Group:
    group = call.identities.group(name)
    if group is None:
        raise NoSuchEntity(f"The group with name {name} cannot be found.")
    return group


def get_policy(call: Call, arn: str) -> ManagedPolicy:
    policy = call.identities.policy(arn)
    if policy is None:
        raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
    return policy


def key_owner(call: Call, params: dict[str, Any]) -> User | None:
    """The user an access-key call is about: ``UserName``, or the caller (None for root)."""
    if "UserName" in params:
        return get_user(call, params["UserName"])
    if call.caller.is_root or call.caller.user_name is None:
        return None
    return get_user(call, call.caller.user_name)


def checked_document(text: str, *, limit: int, quota: str) -> str:
    """A policy document IAM would store: well formed and within its size quota."""
    parse_policy(text)
    if document_size(text) > limit:
        raise LimitExceeded(f"Cannot exceed quota for {quota}: {limit}")
    return text


def check_tags(tags: Sequence[tuple[str, str]]) -> None:
    keys = [k for k, _ in tags]
    if len(set(keys)) != len(keys):
        raise InvalidInput("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
    for key in keys:
        if key.lower().startswith("aws:"):
            raise InvalidInput(f"User tag keys cannot start with the prefix aws:, got {key}.")
    if len(tags) > 50:
        raise LimitExceeded("Cannot exceed quota for TagsPerUser: 50")


def tag_pairs(params: dict[str, Any], name: str = "Tags") -> tuple[tuple[str, str], ...]:
    return tuple((str(t["Key"]), str(t.get("Value", ""))) for t in params.get(name, []))


# Paging (Marker / MaxItems / IsTruncated)


def page(items: Sequence[T], params: dict[str, Any]) -> tuple[Sequence[T], dict[str, Any]]:
    limit = params.get("MaxItems", 100)
    start = _offset(params["Marker"]) if "Marker" in params else 0
    if start > len(items):
        raise InvalidInput("Invalid Marker.")
    end = start + limit
    if end < len(items):
        return items[start:end], {"IsTruncated": True, "Marker": _marker(end)}
    return items[start:], {"IsTruncated": False}


def _marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"cf-iam:{offset}".encode()).decode()


def _offset(marker: str) -> int:
    try:
        prefix, _, number = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        value = int(number)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Invalid Marker.") from None
    if prefix != "cf-iam" or value < 0:
        raise InvalidInput("Invalid Marker.")
    return value


# Views


def user_view(call: Call, user: User, *, tags: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "Path": user.path,
        "UserName": user.name,
        "UserId": user.user_id,
        "Arn": user_arn(call.account, user.path, user.name),
        "CreateDate": user.created_at,
    }
    if tags and user.tags:
        view["Tags"] = [{"Key": k, "Value": v} for k, v in user.tags]
    return view


def group_view(call: Call, group: Group) -> dict[str, Any]:
    return {
        "Path": group.path,
        "GroupName": group.name,
        "GroupId": group.group_id,
        "Arn": group_arn(call.account, group.path, group.name),
        "CreateDate": group.created_at,
    }


def access_key_view(key: AccessKey, user_name: str | None) -> dict[str, Any]:
    view: dict[str, Any] = {"AccessKeyId": key.key_id, "Status": key.status, "CreateDate": key.created_at}
    if user_name is not None:
        view["UserName"] = user_name
    return view


def policy_view(call: Call, policy: ManagedPolicy) -> dict[str, Any]:
    view: dict[str, Any] = {
        "PolicyName": policy.name,
        "PolicyId": policy.policy_id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version,
        "AttachmentCount": len(call.identities.attached_to(policy.arn)),
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "CreateDate": policy.created_at,
        "UpdateDate": policy.updated_at,
    }
    if policy.description:
        view["Description"] = policy.description
    if policy.tags:
        view["Tags"] = [{"Key": k, "Value": v} for k, v in policy.tags]
    return view


def encoded_document(document: str) -> str:
    """IAM answers policy documents URL-encoded (botocore decodes them back into a dict)."""
    return quote(document, safe="")


# Inline policies: users and groups keep them alike (an owner id, a label for messages, a quota
# over all of the owner's inline documents together).


def put_inline_policy(call: Call, owner_id: str, owner: str, params: dict[str, Any], limit: int) -> None:
    name = check_name("PolicyName", params["PolicyName"], 128)
    document = checked_document(params["PolicyDocument"], limit=limit, quota="PolicySize")
    others = call.identities.inline_documents(owner_id, except_name=name)
    if sum(document_size(d) for d in others) + document_size(document) > limit:
        raise LimitExceeded(f"Maximum policy size of {limit} bytes exceeded for {owner}")
    call.identities.put_inline(owner_id, name, document)


def inline_policy(call: Call, owner_id: str, kind: str, params: dict[str, Any]) -> tuple[str, str]:
    """The named inline policy's (name, document); ``NoSuchEntity`` naming the ``kind`` of owner."""
    found = call.identities.inline(owner_id, params["PolicyName"])
    if found is None:
        raise NoSuchEntity(f"The {kind} policy with name {params['PolicyName']} cannot be found.")
    return found


def delete_inline_policy(call: Call, owner_id: str, kind: str, params: dict[str, Any]) -> None:
    inline_policy(call, owner_id, kind, params)
    call.identities.delete_inline(owner_id, params["PolicyName"])
