"""Which action, resource ARNs and request condition keys each call is authorized with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cachefleet.api import constraints
from cachefleet.model import authz
from cachefleet.model.errors import ValidationError
from cachefleet.model.iam import IAM_USER, Principal, root_principal
from cachefleet.model.patterns import RequestContext, context
from cachefleet.model.policy import Decision, parse_policy
from cachefleet.protocol.service import load_service_model

REGION, ACCOUNT = "us-east-1", "000000000000"
EC = f"arn:aws:elasticache:{REGION}:{ACCOUNT}"
BOB = Principal(ACCOUNT, IAM_USER, f"arn:aws:iam::{ACCOUNT}:user/ops/bob", "AIDABOB", "AKIABOB", user_name="bob")


def elasticache(operation: str, **params: object) -> authz.Authorization:
    return authz.elasticache(operation, params, REGION, ACCOUNT)


def test_create_replication_group_names_every_resource_it_uses() -> None:
    request = elasticache(
        "CreateReplicationGroup",
        ReplicationGroupId="Orders",
        CacheParameterGroupName="Safe",
        CacheSubnetGroupName="default",
        SnapshotName="Nightly",
        UserGroupIds=["app-users"],
        Tags=[{"Key": "team", "Value": "web"}, {"Key": "env", "Value": "prod"}],
        CacheNodeType="cache.r7g.large",
        Engine="Redis",
        AtRestEncryptionEnabled=True,
        NumNodeGroups=1,
        AuthToken="x" * 16,
        ClusterMode="Disabled",
    )
    assert request.action == "elasticache:CreateReplicationGroup"
    assert request.resources == (
        f"{EC}:replicationgroup:orders",
        f"{EC}:parametergroup:safe",
        f"{EC}:subnetgroup:default",
        f"{EC}:snapshot:nightly",
        f"{EC}:usergroup:app-users",
    )
    assert request.keys == {
        "elasticache:CacheNodeType": "cache.r7g.large",
        "elasticache:CacheParameterGroupName": "Safe",
        "elasticache:AtRestEncryptionEnabled": "true",
        "elasticache:NumNodeGroups": "1",
        "elasticache:EngineType": "redis",
        "elasticache:AuthTokenEnabled": "true",
        "elasticache:ClusterModeEnabled": "false",
        "aws:RequestTag/team": "web",
        "aws:RequestTag/env": "prod",
        "aws:TagKeys": ("team", "env"),
    }


def test_describe_calls_are_about_one_resource_or_all() -> None:
    assert elasticache("DescribeReplicationGroups").resources == ("*",)
    assert elasticache("DescribeReplicationGroups", ReplicationGroupId="x").resources == (f"{EC}:replicationgroup:x",)
    # Filters are not the resource: DescribeSnapshots of a group lists snapshots.
    assert elasticache("DescribeSnapshots", ReplicationGroupId="x").resources == ("*",)
    assert elasticache("DescribeEvents", SourceIdentifier="x").resources == ("*",)


def test_other_calls_and_tags() -> None:
    assert elasticache("CopySnapshot", SourceSnapshotName="a", TargetSnapshotName="b").resources == (
        f"{EC}:snapshot:a",
        f"{EC}:snapshot:b",
    )
    assert elasticache("DeleteReplicationGroup", ReplicationGroupId="x", FinalSnapshotIdentifier="f").resources == (
        f"{EC}:replicationgroup:x",
        f"{EC}:snapshot:f",
    )
    tagged = elasticache("RemoveTagsFromResource", ResourceName=f"{EC}:cluster:c", TagKeys=["a", "b"])
    assert tagged.resources == (f"{EC}:cluster:c",)
    assert tagged.keys == {"aws:TagKeys": ("a", "b")}
    assert elasticache("DescribeCacheEngineVersions").resources == ("*",)


def test_iam_calls_are_about_users_groups_and_policies() -> None:
    paths = {("user", "alice"): "/team/"}

    def path_of(kind: str, name: str) -> str | None:
        return paths.get((kind, name))

    def iam(operation: str, caller: Principal = BOB, **params: object) -> authz.Authorization:
        return authz.iam(operation, params, caller, path_of)

    assert iam("GetUser", UserName="alice").resources == (f"arn:aws:iam::{ACCOUNT}:user/team/alice",)
    assert iam("CreateUser", UserName="carol", Path="/x/").resources == (f"arn:aws:iam::{ACCOUNT}:user/x/carol",)
    assert iam("ListAccessKeys").resources == (BOB.arn,)  # no UserName: the caller's own keys
    assert iam("ListUsers").resources == ("*",)
    assert iam("AddUserToGroup", GroupName="ops", UserName="bob").resources == (f"arn:aws:iam::{ACCOUNT}:group/ops",)
    policy = f"arn:aws:iam::{ACCOUNT}:policy/p"
    attach = iam("AttachUserPolicy", UserName="nobody", PolicyArn=policy)
    assert attach.resources == (f"arn:aws:iam::{ACCOUNT}:user/nobody",)
    assert attach.keys == {"iam:PolicyARN": policy}
    assert iam("CreatePolicy", PolicyName="p", Path="/a/").resources == (f"arn:aws:iam::{ACCOUNT}:policy/a/p",)
    root = root_principal(ACCOUNT, "AKIAROOT")
    assert iam("GetUser", caller=root).resources == (f"arn:aws:iam::{ACCOUNT}:root",)


def test_only_get_caller_identity_is_always_allowed() -> None:
    assert authz.sts("GetCallerIdentity").always_allowed
    assert not authz.sts("AssumeRole").always_allowed
    assert authz.read_only("DescribeReplicationGroups")
    assert authz.read_only("GetUser")
    assert not authz.read_only("CreateUser")


def test_model_constraints_are_checked_as_iam_words_them() -> None:
    shape = load_service_model("iam").operation("CreateUser").input_shape
    constraints.check(shape, {"UserName": "bob", "Path": "/ops/"})
    with pytest.raises(ValidationError) as raised:
        constraints.check(shape, {"UserName": "bad name", "Path": "no-slash"})
    assert raised.value.message.startswith("2 validation errors detected: Value ")
    assert "Value 'bad name' at 'userName' failed to satisfy constraint" in raised.value.message
    assert "Value 'no-slash' at 'path' failed to satisfy constraint" in raised.value.message
    assert "Member must satisfy regular expression pattern: [\\w+=,.@-]+" in raised.value.message
    keys = load_service_model("iam").operation("ListUsers").input_shape
    with pytest.raises(ValidationError, match="Member must have value less than or equal to 1000"):
        constraints.check(keys, {"MaxItems": 1001})
    status = load_service_model("iam").operation("UpdateAccessKey").input_shape
    with pytest.raises(ValidationError, match=r"enum value set: \[Active, Inactive, Expired\]"):
        constraints.check(status, {"AccessKeyId": "AKIA0000000000000000", "Status": "On"})


def test_connect_is_decided_on_the_group_and_the_user() -> None:
    request = authz.connect(REGION, ACCOUNT, "Orders", "app-user")
    group, user = request.resources
    assert (group, user) == (f"{EC}:replicationgroup:orders", f"{EC}:user:app-user")

    def allowing(*resources: str) -> Principal:
        statement = {"Effect": "Allow", "Action": "elasticache:Connect", "Resource": list(resources)}
        return replace(BOB, policies=(parse_policy(json.dumps({"Statement": statement})),))

    def ctx(_: str) -> RequestContext:
        return context({})

    assert authz.decide(root_principal(ACCOUNT, "AKIAROOT"), request, ctx).allowed
    refused = authz.decide(allowing(group), request, ctx)
    assert (refused.decision, refused.resource) == (Decision.IMPLICIT_DENY, user)
    assert authz.decide(allowing(group, user), request, ctx).allowed
