"""IAM and STS on the server's endpoint, and policies enforced on every call: real boto3 clients of
different identities against one real server.

One server for the module: IAM calls start no process, and every test uses names of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration

ACCOUNT = "000000000000"
REGION = "us-east-1"
PG_ARN = f"arn:aws:elasticache:{REGION}:{ACCOUNT}:parametergroup"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("iam") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


def _client(server: ServerProcess, service: str, key: tuple[str, str] | None = None) -> Any:
    key_id, secret = key or server.credentials()
    return server.client(
        service,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


@pytest.fixture(scope="module")
def iam(server: ServerProcess) -> Any:
    return _client(server, "iam")


@pytest.fixture(scope="module")
def root(server: ServerProcess) -> Any:
    return _client(server, "elasticache")


def _user(iam: Any, name: str, *policies: dict[str, Any]) -> tuple[str, str]:
    """A new user with inline policies; its access key."""
    iam.create_user(UserName=name)
    for index, document in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{index}", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _error(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    error = caught.value.response["Error"]
    return error["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Message"]


def _parameter_groups(root: Any) -> set[str]:
    groups = root.describe_cache_parameter_groups(MaxRecords=100)["CacheParameterGroups"]
    return {g["CacheParameterGroupName"] for g in groups}


def _create_pg(client: Any, name: str, **extra: Any) -> Any:
    return client.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily="redis7", Description="iam test", **extra
    )


# -- identities --------------------------------------------------------------------------------


def test_get_caller_identity_names_the_root_and_a_user(server: ServerProcess, iam: Any) -> None:
    root_identity = _client(server, "sts").get_caller_identity()
    assert root_identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert root_identity["Account"] == ACCOUNT
    assert root_identity["UserId"] == ACCOUNT

    key = _user(iam, "caller")
    user_identity = _client(server, "sts", key).get_caller_identity()
    assert user_identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/caller"
    assert user_identity["Account"] == ACCOUNT
    assert user_identity["UserId"] == iam.get_user(UserName="caller")["User"]["UserId"]
    assert user_identity["UserId"].startswith("AIDA")


def test_users_access_keys_and_iams_errors(server: ServerProcess, iam: Any) -> None:
    created = iam.create_user(UserName="alice", Path="/team/", Tags=[{"Key": "team", "Value": "web"}])["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/alice"
    assert iam.get_user(UserName="alice")["User"]["Tags"] == [{"Key": "team", "Value": "web"}]
    assert "alice" in {u["UserName"] for u in iam.get_paginator("list_users").paginate().build_full_result()["Users"]}
    assert _error(iam.create_user, UserName="ALICE")[:2] == ("EntityAlreadyExists", 409)
    assert _error(iam.get_user, UserName="nobody") == (
        "NoSuchEntity",
        404,
        "The user with name nobody cannot be found.",
    )
    code, status, message = _error(iam.create_user, UserName="no spaces")
    assert (code, status) == ("ValidationError", 400)
    assert "userName" in message

    first = iam.create_access_key(UserName="alice")["AccessKey"]
    assert first["Status"] == "Active"
    assert len(first["SecretAccessKey"]) == 40
    iam.create_access_key(UserName="alice")
    assert _error(iam.create_access_key, UserName="alice")[:2] == ("LimitExceeded", 409)
    listed = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in listed} >= {first["AccessKeyId"]}
    assert all("SecretAccessKey" not in k for k in listed)

    assert _error(iam.delete_user, UserName="alice")[:2] == ("DeleteConflict", 409)
    for key in listed:
        iam.delete_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName="alice")
    assert _error(iam.get_user, UserName="alice")[0] == "NoSuchEntity"


def test_secrets_are_never_written_in_plain_text(server: ServerProcess, iam: Any) -> None:
    _, secret = _user(iam, "sealed")
    admin_secret = server.credentials()[1]
    for path in server.data_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        assert secret.encode() not in data, path
        if path.name != "credentials":  # the admin's own copy of their key, by design
            assert admin_secret.encode() not in data, path
    key_file = server.data_dir / "keys" / "installation.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


# -- policies ----------------------------------------------------------------------------------


def test_a_user_without_policies_is_denied_and_nothing_changes(server: ServerProcess, iam: Any, root: Any) -> None:
    nobody = _client(server, "elasticache", _user(iam, "nobody"))
    code, status, message = _error(_create_pg, nobody, "not-made")
    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/nobody is not authorized to perform: "
        f"elasticache:CreateCacheParameterGroup on resource: {PG_ARN}:not-made "
        "because no identity-based policy allows the elasticache:CreateCacheParameterGroup action"
    )
    assert "not-made" not in _parameter_groups(root)
    assert _error(nobody.describe_replication_groups)[:2] == ("AccessDenied", 403)
    assert _error(_client(server, "iam", _user(iam, "nobody2")).list_users)[:2] == ("AccessDenied", 403)


def test_allow_deny_and_wildcards(server: ServerProcess, iam: Any, root: Any) -> None:
    key = _user(
        iam,
        "builder",
        _policy(
            {"Effect": "Allow", "Action": "elasticache:describe*", "Resource": "*"},
            {"Effect": "Allow", "Action": "elasticache:*CacheParameterGroup", "Resource": f"{PG_ARN}:team-*"},
            {"Effect": "Deny", "Action": "elasticache:Delete*", "Resource": f"{PG_ARN}:team-keep"},
        ),
    )
    builder = _client(server, "elasticache", key)
    assert builder.describe_replication_groups()["ReplicationGroups"] == []
    _create_pg(builder, "team-a")
    _create_pg(builder, "team-keep")
    code, _, message = _error(_create_pg, builder, "other")
    assert code == "AccessDenied"
    assert "no identity-based policy allows" in message
    code, _, message = _error(builder.delete_cache_parameter_group, CacheParameterGroupName="team-keep")
    assert code == "AccessDenied"
    assert message.endswith("with an explicit deny in an identity-based policy")
    builder.delete_cache_parameter_group(CacheParameterGroupName="team-a")
    assert {"team-keep"} <= _parameter_groups(root)
    assert "team-a" not in _parameter_groups(root)
    assert "other" not in _parameter_groups(root)


def test_managed_policies_groups_and_versions(server: ServerProcess, iam: Any) -> None:
    document = _policy({"Effect": "Allow", "Action": "elasticache:DescribeCacheParameterGroups", "Resource": "*"})
    arn = iam.create_policy(PolicyName="readers", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/readers"
    key = _user(iam, "reader")
    reader = _client(server, "elasticache", key)
    assert _error(reader.describe_cache_parameter_groups)[0] == "AccessDenied"

    iam.create_group(GroupName="readers")
    iam.attach_group_policy(GroupName="readers", PolicyArn=arn)
    iam.add_user_to_group(GroupName="readers", UserName="reader")
    assert reader.describe_cache_parameter_groups()["CacheParameterGroups"]

    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert (policy["DefaultVersionId"], policy["AttachmentCount"]) == ("v1", 1)
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert got["Document"] == document  # botocore decodes IAM's URL-encoded JSON into a dict
    deny = _policy({"Effect": "Deny", "Action": "elasticache:*", "Resource": "*"})
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(deny), SetAsDefault=True)
    assert _error(reader.describe_cache_parameter_groups)[0] == "AccessDenied"
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    assert reader.describe_cache_parameter_groups()["CacheParameterGroups"]

    assert _error(iam.delete_policy, PolicyArn=arn)[:2] == ("DeleteConflict", 409)
    iam.remove_user_from_group(GroupName="readers", UserName="reader")
    assert _error(reader.describe_cache_parameter_groups)[0] == "AccessDenied"
    iam.attach_user_policy(UserName="reader", PolicyArn="arn:aws:iam::aws:policy/AmazonElastiCacheReadOnlyAccess")
    assert reader.describe_cache_parameter_groups()["CacheParameterGroups"]
    attached = iam.list_attached_user_policies(UserName="reader")["AttachedPolicies"]
    assert attached == [
        {"PolicyName": "AmazonElastiCacheReadOnlyAccess",
         "PolicyArn": "arn:aws:iam::aws:policy/AmazonElastiCacheReadOnlyAccess"}
    ]  # fmt: skip


def test_conditions_on_tags_user_name_and_time(server: ServerProcess, iam: Any, root: Any) -> None:
    key = _user(
        iam,
        "tagger",
        _policy(
            {
                "Effect": "Allow",
                "Action": ["elasticache:CreateCacheParameterGroup", "elasticache:AddTagsToResource"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:RequestTag/owner": "${aws:username}"},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["owner", "env"]},
                },
            },
            {
                "Effect": "Allow",
                "Action": "elasticache:DeleteCacheParameterGroup",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/owner": "${aws:username}"}},
            },
            {
                "Effect": "Deny",
                "Action": "elasticache:*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}},
            },
        ),
    )
    tagger = _client(server, "elasticache", key)
    _create_pg(tagger, "tagged-mine", Tags=[{"Key": "owner", "Value": "tagger"}])
    assert _error(_create_pg, tagger, "tagged-theirs", Tags=[{"Key": "owner", "Value": "eve"}])[0] == "AccessDenied"
    assert _error(_create_pg, tagger, "untagged")[0] == "AccessDenied"
    assert (
        _error(
            _create_pg, tagger, "extra-tag", Tags=[{"Key": "owner", "Value": "tagger"}, {"Key": "cost", "Value": "1"}]
        )[0]
        == "AccessDenied"
    )
    _create_pg(root, "tagged-root", Tags=[{"Key": "owner", "Value": "root"}])
    assert _error(tagger.delete_cache_parameter_group, CacheParameterGroupName="tagged-root")[0] == "AccessDenied"
    tagger.delete_cache_parameter_group(CacheParameterGroupName="tagged-mine")
    groups = _parameter_groups(root)
    assert "tagged-root" in groups
    assert not {"tagged-mine", "tagged-theirs", "untagged", "extra-tag"} & groups


def test_an_inactive_key_is_refused_at_once(server: ServerProcess, iam: Any) -> None:
    key = _user(iam, "sleeper", _policy({"Effect": "Allow", "Action": "sts:*", "Resource": "*"}))
    sts = _client(server, "sts", key)
    assert sts.get_caller_identity()["Arn"].endswith(":user/sleeper")
    iam.update_access_key(UserName="sleeper", AccessKeyId=key[0], Status="Inactive")
    assert _error(sts.get_caller_identity)[:2] == ("InvalidClientTokenId", 403)
    assert iam.list_access_keys(UserName="sleeper")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    iam.update_access_key(UserName="sleeper", AccessKeyId=key[0], Status="Active")
    assert sts.get_caller_identity()["Arn"].endswith(":user/sleeper")
    iam.delete_access_key(UserName="sleeper", AccessKeyId=key[0])
    assert _error(sts.get_caller_identity)[:2] == ("InvalidClientTokenId", 403)


def test_malformed_and_oversized_policies_are_refused(iam: Any) -> None:
    iam.create_user(UserName="strict")
    code, status, message = _error(
        iam.put_user_policy, UserName="strict", PolicyName="bad", PolicyDocument='{"Statement": {"Effect": "Allow"}}'
    )
    assert (code, status) == ("MalformedPolicyDocument", 400)
    assert "actions" in message
    huge = _policy(*[
        {"Sid": f"S{i}", "Effect": "Allow", "Action": "elasticache:Describe*", "Resource": f"{PG_ARN}:p{i}"}
        for i in range(40)
    ])  # fmt: skip
    assert _error(iam.put_user_policy, UserName="strict", PolicyName="big", PolicyDocument=json.dumps(huge))[:2] == (
        "LimitExceeded",
        409,
    )
    assert iam.list_user_policies(UserName="strict")["PolicyNames"] == []


def test_the_root_cannot_lose_its_last_key(server: ServerProcess, iam: Any) -> None:
    key_id = server.credentials()[0]
    keys = iam.list_access_keys()["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [key_id]
    assert _error(iam.update_access_key, AccessKeyId=key_id, Status="Inactive")[0] == "InvalidInput"
    assert _error(iam.delete_access_key, AccessKeyId=key_id)[0] == "InvalidInput"


def test_every_mutating_call_is_audited_without_secrets(server: ServerProcess, iam: Any) -> None:
    key = _user(iam, "audited")
    nobody = _client(server, "elasticache", key)
    _error(_create_pg, nobody, "audit-denied")
    log = server.data_dir / "audit" / "audit.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    by_name = {(r["eventSource"], r["eventName"], r["userIdentity"].get("userName")): r for r in records}
    created = by_name[("iam.amazonaws.com", "CreateAccessKey", None)]
    assert created["userIdentity"]["type"] == "Root"
    assert created["requestParameters"] == {"userName": "audited"}
    assert created["responseElements"]["accessKey"]["accessKeyId"] == key[0]
    denied = by_name[("elasticache.amazonaws.com", "CreateCacheParameterGroup", "audited")]
    assert denied["errorCode"] == "AccessDenied"
    assert denied["resources"] == [{"ARN": f"{PG_ARN}:audit-denied"}]
    assert denied["sourceIPAddress"] == "127.0.0.1"
    assert not any(r["eventName"].startswith(("Describe", "List", "Get")) for r in records)
    assert key[1] not in log.read_text()
    assert Path(log).stat().st_mode & 0o777 == 0o600


# -- the CLI ---------------------------------------------------------------------------------------


def _cli(server: ServerProcess, *args: str) -> str:
    from click.testing import CliRunner  # noqa: PLC0415

    from cachefleet.cli.main import main  # noqa: PLC0415

    # Wide enough that rich never shortens a cell, whatever runs the tests.
    argv = [*args[:2], *args[2:], "--data-dir", str(server.data_dir)]
    result = CliRunner().invoke(main, argv, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_iam_audit_and_kms_verbs(server: ServerProcess, iam: Any) -> None:
    assert "created arn:aws:iam::000000000000:user/cli-user" in _cli(server, "iam", "user", "create", "cli-user")
    made = json.loads(_cli(server, "iam", "key", "create", "cli-user", "--json"))["AccessKey"]
    document = json.dumps(_policy({"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}))
    _cli(server, "iam", "policy", "put", "cli-user", "whoami", document)
    shown = _cli(server, "iam", "user", "show", "cli-user")
    assert made["AccessKeyId"] in shown
    assert "inline policies: whoami" in shown
    assert (
        _client(server, "sts", (made["AccessKeyId"], made["SecretAccessKey"]))
        .get_caller_identity()["Arn"]
        .endswith(":user/cli-user")
    )
    _cli(server, "iam", "key", "deactivate", "cli-user", made["AccessKeyId"])
    assert "Inactive" in _cli(server, "iam", "key", "list", "cli-user")
    assert "arn:aws:iam::000000000000:root" in _cli(server, "iam", "whoami")

    trail = [json.loads(line) for line in _cli(server, "audit", "--action", "UpdateAccessKey", "--json").splitlines()]
    assert made["AccessKeyId"] in [r["requestParameters"]["accessKeyId"] for r in trail]
    assert {r["eventName"] for r in trail} == {"UpdateAccessKey"}
    assert "iam:CreateUser" in _cli(server, "audit", "--service", "iam", "--since", "1h")
    assert made["SecretAccessKey"] not in _cli(server, "audit", "--json")

    _cli(server, "iam", "user", "delete", "cli-user", "--force")
    assert _error(iam.get_user, UserName="cli-user")[0] == "NoSuchEntity"

    assert "alias/cachefleet/default" in _cli(server, "kms", "list")
    created = json.loads(_cli(server, "kms", "create-key", "--alias", "alias/cli", "--json"))
    assert created["KeyArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{created['KeyId']}"
    listed = json.loads(_cli(server, "kms", "list", "--json"))["Keys"]
    assert created["KeyId"] in {k["KeyId"] for k in listed}
