"""What a call asks to do, in IAM's terms: its action, the resource ARNs it is authorized against,
and the condition keys the request itself carries.

ElastiCache: as in AWS's service authorization reference, an operation is authorized against the
ARN of every resource it names: ``CreateReplicationGroup`` against its replication group and the
parameter group, subnet group, snapshot, user groups and primary cluster it names; a
``Describe``/``List`` call against the one resource it asks about, or ``*`` when it lists them all.
IAM: user, group and policy ARNs (a call without ``UserName`` is about the caller). STS
``GetCallerIdentity`` needs no permission at all, as in AWS.

Pure: ARNs that need a stored path (an IAM user's) are asked of a ``path_of`` callback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachefleet.model.iam import Principal, group_arn, policy_arn, user_arn
from cachefleet.model.patterns import RequestContext
from cachefleet.model.policy import Decision, Verdict, authorize

ELASTICACHE = "elasticache"
IAM = "iam"
STS = "sts"

Keys = dict[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Authorization:
    action: str  # "elasticache:CreateReplicationGroup"
    resources: tuple[str, ...]
    keys: Keys = field(default_factory=dict)
    always_allowed: bool = False  # sts:GetCallerIdentity


def decide(principal: Principal, request: Authorization, context_for: Callable[[str], RequestContext]) -> Verdict:
    """May ``principal`` do ``request``? The root identity may do anything, and some calls need no
    permission; everyone else needs their policies to allow the action on every resource."""
    if principal.is_root or request.always_allowed:
        return Verdict(Decision.ALLOW)
    return authorize(principal.policies, request.action, request.resources, context_for)


def connect(region: str, account: str, replication_group_id: str, user_id: str) -> Authorization:
    """``elasticache:Connect``, as an IAM-authenticated Redis connection asks for it: on the
    replication group and on the ElastiCache user it authenticates as."""
    return Authorization(
        action=f"{ELASTICACHE}:Connect",
        resources=(
            f"arn:aws:elasticache:{region}:{account}:replicationgroup:{replication_group_id.lower()}",
            f"arn:aws:elasticache:{region}:{account}:user:{user_id}",
        ),
    )


def read_only(operation: str) -> bool:
    """Calls that change nothing (CloudTrail's readOnly): Describe*, List*, Get*."""
    return operation.startswith(("Describe", "List", "Get"))


# ElastiCache

# Request parameter -> (ARN resource type, stored lowercase). Lists take each of their items.
_ELASTICACHE_RESOURCES: dict[str, tuple[str, bool]] = {
    "ReplicationGroupId": ("replicationgroup", True),
    "ReplicationGroupIds": ("replicationgroup", True),
    "CacheClusterId": ("cluster", True),
    "CacheClusterIds": ("cluster", True),
    "PrimaryClusterId": ("cluster", True),
    "SnapshottingClusterId": ("cluster", True),
    "CacheParameterGroupName": ("parametergroup", True),
    "CacheSubnetGroupName": ("subnetgroup", True),
    "CacheSecurityGroupName": ("securitygroup", True),
    "CacheSecurityGroupNames": ("securitygroup", True),
    "SnapshotName": ("snapshot", True),
    "SourceSnapshotName": ("snapshot", True),
    "TargetSnapshotName": ("snapshot", True),
    "FinalSnapshotIdentifier": ("snapshot", True),
    "UserId": ("user", False),
    "UserIds": ("user", False),
    "UserIdsToAdd": ("user", False),
    "UserIdsToRemove": ("user", False),
    "UserGroupId": ("usergroup", False),
    "UserGroupIds": ("usergroup", False),
    "UserGroupIdsToAdd": ("usergroup", False),
    "UserGroupIdsToRemove": ("usergroup", False),
    "GlobalReplicationGroupId": ("globalreplicationgroup", False),
    "ServerlessCacheName": ("serverlesscache", False),
    "ServerlessCacheSnapshotName": ("serverlesscachesnapshot", False),
    "SourceServerlessCacheSnapshotName": ("serverlesscachesnapshot", False),
    "TargetServerlessCacheSnapshotName": ("serverlesscachesnapshot", False),
    "ReservedCacheNodeId": ("reservedinstance", False),
}

# A Describe/List call is about the one resource its main parameter names; its other parameters
# (DescribeSnapshots ReplicationGroupId) only filter.
_DESCRIBED_BY: dict[str, tuple[str, ...]] = {
    "DescribeReplicationGroups": ("ReplicationGroupId",),
    "DescribeCacheClusters": ("CacheClusterId",),
    "DescribeSnapshots": ("SnapshotName",),
    "DescribeCacheParameterGroups": ("CacheParameterGroupName",),
    "DescribeCacheParameters": ("CacheParameterGroupName",),
    "DescribeCacheSubnetGroups": ("CacheSubnetGroupName",),
    "DescribeCacheSecurityGroups": ("CacheSecurityGroupName",),
    "DescribeUsers": ("UserId",),
    "DescribeUserGroups": ("UserGroupId",),
    "DescribeGlobalReplicationGroups": ("GlobalReplicationGroupId",),
    "DescribeServerlessCaches": ("ServerlessCacheName",),
    "DescribeServerlessCacheSnapshots": ("ServerlessCacheSnapshotName",),
    "DescribeReservedCacheNodes": ("ReservedCacheNodeId",),
    "ListAllowedNodeTypeModifications": ("CacheClusterId", "ReplicationGroupId"),
    "ListTagsForResource": ("ResourceName",),
}

# Request parameter -> ElastiCache condition key.
_ELASTICACHE_KEYS = {
    "CacheNodeType": "elasticache:CacheNodeType",
    "EngineVersion": "elasticache:EngineVersion",
    "CacheParameterGroupName": "elasticache:CacheParameterGroupName",
    "AtRestEncryptionEnabled": "elasticache:AtRestEncryptionEnabled",
    "TransitEncryptionEnabled": "elasticache:TransitEncryptionEnabled",
    "AutomaticFailoverEnabled": "elasticache:AutomaticFailoverEnabled",
    "MultiAZEnabled": "elasticache:MultiAZEnabled",
    "NumNodeGroups": "elasticache:NumNodeGroups",
    "ReplicasPerNodeGroup": "elasticache:ReplicasPerNodeGroup",
    "SnapshotRetentionLimit": "elasticache:SnapshotRetentionLimit",
    "KmsKeyId": "elasticache:KmsKeyId",
}


def elasticache(operation: str, params: Mapping[str, Any], region: str, account: str) -> Authorization:
    def arn(kind: str, name: str) -> str:
        # Global datastores are the one ElastiCache ARN without a region.
        where = "" if kind == "globalreplicationgroup" else region
        return f"arn:aws:elasticache:{where}:{account}:{kind}:{name}"

    names = _DESCRIBED_BY.get(operation)
    if names is None and read_only(operation):
        names = ()
    wanted = names if names is not None else (*_ELASTICACHE_RESOURCES, "ResourceName")
    resources: list[str] = []
    for name in wanted:
        for value in _items(params.get(name)):
            if name == "ResourceName":
                resources.append(value)
                continue
            kind, lower = _ELASTICACHE_RESOURCES[name]
            resources.append(arn(kind, value.lower() if lower else value))
    return Authorization(
        action=f"{ELASTICACHE}:{operation}",
        resources=tuple(dict.fromkeys(resources)) or ("*",),
        keys=_elasticache_keys(params),
    )


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _elasticache_keys(params: Mapping[str, Any]) -> Keys:
    keys: Keys = {}
    for param, key in _ELASTICACHE_KEYS.items():
        if param in params and isinstance(params[param], str | int | bool):
            keys[key] = _text(params[param])
    if isinstance(params.get("Engine"), str):
        keys["elasticache:EngineType"] = params["Engine"].lower()
    if "AuthToken" in params:
        keys["elasticache:AuthTokenEnabled"] = "true"
    if isinstance(params.get("ClusterMode"), str):
        keys["elasticache:ClusterModeEnabled"] = _text(params["ClusterMode"].lower() == "enabled")
    keys.update(tag_keys(params))
    return keys


def tag_keys(params: Mapping[str, Any]) -> Keys:
    """``aws:RequestTag/<key>`` and ``aws:TagKeys`` of a call that sets or removes tags."""
    keys: Keys = {}
    tags = params.get("Tags")
    names: list[str] = []
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, Mapping) and isinstance(tag.get("Key"), str):
                keys[f"aws:RequestTag/{tag['Key']}"] = str(tag.get("Value", ""))
                names.append(tag["Key"])
    names.extend(_items(params.get("TagKeys")))
    if names:
        keys["aws:TagKeys"] = tuple(dict.fromkeys(names))
    return keys


