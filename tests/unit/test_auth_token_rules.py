"""AUTH token rules and the ROTATE/SET/DELETE state machine, with AWS's error codes.

No message may repeat a token: every refusal below is also checked for that.
"""

from __future__ import annotations

import pytest

from cachefleet.model import auth_token, transit
from cachefleet.model.acl import password_hash
from cachefleet.model.auth_token import NO_TOKEN, TokenState
from cachefleet.model.errors import ClientError, InvalidParameterCombination, InvalidParameterValue

TLS = transit.Transit(True, transit.TransitMode.REQUIRED)
PREFERRED = transit.Transit(True, transit.TransitMode.PREFERRED)
T1 = "first-token-0123456789"
T2 = "second-token-0123456789"
T3 = "third-token-0123456789"


def _refused(error: type[ClientError], secret: str, call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert secret not in caught.value.message
    return caught.value.message


@pytest.mark.parametrize(
    "token",
    ["a" * 16, "a" * 128, "Abc123!&#$^<>-xyz", "-" * 16],
)
def test_create_time_tokens_accepted(token: str) -> None:
    auth_token.check_token(token, creating=True)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("a" * 15, "16 to 128"),
        ("a" * 129, "16 to 128"),
        ("abcdefghijklmnop%", "Only letters, digits"),  # % is not in the create-time set
        ("abcdefghijklmnop*", "Only letters, digits"),
        ("abcdefgh ijklmnop", "without spaces"),
        ("abcdefghijklmnopé", "printable ASCII"),
        ("abcdefghijklmnop\n", "printable ASCII"),
    ],
)
def test_create_time_tokens_refused(token: str, why: str) -> None:
    message = _refused(InvalidParameterValue, token, auth_token.check_token, token, creating=True)
    assert message.startswith("Invalid AuthToken provided.")
    assert why in message


def test_modify_time_tokens_allow_more_but_not_slash_quote_at_percent() -> None:
    auth_token.check_token("abcdefghijklmnop*(){}[]~", creating=False)
    for bad in '/"@%':
        token = "abcdefghijklmnop" + bad
        assert "not allowed" in _refused(InvalidParameterValue, token, auth_token.check_token, token, creating=False)


def test_a_token_needs_tls_in_required_mode_and_no_user_group() -> None:
    assert auth_token.initial_state(None, transit=transit.OFF) == NO_TOKEN
    message = _refused(InvalidParameterCombination, T1, auth_token.initial_state, T1, transit=transit.OFF)
    assert message == "The AUTH token is only supported when encryption-in-transit is enabled."
    message = _refused(InvalidParameterCombination, T1, auth_token.initial_state, T1, transit=PREFERRED)
    assert "preferred is not supported" in message
    _refused(InvalidParameterCombination, T1, auth_token.initial_state, T1, transit=TLS, user_groups=True)
    state = auth_token.initial_state(T1, transit=TLS)
    assert state == TokenState(hashes=(password_hash(T1),), open_access=False)
    assert state.enabled
    assert not state.rotating


def test_the_stored_state_holds_hashes_only() -> None:
    state = auth_token.modify(auth_token.initial_state(T1, transit=TLS), T2, "ROTATE", transit=TLS)
    assert T1 not in repr(state)
    assert T2 not in repr(state)
    assert state.hashes == (password_hash(T1), password_hash(T2))


def test_rotate_keeps_the_two_newest_then_set_keeps_one() -> None:
    one = auth_token.initial_state(T1, transit=TLS)
    two = auth_token.modify(one, T2, None, transit=TLS)  # ROTATE is the default strategy
    assert two.hashes == (password_hash(T1), password_hash(T2))
    assert two.rotating
    three = auth_token.modify(two, T3, "ROTATE", transit=TLS)
    assert three.hashes == (password_hash(T2), password_hash(T3))
    assert auth_token.modify(three, T3, "ROTATE", transit=TLS) == three  # the newest again: no change
    done = auth_token.modify(three, T3, "SET", transit=TLS)
    assert done == TokenState(hashes=(password_hash(T3),), open_access=False)


def test_rotating_from_no_token_keeps_unauthenticated_access_until_set() -> None:
    opening = auth_token.modify(NO_TOKEN, T1, "ROTATE", transit=TLS)
    assert opening == TokenState(hashes=(password_hash(T1),), open_access=True)
    assert opening.enabled
    assert opening.rotating
    closed = auth_token.modify(opening, T1, "SET", transit=TLS)
    assert closed == TokenState(hashes=(password_hash(T1),), open_access=False)
    # A second ROTATE before SET drops the "no token" side: the two newest are T1 and T2.
    assert auth_token.modify(opening, T2, "ROTATE", transit=TLS).open_access is False


def test_set_refused_without_a_pending_rotation_or_with_another_token() -> None:
    one = auth_token.initial_state(T1, transit=TLS)
    assert "only allowed after a ROTATE" in _refused(
        InvalidParameterValue, T1, auth_token.modify, one, T1, "SET", transit=TLS
    )
    two = auth_token.modify(one, T2, "ROTATE", transit=TLS)
    assert "last ROTATE" in _refused(InvalidParameterValue, T1, auth_token.modify, two, T1, "SET", transit=TLS)
    _refused(InvalidParameterValue, T3, auth_token.modify, NO_TOKEN, T3, "SET", transit=TLS)


def test_delete_only_when_moving_to_a_user_group() -> None:
    one = auth_token.initial_state(T1, transit=TLS)
    assert "migrating to RBAC" in _refused(
        InvalidParameterCombination, T1, auth_token.modify, one, None, "DELETE", transit=TLS
    )
    migrating = {"transit": TLS, "user_groups_added": True}
    _refused(InvalidParameterCombination, T2, auth_token.modify, one, T2, "DELETE", **migrating)
    _refused(InvalidParameterValue, T1, auth_token.modify, NO_TOKEN, None, "DELETE", **migrating)
    assert auth_token.modify(one, None, "DELETE", transit=TLS, user_groups_added=True) == NO_TOKEN


def test_strategy_and_token_are_checked() -> None:
    one = auth_token.initial_state(T1, transit=TLS)
    message = _refused(InvalidParameterValue, T2, auth_token.modify, one, T2, "SWAP", transit=TLS)
    assert "ROTATE, SET, DELETE" in message
    message = _refused(InvalidParameterValue, T1, auth_token.modify, one, None, "SET", transit=TLS)
    assert "AuthToken is required" in message
    assert auth_token.modify(one, None, None, transit=TLS) == one
    # On modify the looser character set applies; the length rule still holds.
    assert auth_token.modify(one, "modify*token*0123456", "ROTATE", transit=TLS).rotating
    _refused(InvalidParameterValue, "short", auth_token.modify, one, "short", "ROTATE", transit=TLS)
    # No token on a group without TLS, or in preferred mode.
    _refused(InvalidParameterCombination, T2, auth_token.modify, NO_TOKEN, T2, "ROTATE", transit=transit.OFF)
    _refused(InvalidParameterCombination, T2, auth_token.modify, NO_TOKEN, T2, "ROTATE", transit=PREFERRED)


def test_the_state_itself_refuses_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="at most two"):
        TokenState(hashes=("a", "b", "c"), open_access=False)
    with pytest.raises(ValueError, match="open"):
        TokenState(hashes=(), open_access=False)
