"""RBAC users and user groups: AWS's rules and error codes, hashes only, no secret in a message."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cachefleet.model import users
from cachefleet.model.acl import password_hash
from cachefleet.model.errors import (
    ClientError,
    DefaultUserAssociatedToUserGroup,
    DefaultUserRequired,
    DuplicateUserName,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidUserGroupState,
    InvalidUserState,
    UserAlreadyExists,
    UserGroupAlreadyExists,
    UserGroupQuotaExceeded,
    UserNotFound,
    UserQuotaExceeded,
)
from cachefleet.model.users import DEFAULT_USER, AuthenticationType, Credentials, User, UserGroup

PW1 = "password-number-one"
PW2 = "password-number-two"
EXISTING = {"default": DEFAULT_USER}


def _user(**changes: Any) -> User:
    params: dict[str, Any] = {
        "user_id": "app",
        "user_name": "app",
        "engine": "redis",
        "access_string": "on ~app:* +@read",
        "credentials": Credentials(passwords=(PW1,)),
        "existing": EXISTING,
    }
    params.update(changes)
    return users.new_user(**params)


def _refused(error: type[ClientError], call: Any, **kwargs: Any) -> str:
    with pytest.raises(error) as caught:
        call(**kwargs)
    for secret in (PW1, PW2):
        assert secret not in caught.value.message
    return caught.value.message


def test_a_user_keeps_password_hashes_only() -> None:
    user = _user(user_id="App-1", credentials=Credentials(passwords=(PW1, PW2)))
    assert user.user_id == "app-1"  # stored lower case, as AWS does
    assert user.password_hashes == (password_hash(PW1), password_hash(PW2))
    assert user.authentication is AuthenticationType.PASSWORD
    assert PW1 not in repr(user)
    assert user.enabled
    assert User.from_json(user.to_json()) == user  # as the store keeps it


@pytest.mark.parametrize(
    ("credentials", "kind", "count"),
    [
        (Credentials(no_password_required=True), AuthenticationType.NO_PASSWORD, 0),
        (Credentials(mode_type="no-password-required"), AuthenticationType.NO_PASSWORD, 0),
        (Credentials(mode_type="password", mode_passwords=(PW1,)), AuthenticationType.PASSWORD, 1),
        (Credentials(passwords=(PW1, PW1)), AuthenticationType.PASSWORD, 1),  # the same twice is one
        (Credentials(mode_type="iam"), AuthenticationType.IAM, 0),  # its password is the IAM endpoint's
    ],
)
def test_authentication_modes(credentials: Credentials, kind: AuthenticationType, count: int) -> None:
    user = _user(credentials=credentials)
    assert user.authentication is kind
    assert len(user.password_hashes) == count


@pytest.mark.parametrize(
    ("credentials", "error", "message"),
    [
        (Credentials(), InvalidParameterValue, "NoPasswordRequired"),
        (Credentials(passwords=(PW1,), no_password_required=True), InvalidParameterCombination, "NoPasswordRequired"),
        (Credentials(passwords=(PW1, PW2, "password-number-3")), InvalidParameterValue, "at most 2"),
        (Credentials(passwords=("short",)), InvalidParameterValue, "16 to 128"),
        (Credentials(passwords=("x" * 129,)), InvalidParameterValue, "16 to 128"),
        (Credentials(passwords=("has,a,comma-in-it",)), InvalidParameterValue, "must not contain the characters"),
        (Credentials(passwords=('has"a"quote-in-it',)), InvalidParameterValue, "must not contain"),
        (Credentials(passwords=("has/a/slash-in-it",)), InvalidParameterValue, "must not contain"),
        (Credentials(passwords=("has@an@at-in-it00",)), InvalidParameterValue, "must not contain"),
        (Credentials(passwords=("has a space in it",)), InvalidParameterValue, "without spaces"),
        (Credentials(mode_type="iam", mode_passwords=(PW1,)), InvalidParameterCombination, "Type iam"),
        (Credentials(mode_type="kerberos"), InvalidParameterValue, "expected password"),
        (Credentials(mode_type="password"), InvalidParameterValue, "at least one password"),
        (
            Credentials(mode_type="no-password-required", mode_passwords=(PW1,)),
            InvalidParameterCombination,
            "no-password-required",
        ),
        (Credentials(mode_type="password", mode_passwords=(PW1,), passwords=(PW2,)), InvalidParameterCombination, ""),
    ],
)
def test_credentials_refused(credentials: Credentials, error: type[ClientError], message: str) -> None:
    assert message in _refused(error, _user, credentials=credentials)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"user_id": "default"}, UserAlreadyExists, "already exists"),
        ({"user_id": "1app"}, InvalidParameterValue, "not a valid identifier"),
        ({"user_id": "app--1"}, InvalidParameterValue, "not a valid identifier"),
        ({"user_id": "app-"}, InvalidParameterValue, "not a valid identifier"),
        ({"user_id": "a" * 41}, InvalidParameterValue, "not a valid identifier"),
        ({"user_name": "has space"}, InvalidParameterValue, "UserName"),
        ({"user_name": "cachefleet-admin"}, InvalidParameterValue, "reserved"),
        ({"user_name": "CacheFleet-x"}, InvalidParameterValue, "reserved"),
        ({"engine": "memcached"}, InvalidParameterValue, "not supported for users"),
        ({"access_string": "on >inline-password ~*"}, InvalidParameterValue, "passwords"),
        (
            {"user_name": "other", "credentials": Credentials(mode_type="iam")},
            InvalidParameterValue,
            "UserName and UserId must be the same",
        ),
    ],
)
def test_create_user_refused(changes: dict[str, Any], error: type[ClientError], message: str) -> None:
    assert message in _refused(error, _user, **changes)


def test_user_ids_are_unique_and_counted() -> None:
    existing = {"default": DEFAULT_USER, "app": _user()}
    _refused(UserAlreadyExists, _user, user_id="APP", existing=existing)
    crowd = {f"u{i}": DEFAULT_USER for i in range(users.USER_QUOTA)}
    _refused(UserQuotaExceeded, _user, existing=crowd)


def test_engine_is_lower_cased_and_must_be_installed() -> None:
    assert _user(engine="Redis").engine == "redis"
    _refused(InvalidParameterValue, _user, engine="valkey", installed=("redis",))


def test_modify_user() -> None:
    user = _user()
    changed = users.modified_user(user, access_string="on ~* +@all")
    assert changed.access_string == "on ~* +@all"
    appended = users.modified_user(user, append_access_string="-get")
    assert appended.access_string == "on ~app:* +@read -get"
    new_pw = users.modified_user(user, credentials=Credentials(passwords=(PW2,)))
    assert new_pw.password_hashes == (password_hash(PW2),)
    opened = users.modified_user(user, credentials=Credentials(no_password_required=True))
    assert (opened.authentication, opened.password_hashes) == (AuthenticationType.NO_PASSWORD, ())
    disabled = users.modified_user(user, access_string="off ~app:* +@read")
    assert not disabled.enabled


def test_modify_user_refused() -> None:
    user = _user()
    _refused(InvalidParameterValue, users.modified_user, user=DEFAULT_USER, access_string="on ~* +@all")
    _refused(InvalidParameterCombination, users.modified_user, user=user, access_string="on", append_access_string="~*")
    _refused(InvalidParameterValue, users.modified_user, user=user)
    _refused(InvalidParameterValue, users.modified_user, user=user, append_access_string="reset")
    _refused(InvalidParameterValue, users.modified_user, user=user, credentials=Credentials(passwords=("tiny",)))
    renamed = replace(user, user_name="other")
    _refused(InvalidParameterValue, users.modified_user, user=renamed, credentials=Credentials(mode_type="iam"))


def test_user_groups() -> None:
    app = _user()
    lockdown = _user(user_id="locked-default", user_name="default", credentials=Credentials(passwords=(PW2,)))
    everyone = {"default": DEFAULT_USER, "app": app, "locked-default": lockdown}
    group = users.new_user_group(
        user_group_id="Team", engine="redis", user_ids=["default", "app"], users=everyone, existing=()
    )
    assert group == UserGroup("team", "redis", ("default", "app"))
    swapped = users.modified_user_group(group, to_add=["locked-default"], to_remove=["default"], users=everyone)
    assert swapped.user_ids == ("app", "locked-default")


@pytest.mark.parametrize(
    ("user_ids", "error", "message"),
    [
        (["app"], DefaultUserRequired, "named default"),
        ([], DefaultUserRequired, "named default"),
        (["default", "locked-default"], DuplicateUserName, "default"),
        (["default", "ghost"], UserNotFound, "ghost"),
        (["default", "default"], InvalidParameterValue, "twice"),
        (["default", "vk"], InvalidParameterValue, "valkey user"),
    ],
)
def test_create_user_group_refused(user_ids: list[str], error: type[ClientError], message: str) -> None:
    everyone = {
        "default": DEFAULT_USER,
        "app": _user(),
        "locked-default": _user(user_id="locked-default", user_name="default"),
        "vk": _user(user_id="vk", user_name="vk", engine="valkey"),
    }
    found = _refused(
        error,
        users.new_user_group,
        user_group_id="team",
        engine="redis",
        user_ids=user_ids,
        users=everyone,
        existing=(),
    )
    assert message in found


def test_the_built_in_default_user_joins_groups_of_any_engine() -> None:
    everyone = {"default": DEFAULT_USER}
    group = users.new_user_group(user_group_id="vk", engine="valkey", user_ids=["default"], users=everyone, existing=())
    assert group.user_ids == ("default",)


def test_user_group_ids_and_quota() -> None:
    everyone = {"default": DEFAULT_USER}
    _refused(
        UserGroupAlreadyExists,
        users.new_user_group,
        user_group_id="team",
        engine="redis",
        user_ids=["default"],
        users=everyone,
        existing=("team",),
    )
    many = [f"g{i}" for i in range(users.USER_GROUP_QUOTA)]
    _refused(
        UserGroupQuotaExceeded,
        users.new_user_group,
        user_group_id="team",
        engine="redis",
        user_ids=["default"],
        users=everyone,
        existing=many,
    )
    _refused(
        InvalidParameterValue,
        users.new_user_group,
        user_group_id="-team",
        engine="redis",
        user_ids=["default"],
        users=everyone,
        existing=(),
    )


def test_modify_user_group_refused() -> None:
    everyone = {"default": DEFAULT_USER, "app": _user(), "other": _user(user_id="other", user_name="app")}
    group = UserGroup("team", "redis", ("default", "app"))
    _refused(InvalidParameterValue, users.modified_user_group, group=group, users=everyone)
    _refused(DefaultUserRequired, users.modified_user_group, group=group, to_remove=["default"], users=everyone)
    _refused(DuplicateUserName, users.modified_user_group, group=group, to_add=["other"], users=everyone)
    _refused(InvalidParameterValue, users.modified_user_group, group=group, to_add=["app"], users=everyone)
    _refused(InvalidParameterValue, users.modified_user_group, group=group, to_remove=["other"], users=everyone)
    _refused(
        InvalidParameterCombination,
        users.modified_user_group,
        group=group,
        to_add=["other"],
        to_remove=["other"],
        users=everyone,
    )
    _refused(UserNotFound, users.modified_user_group, group=group, to_add=["ghost"], users=everyone)
    # A user being deleted joins no group.
    _refused(
        InvalidUserState, users.modified_user_group, group=group, to_add=["other"], users=everyone, deleting=["other"]
    )


def test_deleting_users_and_groups() -> None:
    app = _user()
    named_default = _user(user_id="locked-default", user_name="default")
    groups = [UserGroup("team", "redis", ("locked-default", "app"))]
    users.check_user_deletable(app, groups)  # leaves the group; the group stays valid
    _refused(DefaultUserAssociatedToUserGroup, users.check_user_deletable, user=named_default, groups=groups)
    users.check_user_deletable(named_default, [])
    _refused(InvalidParameterValue, users.check_user_deletable, user=DEFAULT_USER, groups=[])
    assert UserGroup.from_json(groups[0].to_json()) == groups[0]
    users.check_user_group_deletable(groups[0], [])
    _refused(InvalidUserGroupState, users.check_user_group_deletable, group=groups[0], replication_groups=["rg1"])