# IAM

_USER_OPERATIONS = frozenset(
    {
        "CreateUser", "GetUser", "DeleteUser", "UpdateUser", "TagUser", "UntagUser", "ListUserTags",
        "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey",
        "PutUserPolicy", "GetUserPolicy", "ListUserPolicies", "DeleteUserPolicy",
        "AttachUserPolicy", "DetachUserPolicy", "ListAttachedUserPolicies", "ListGroupsForUser",
    }
)  # fmt: skip
_GROUP_OPERATIONS = frozenset(
    {
        "CreateGroup", "GetGroup", "DeleteGroup", "UpdateGroup", "AddUserToGroup", "RemoveUserFromGroup",
        "PutGroupPolicy", "GetGroupPolicy", "ListGroupPolicies", "DeleteGroupPolicy",
        "AttachGroupPolicy", "DetachGroupPolicy", "ListAttachedGroupPolicies",
    }
)  # fmt: skip
_POLICY_OPERATIONS = frozenset(
    {
        "GetPolicy", "DeletePolicy", "GetPolicyVersion", "CreatePolicyVersion", "ListPolicyVersions",
        "DeletePolicyVersion", "SetDefaultPolicyVersion", "ListEntitiesForPolicy", "TagPolicy",
        "UntagPolicy", "ListPolicyTags",
    }
)  # fmt: skip

