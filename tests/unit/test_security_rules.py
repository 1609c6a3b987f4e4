"""A group's security as one value: AWS's rules across TLS, AUTH token and user groups, the version
the reconciler acknowledges, Describe's pending values, and the stored form (hashes only)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cachefleet.model import security
from cachefleet.model.acl import password_hash
from cachefleet.model.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidUserGroupState,
    UserGroupNotFound,
)
from cachefleet.model.security import NONE, Request, Security, TokenUpdate
from cachefleet.model.transit import Transit, TransitMode

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
T1, T2 = "first-token-0123456789", "second-token-0123456789"
GROUPS = {"shop": "redis", "other": "redis", "vk": "valkey"}
REQUIRED = Transit(True, TransitMode.REQUIRED)


def create(**request: object) -> Security:
    return security.at_creation(Request(**request), engine="redis", user_groups=GROUPS, now=NOW)  # type: ignore[arg-type]


def modify(current: Security, **request: object) -> Security:
    wanted = Request(**request)  # type: ignore[arg-type]
    return security.modified(current, wanted, engine="redis", user_groups=GROUPS, now=LATER)


def test_a_new_group_with_a_token_keeps_its_hash_and_when_it_was_set() -> None:
    made = create(transit_enabled=True, auth_token=T1)
    assert made.transit == REQUIRED
    assert made.tokens.hashes == (password_hash(T1),)
    assert made.token_modified_at == NOW
    assert made.version == 0  # nothing to carry out: the nodes start with it
    assert T1 not in str(made.to_json())
    assert Security.from_json(made.to_json()) == made
    assert Security.from_json(None) == NONE  # a spec written before security existed


def test_a_new_group_with_a_user_group() -> None:
    made = create(transit_enabled=True, user_group_ids=["Shop"])
    assert made.user_group_ids == ("shop",)
    assert made.access_control
    assert not made.tokens.enabled


TLS = {"transit_enabled": True}
COMBINATION, VALUE = InvalidParameterCombination, InvalidParameterValue


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        ({"user_group_ids": ["shop"]}, COMBINATION, "encryption-in-transit"),
        ({**TLS, "transit_mode": "preferred", "user_group_ids": ["shop"]}, COMBINATION, "preferred"),
        ({**TLS, "user_group_ids": ["shop"], "auth_token": T1}, COMBINATION, "either"),
        ({**TLS, "user_group_ids": ["shop", "other"]}, VALUE, "one user group"),
        ({**TLS, "user_group_ids": ["shop", "SHOP"]}, VALUE, "twice"),
        ({**TLS, "user_group_ids": ["nope"]}, UserGroupNotFound, "nope"),
        ({**TLS, "user_group_ids": ["vk"]}, COMBINATION, "valkey"),
        ({"auth_token": T1}, COMBINATION, "encryption-in-transit"),
    ],
)
def test_creation_refusals(request_: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        create(**request_)


def test_a_user_group_being_deleted_cannot_be_taken() -> None:
    with pytest.raises(InvalidUserGroupState):
        security.at_creation(
            Request(transit_enabled=True, user_group_ids=["shop"]),
            engine="redis",
            user_groups=GROUPS,
            deleting={"shop"},
            now=NOW,
        )


def test_rotate_then_set_each_bump_the_version_and_show_what_is_pending() -> None:
    made = create(transit_enabled=True, auth_token=T1)
    rotated = modify(made, auth_token=T2)
    assert rotated.tokens.hashes == (password_hash(T1), password_hash(T2))
    assert (rotated.version, rotated.token_version, rotated.token_update) == (1, 1, TokenUpdate.ROTATING)
    assert rotated.token_modified_at == LATER
    assert security.pending(rotated, 0, "required", ()) == {"AuthTokenStatus": "ROTATING"}
    assert security.pending(rotated, 1, "required", ()) == {}  # the nodes have it
    done = modify(rotated, auth_token=T2, strategy="SET")
    assert (done.tokens.hashes, done.version, done.token_update) == ((password_hash(T2),), 2, TokenUpdate.SETTING)
    assert modify(done, auth_token=T2) == done  # the newest token again: nothing to rotate
    assert modify(done) is done  # a call without security members leaves it alone


def test_moving_to_rbac_deletes_the_token_in_the_same_call() -> None:
    made = create(transit_enabled=True, auth_token=T1)
    with pytest.raises(InvalidParameterCombination, match="DELETE"):
        modify(made, to_add=["shop"])
    moved = modify(made, to_add=["shop"], strategy="DELETE")
    assert (moved.tokens.enabled, moved.user_group_ids, moved.token_update) == (False, ("shop",), TokenUpdate.SETTING)
    assert security.pending(moved, 0, "required", ()) == {
        "AuthTokenStatus": "SETTING",
        "UserGroups": {"UserGroupIdsToAdd": ["shop"], "UserGroupIdsToRemove": []},
    }
    with pytest.raises(InvalidParameterCombination, match="user groups"):
        modify(moved, auth_token=T2)  # a group with RBAC takes no token


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        ({"to_add": ["other"]}, InvalidParameterValue, "one user group"),
        ({"to_add": ["shop"]}, InvalidParameterValue, "already"),
        ({"to_remove": ["other"]}, InvalidParameterValue, "not associated"),
        ({"to_add": ["other"], "to_remove": ["other"]}, InvalidParameterCombination, "both"),
        ({"to_add": ["other"], "remove_all": True}, InvalidParameterCombination, "RemoveUserGroups"),
        ({"transit_mode": "preferred"}, InvalidParameterCombination, "access control"),
        ({"strategy": "DELETE"}, InvalidParameterValue, "none is set"),
    ],
)
def test_modification_refusals_on_an_rbac_group(
    request_: dict[str, object], error: type[Exception], match: str
) -> None:
    rbac = create(transit_enabled=True, user_group_ids=["shop"])
    with pytest.raises(error, match=match):
        modify(rbac, **request_)


def test_user_groups_removed_and_tls_moved_show_as_pending() -> None:
    rbac = create(transit_enabled=True, user_group_ids=["shop"])
    removed = modify(rbac, remove_all=True)
    assert (removed.user_group_ids, removed.version) == ((), 1)
    assert security.pending(removed, 0, "required", ("shop",)) == {
        "UserGroups": {"UserGroupIdsToAdd": [], "UserGroupIdsToRemove": ["shop"]}
    }
    plain = create()
    preferred = modify(plain, transit_enabled=True, transit_mode="preferred")
    shown = {"TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}
    assert security.pending(preferred, 0, "", ()) == shown
    back = modify(modify(preferred, transit_mode="required"), transit_mode="preferred")
    off = modify(back, transit_enabled=False)
    assert security.pending(off, 3, "preferred", ()) == {"TransitEncryptionEnabled": False}


def test_the_request_never_shows_its_token() -> None:
    assert T1 not in repr(Request(auth_token=T1))
