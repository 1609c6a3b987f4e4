"""IAM users, their access keys, tags and inline policies."""

from __future__ import annotations

from typing import Any

from cachefleet.api.handlers.iam_common import (
    Call,
    access_key_view,
    check_tags,
    delete_inline_policy,
    encoded_document,
    get_user,
    inline_policy,
    key_owner,
    page,
    put_inline_policy,
    tag_pairs,
    user_view,
)
from cachefleet.model.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
)
from cachefleet.model.iam import (
    ACCESS_KEY_PREFIX,
    MAX_ACCESS_KEYS_PER_USER,
    MAX_USERS,
    USER_ID_PREFIX,
    USER_INLINE_POLICY_BYTES,
    check_name,
    check_path,
    new_id,
    new_secret,
)
from cachefleet.store.iam import AccessKey, User

# Users


async def create_user(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name("UserName", params["UserName"])
    path = check_path("Path", params.get("Path", "/"))
    tags = tag_pairs(params)
    check_tags(tags)
    if call.identities.count_users() >= MAX_USERS:
        raise LimitExceeded(f"Cannot exceed quota for UsersPerAccount: {MAX_USERS}")
    user = User(new_id(USER_ID_PREFIX, call.random), name, path, call.now, tags)
    if not call.identities.add_user(user):
        raise EntityAlreadyExists(f"User with name {name} already exists.")
    return {"User": user_view(call, user, tags=True)}


async def get_user_(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    if "UserName" in params:
        return {"User": user_view(call, get_user(call, params["UserName"]), tags=True)}
    owner = key_owner(call, params)
    if owner is not None:
        return {"User": user_view(call, owner, tags=True)}
    # The root identity: AWS answers with the account's id and root ARN, and no name or path.
    created = min((k.created_at for k in call.identities.access_keys(None)), default=call.now)
    return {"User": {"UserId": call.account, "Arn": call.caller.arn, "CreateDate": created}}


async def list_users(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    users, more = page(call.identities.users(params.get("PathPrefix", "/")), params)
    return {"Users": [user_view(call, u) for u in users], **more}


async def update_user(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    name = check_name("NewUserName", params.get("NewUserName", user.name))
    path = check_path("NewPath", params.get("NewPath", user.path))
    if not call.identities.update_user(user.user_id, name=name, path=path):
        raise EntityAlreadyExists(f"User with name {name} already exists.")


async def delete_user(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    identities = call.identities
    # IAM refuses to delete a user that still has anything attached, and says what to remove first.
    if identities.access_keys(user.user_id):
        raise DeleteConflict("Cannot delete entity, must delete access keys first.")
    if identities.inline_names(user.user_id):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    if identities.attached(user.user_id):
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    if identities.groups_for_user(user.user_id):
        raise DeleteConflict("Cannot delete entity, must remove user from all groups first.")
    identities.delete_user(user.user_id)


async def tag_user(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    merged = dict(user.tags)
    merged.update(tag_pairs(params))
    tags = tuple(merged.items())
    check_tags(tags)
    call.identities.set_user_tags(user.user_id, tags)


async def untag_user(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    removed = set(params["TagKeys"])
    call.identities.set_user_tags(user.user_id, tuple((k, v) for k, v in user.tags if k not in removed))


async def list_user_tags(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    user = get_user(call, params["UserName"])
    tags, more = page(user.tags, params)
    return {"Tags": [{"Key": k, "Value": v} for k, v in tags], **more}


# Access keys


async def create_access_key(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    owner = key_owner(call, params)
    owner_id = owner.user_id if owner else None
    if len(call.identities.access_keys(owner_id)) >= MAX_ACCESS_KEYS_PER_USER:
        raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}")
    key = AccessKey(new_id(ACCESS_KEY_PREFIX, call.random), owner_id, "Active", call.now)
    secret = new_secret(call.random)
    call.identities.add_access_key(key, secret)
    # The one answer that carries the secret: it is sealed in the store and never shown again.
    view = access_key_view(key, owner.name if owner else None)
    view["SecretAccessKey"] = secret
    if owner is None:
        view["UserName"] = call.account  # AWS names the root's keys after the account
    return {"AccessKey": view}


def _owned_key(call: Call, params: dict[str, Any]) -> tuple[AccessKey, User | None]:
    owner = key_owner(call, params)
    key = call.identities.access_key(params["AccessKeyId"])
    if key is None or key.user_id != (owner.user_id if owner else None):
        raise NoSuchEntity(f"The Access Key with id {params['AccessKeyId']} cannot be found.")
    return key, owner


async def list_access_keys(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    owner = key_owner(call, params)
    keys, more = page(call.identities.access_keys(owner.user_id if owner else None), params)
    name = owner.name if owner else call.account
    return {"AccessKeyMetadata": [access_key_view(k, name) for k in keys], **more}


async def update_access_key(call: Call, params: dict[str, Any]) -> None:
    key, owner = _owned_key(call, params)
    status = params["Status"]
    if status not in ("Active", "Inactive"):
        raise InvalidInput(f"Status {status} is not valid: use Active or Inactive.")
    if status == "Inactive" and owner is None:
        _keep_one_root_key(call, key.key_id, "deactivated")
    call.identities.set_access_key_status(key.key_id, status)


async def delete_access_key(call: Call, params: dict[str, Any]) -> None:
    key, owner = _owned_key(call, params)
    if owner is None:
        _keep_one_root_key(call, key.key_id, "deleted")
    call.identities.delete_access_key(key.key_id)


def _keep_one_root_key(call: Call, key_id: str, what: str) -> None:
    # The root key is the one in DIR/credentials: losing the last one would lock everybody out.
    others = [k for k in call.identities.access_keys(None) if k.key_id != key_id and k.status == "Active"]
    if not others:
        raise InvalidInput(
            f"The root identity's last active access key cannot be {what}: create another one first "
            "(and put it in DIR/credentials)."
        )


# Inline policies of a user


async def put_user_policy(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    put_inline_policy(call, user.user_id, f"user {user.name}", params, USER_INLINE_POLICY_BYTES)


async def get_user_policy(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    user = get_user(call, params["UserName"])
    name, document = inline_policy(call, user.user_id, "user", params)
    return {"UserName": user.name, "PolicyName": name, "PolicyDocument": encoded_document(document)}


async def list_user_policies(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    user = get_user(call, params["UserName"])
    names, more = page(call.identities.inline_names(user.user_id), params)
    return {"PolicyNames": list(names), **more}


async def delete_user_policy(call: Call, params: dict[str, Any]) -> None:
    user = get_user(call, params["UserName"])
    delete_inline_policy(call, user.user_id, "user", params)