PathOf = Callable[[str, str], str | None]  # ("user" | "group", name) -> stored path, if it exists


def iam(operation: str, params: Mapping[str, Any], caller: Principal, path_of: PathOf) -> Authorization:
    account = caller.account
    resources: Sequence[str] = ("*",)
    if operation in _USER_OPERATIONS:
        name = params.get("UserName")
        if not isinstance(name, str):
            resources = (caller.arn,)
        elif operation == "CreateUser":
            resources = (user_arn(account, _path(params.get("Path")), name),)
        else:
            resources = (user_arn(account, path_of("user", name) or "/", name),)
    elif operation in _GROUP_OPERATIONS and isinstance(params.get("GroupName"), str):
        name = params["GroupName"]
        path = _path(params.get("Path")) if operation == "CreateGroup" else path_of("group", name) or "/"
        resources = (group_arn(account, path, name),)
    elif operation == "CreatePolicy" and isinstance(params.get("PolicyName"), str):
        resources = (policy_arn(account, _path(params.get("Path")), params["PolicyName"]),)
    elif operation in _POLICY_OPERATIONS and isinstance(params.get("PolicyArn"), str):
        resources = (params["PolicyArn"],)
    keys = tag_keys(params)
    if isinstance(params.get("PolicyArn"), str) and operation.startswith(("Attach", "Detach")):
        keys["iam:PolicyARN"] = params["PolicyArn"]
    return Authorization(action=f"{IAM}:{operation}", resources=tuple(resources), keys=keys)


def _path(value: Any) -> str:
    return value if isinstance(value, str) and value else "/"


def sts(operation: str) -> Authorization:
    return Authorization(action=f"{STS}:{operation}", resources=("*",), always_allowed=operation == "GetCallerIdentity")
