"""RBAC users and user groups through boto3 against a real server: AWS's shapes and codes, statuses
moved by the reconciler, and no password anywhere the server writes (state.db, its WAL, the log)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.support.engines import secrets_in_files
from tests.support.server import ServerProcess, wait_for

pytestmark = pytest.mark.integration

PW1 = "MARKERpw1-" + secrets.token_hex(8)
PW2 = "MARKERpw2-" + secrets.token_hex(8)
PW3 = "MARKERpw3-" + secrets.token_hex(8)
SECRETS = [PW1, PW2, PW3]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("users") / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()
    assert secrets_in_files(process.data_dir, SECRETS) == []


@pytest.fixture(scope="module")
def ec(server: ServerProcess) -> Any:
    return server.client()


def _error(call: Callable[..., Any], **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    message = response["Error"]["Message"]
    for secret in SECRETS:
        assert secret not in message
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], message


def _gone(call: Callable[..., Any], code: str, **params: Any) -> bool:
    """Whether ``call`` now fails with ``code`` (the resource no longer exists)."""
    try:
        call(**params)
    except ClientError as exc:
        return bool(exc.response["Error"]["Code"] == code)
    return False


def _user(ec: Any, user_id: str) -> dict[str, Any]:
    (found,) = ec.describe_users(UserId=user_id)["Users"]
    return dict(found)


def _group(ec: Any, group_id: str) -> dict[str, Any]:
    (found,) = ec.describe_user_groups(UserGroupId=group_id)["UserGroups"]
    return dict(found)


def test_create_and_describe_users(ec: Any, server: ServerProcess) -> None:
    made = ec.create_user(
        UserId="App-1",
        UserName="app",
        Engine="redis",
        AccessString="on ~app:* -@all +@read",
        Passwords=[PW1, PW2],
        Tags=[{"Key": "team", "Value": "shop"}],
    )
    assert {k: made[k] for k in ("UserId", "UserName", "Status", "Engine", "AccessString", "MinimumEngineVersion")} == {
        "UserId": "app-1",
        "UserName": "app",
        "Status": "active",
        "Engine": "redis",
        "AccessString": "on ~app:* -@all +@read",
        "MinimumEngineVersion": "6.0",
    }
    assert made["Authentication"] == {"Type": "password", "PasswordCount": 2}
    assert made["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:user:app-1"
    ec.create_user(UserId="open", UserName="open", Engine="redis", AccessString="on ~* +@all", NoPasswordRequired=True)
    ec.create_user(
        UserId="modal",
        UserName="modal",
        Engine="redis",
        AccessString="on ~* +get",
        AuthenticationMode={"Type": "password", "Passwords": [PW3]},
    )
    listed = ec.describe_users()["Users"]
    assert [u["UserId"] for u in listed] == ["default", "app-1", "open", "modal"]
    default = listed[0]
    assert (default["UserName"], default["AccessString"], default["Authentication"]["Type"]) == (
        "default",
        "on ~* +@all",
        "no-password",
    )
    assert _user(ec, "open")["Authentication"] == {"Type": "no-password", "PasswordCount": 0}
    filtered = ec.describe_users(Filters=[{"Name": "user-id", "Values": ["open", "modal"]}])["Users"]
    assert [u["UserId"] for u in filtered] == ["open", "modal"]
    tags = ec.list_tags_for_resource(ResourceName=made["ARN"])["TagList"]
    assert tags == [{"Key": "team", "Value": "shop"}]
    assert _error(ec.describe_users, UserId="ghost")[:2] == ("UserNotFound", 404)
    # Hashes only: no password in any file of the data dir (state.db and its WAL included) or the log.
    assert secrets_in_files(server.data_dir, SECRETS) == []


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"Passwords": ["short"]}, "InvalidParameterValue", "16 to 128"),
        ({"Passwords": ["has/a/slash-in-it"]}, "InvalidParameterValue", "must not contain"),
        ({"Passwords": ["has@an@at-in-it00"]}, "InvalidParameterValue", "must not contain"),
        ({"Passwords": [PW1, PW2, PW3]}, "InvalidParameterValue", "at most 2"),
        ({"Passwords": None}, "InvalidParameterValue", "NoPasswordRequired"),
        ({"NoPasswordRequired": True}, "InvalidParameterCombination", "NoPasswordRequired"),
        (
            {"UserName": "other", "Passwords": None, "AuthenticationMode": {"Type": "iam"}},
            "InvalidParameterValue",
            "UserName and UserId must be the same",
        ),
        (
            {"Passwords": None, "AuthenticationMode": {"Type": "iam", "Passwords": [PW1]}},
            "InvalidParameterCombination",
            "Type iam",
        ),
        (
            {"Passwords": None, "AuthenticationMode": {"Type": "no-password-required", "Passwords": [PW1]}},
            "InvalidParameterCombination",
            "no-password-required",
        ),
        ({"AccessString": f"on >{PW2} ~*"}, "InvalidParameterValue", "passwords"),
        ({"AccessString": "on nopass ~*"}, "InvalidParameterValue", "not in the access string"),
        ({"AccessString": "reset on ~*"}, "InvalidParameterValue", "'reset'"),
        ({"AccessString": "on ~* +nosuchcommand"}, "InvalidParameterValue", "unknown command"),
        ({"AccessString": "on ~* +@nosuchcategory"}, "InvalidParameterValue", "unknown command category"),
        ({"AccessString": "on ~* +config|get"}, "InvalidParameterValue", "restricted command"),
        ({"UserName": "cachefleet-admin"}, "InvalidParameterValue", "reserved"),
        ({"UserId": "9lives"}, "InvalidParameterValue", "not a valid identifier"),
        ({"UserId": "default"}, "UserAlreadyExists", "already exists"),
        ({"Engine": "memcached"}, "InvalidParameterValue", "not supported for users"),
    ],
)
def test_create_user_refusals(ec: Any, changes: dict[str, Any], code: str, message: str) -> None:
    params: dict[str, Any] = {
        "UserId": "refused",
        "UserName": "refused",
        "Engine": "redis",
        "AccessString": "on ~* +@all",
        "Passwords": [PW1],
    }
    params.update(changes)
    params = {k: v for k, v in params.items() if v is not None}
    got_code, status, got_message = _error(ec.create_user, **params)
    assert (got_code, status) == (code, 400)
    assert message in got_message
    assert _error(ec.describe_users, UserId="refused")[0] == "UserNotFound"  # nothing was made


def test_modify_and_delete_users(ec: Any) -> None:
    ec.create_user(UserId="editor", UserName="editor", Engine="redis", AccessString="on ~* +get", Passwords=[PW1])
    answer = ec.modify_user(UserId="editor", AppendAccessString="+set", Passwords=[PW2, PW3])
    assert answer["Status"] == "modifying"
    assert answer["AccessString"] == "on ~* +get +set"
    assert answer["Authentication"] == {"Type": "password", "PasswordCount": 2}
    wait_for("the user to be active again", lambda: _user(ec, "editor")["Status"] == "active")
    assert _error(ec.modify_user, UserId="editor", AccessString="on", AppendAccessString="~*")[0] == (
        "InvalidParameterCombination"
    )
    assert _error(ec.modify_user, UserId="default", AccessString="on ~* +get")[:2] == ("InvalidParameterValue", 400)
    assert _error(ec.delete_user, UserId="default")[:2] == ("InvalidParameterValue", 400)
    assert _error(ec.modify_user, UserId="ghost", AccessString="on")[:2] == ("UserNotFound", 404)
    assert ec.delete_user(UserId="editor")["Status"] == "deleting"
    wait_for("the user to be gone", lambda: _gone(ec.describe_users, "UserNotFound", UserId="editor"))


def test_user_groups(ec: Any) -> None:
    ec.create_user(UserId="reader", UserName="reader", Engine="redis", AccessString="on ~* +@read", Passwords=[PW1])
    ec.create_user(UserId="locked", UserName="default", Engine="redis", AccessString="on ~* +@all", Passwords=[PW2])
    ec.create_user(UserId="twin", UserName="reader", Engine="redis", AccessString="on ~* +get", Passwords=[PW3])

    assert _error(ec.create_user_group, UserGroupId="nodefault", Engine="redis", UserIds=["reader"])[:2] == (
        "DefaultUserRequired",
        400,
    )
    assert _error(ec.create_user_group, UserGroupId="two", Engine="redis", UserIds=["default", "locked"])[:2] == (
        "DuplicateUserName",
        400,
    )
    assert _error(ec.create_user_group, UserGroupId="ghosts", Engine="redis", UserIds=["default", "ghost"])[:2] == (
        "UserNotFound",
        404,
    )

    made = ec.create_user_group(UserGroupId="Team", Engine="redis", UserIds=["default", "reader"])
    assert (made["UserGroupId"], made["Status"], made["UserIds"]) == ("team", "creating", ["default", "reader"])
    assert made["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:usergroup:team"
    wait_for("the group to be active", lambda: _group(ec, "team")["Status"] == "active")
    assert _error(ec.create_user_group, UserGroupId="team", Engine="redis", UserIds=["default"])[0] == (
        "UserGroupAlreadyExists"
    )
    assert sorted(_user(ec, "reader")["UserGroupIds"]) == ["team"]

    # Swap the default user for the locked-down one: modifying, the change pending, then active.
    changed = ec.modify_user_group(UserGroupId="team", UserIdsToAdd=["locked"], UserIdsToRemove=["default"])
    assert changed["Status"] == "modifying"
    assert changed["PendingChanges"] == {"UserIdsToAdd": ["locked"], "UserIdsToRemove": ["default"]}
    wait_for("the change to be applied", lambda: _group(ec, "team")["Status"] == "active")
    assert _group(ec, "team")["UserIds"] == ["reader", "locked"]
    assert "PendingChanges" not in _group(ec, "team") or not _group(ec, "team")["PendingChanges"]
    assert _error(ec.modify_user_group, UserGroupId="team", UserIdsToRemove=["locked"])[0] == "DefaultUserRequired"
    assert _error(ec.modify_user_group, UserGroupId="team", UserIdsToAdd=["twin"])[0] == "DuplicateUserName"
    assert _error(ec.modify_user_group, UserGroupId="ghost", UserIdsToAdd=["twin"])[:2] == ("UserGroupNotFound", 404)

    # The group's default user cannot go; another member can, and leaves the group.
    assert _error(ec.delete_user, UserId="locked")[:2] == ("DefaultUserAssociatedToUserGroup", 400)
    ec.delete_user(UserId="reader")
    wait_for("the member to be gone", lambda: _gone(ec.describe_users, "UserNotFound", UserId="reader"))
    wait_for("the group to drop it", lambda: _group(ec, "team")["UserIds"] == ["locked"])
    wait_for("the group to be active", lambda: _group(ec, "team")["Status"] == "active")

    assert ec.delete_user_group(UserGroupId="team")["Status"] == "deleting"
    wait_for("the group to be gone", lambda: _gone(ec.describe_user_groups, "UserGroupNotFound", UserGroupId="team"))
    ec.delete_user(UserId="locked")  # no group holds it any more
