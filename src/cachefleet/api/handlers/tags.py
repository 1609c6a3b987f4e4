"""AddTagsToResource, ListTagsForResource, RemoveTagsFromResource on clusters, replication groups,
cache parameter groups, cache subnet groups, snapshots, users and user groups, by ARN."""

from __future__ import annotations

from typing import Any

from cachefleet.api import inputs, validate
from cachefleet.api.context import Context
from cachefleet.model.errors import (
    CacheClusterNotFound,
    CacheParameterGroupNotFound,
    CacheSubnetGroupNotFound,
    InvalidParameterValue,
    NotFound,
    ReplicationGroupNotFound,
    SnapshotNotFound,
    UserGroupNotFound,
    UserNotFound,
)
from cachefleet.model.hosts import CacheSubnetGroupSpec
from cachefleet.model.ids import parse_arn
from cachefleet.model.parameters import is_default_group
from cachefleet.model.specs import (
    CacheClusterSpec,
    CacheParameterGroupSpec,
    ReplicationGroupSpec,
    SnapshotSpec,
    Tags,
    merge_tags,
    remove_tags,
)
from cachefleet.model.users import User, UserGroup
from cachefleet.store.kinds import SUBNET_GROUPS
from cachefleet.store.records import CLUSTER, GROUP, PARAMETER_GROUP, SNAPSHOT

Spec = (
    CacheClusterSpec
    | ReplicationGroupSpec
    | CacheParameterGroupSpec
    | SnapshotSpec
    | User
    | UserGroup
    | CacheSubnetGroupSpec
)
USER, USER_GROUP = "user", "user-group"
SUBNET_GROUP = SUBNET_GROUPS.name

_NOT_FOUND: dict[str, type[NotFound]] = {
    CLUSTER: CacheClusterNotFound,
    GROUP: ReplicationGroupNotFound,
    SNAPSHOT: SnapshotNotFound,
    PARAMETER_GROUP: CacheParameterGroupNotFound,
    SUBNET_GROUP: CacheSubnetGroupNotFound,
    USER: UserNotFound,
    USER_GROUP: UserGroupNotFound,
}
_SPECS: dict[
    str,
    type[CacheClusterSpec]
    | type[ReplicationGroupSpec]
    | type[CacheParameterGroupSpec]
    | type[SnapshotSpec]
    | type[User]
    | type[UserGroup]
    | type[CacheSubnetGroupSpec],
] = {
    CLUSTER: CacheClusterSpec,
    GROUP: ReplicationGroupSpec,
    PARAMETER_GROUP: CacheParameterGroupSpec,
    SNAPSHOT: SnapshotSpec,
    USER: User,
    USER_GROUP: UserGroup,
    SUBNET_GROUP: CacheSubnetGroupSpec,
}


def _is_default_group(ctx: Context, resource_name: str) -> bool:
    """The ARN of a default parameter group (which exists, untagged and read-only)."""
    arn = parse_arn(resource_name)
    return (
        arn.kind == PARAMETER_GROUP
        and (arn.region, arn.account) == (ctx.settings.region, ctx.settings.account_id)
        and is_default_group(arn.name)
    )


def _resolve(ctx: Context, resource_name: str) -> Spec:
    arn = parse_arn(resource_name)
    if _is_default_group(ctx, resource_name):
        raise InvalidParameterValue(f"The default parameter group {arn.name} cannot be tagged.")
    record = None
    if arn.kind in _SPECS and (arn.region, arn.account) == (ctx.settings.region, ctx.settings.account_id):
        record = ctx.store.get(arn.kind, arn.name)
    if record is None:
        error = _NOT_FOUND.get(arn.kind, NotFound)
        raise error(f"The resource {resource_name} could not be found.")
    return _SPECS[arn.kind].from_json(record.spec)


def _tag_list(tags: Tags) -> dict[str, Any]:
    return {"TagList": [{"Key": k, "Value": v} for k, v in tags]}


def _kind(spec: Spec) -> str:
    if isinstance(spec, User):
        return USER
    if isinstance(spec, UserGroup):
        return USER_GROUP
    if isinstance(spec, CacheSubnetGroupSpec):
        return SUBNET_GROUP
    if isinstance(spec, CacheParameterGroupSpec):
        return PARAMETER_GROUP
    if isinstance(spec, SnapshotSpec):
        return SNAPSHOT
    return CLUSTER if isinstance(spec, CacheClusterSpec) else GROUP


ADD_INPUTS = inputs.Inputs(inputs.implemented("ResourceName", "Tags"))


async def add_tags_to_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    spec = _resolve(ctx, params["ResourceName"])
    tags = merge_tags(spec.tags, validate.tags(params))
    validate.check_tags(tags)
    ctx.store.put_spec(_kind(spec), spec.id, spec.with_tags(tags).to_json())
    return _tag_list(tags)


LIST_INPUTS = inputs.Inputs(inputs.implemented("ResourceName"))


async def list_tags_for_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if _is_default_group(ctx, params["ResourceName"]):
        return _tag_list(())
    return _tag_list(_resolve(ctx, params["ResourceName"]).tags)


REMOVE_INPUTS = inputs.Inputs(inputs.implemented("ResourceName", "TagKeys"))


async def remove_tags_from_resource(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    spec = _resolve(ctx, params["ResourceName"])
    tags = remove_tags(spec.tags, set(params["TagKeys"]))
    ctx.store.put_spec(_kind(spec), spec.id, spec.with_tags(tags).to_json())
    return _tag_list(tags)
