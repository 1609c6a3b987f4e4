"""The AUTH token of a replication group or cache cluster: AWS's rules, and rotation as a pure state machine.

A token is never stored: only its SHA-256 (what Redis's ACLs take, ``#<hex>``) is kept, in
``TokenState``. The plain token lives in the request that carries it, long enough to check and hash.
Nothing here puts a token, or a part of one, into an error message.

Rotation (``ModifyReplicationGroup AuthToken=... AuthTokenUpdateStrategy=...``):

- ``ROTATE`` (the default) adds the new token and keeps the newest previous one, so clients can move
  over: at most two tokens are valid. Rotating a group that had no token keeps unauthenticated access
  open next to the new token (this is how AUTH is switched on for a running TLS group).
- ``SET`` ends a rotation: the token given must be the one last rotated in, and afterwards it is the
  only one. A ``SET`` with no rotation pending, or with another token, is refused.
- ``DELETE`` drops every token; only while moving the group to RBAC (user groups added in the same
  call), which is the one case AWS allows.
"""

from __future__ import annotations

import hmac
import string
from dataclasses import dataclass
from enum import StrEnum

from cachefleet.model.acl import password_hash
from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.model.transit import Transit, TransitMode

MIN_LENGTH = 16
MAX_LENGTH = 128
# Create-time documentation: letters, digits and only these specials.
CREATE_SPECIALS = frozenset("!&#$^<>-")
# Modify-time documentation: any printable character but these.
MODIFY_FORBIDDEN = frozenset('/"@%')
_ALNUM = frozenset(string.ascii_letters + string.digits)
INVALID = "Invalid AuthToken provided."


class Strategy(StrEnum):
    ROTATE = "ROTATE"
    SET = "SET"
    DELETE = "DELETE"


@dataclass(frozen=True)
class TokenState:
    """The tokens a group accepts: SHA-256 hex digests, oldest first (at most two), and whether
    clients without a token are still let in (before any token, or during a rotation from none)."""

    hashes: tuple[str, ...] = ()
    open_access: bool = True

    def __post_init__(self) -> None:
        if len(self.hashes) > 2:
            raise ValueError("at most two tokens are valid at once")
        if not self.hashes and not self.open_access:
            raise ValueError("a group without a token is open")

    @property
    def enabled(self) -> bool:
        """``AuthTokenEnabled`` in Describe answers."""
        return bool(self.hashes)

    @property
    def rotating(self) -> bool:
        """A rotation is pending: a ``SET`` would end it."""
        return len(self.hashes) == 2 or (bool(self.hashes) and self.open_access)


NO_TOKEN = TokenState()


def check_token(token: str, *, creating: bool) -> None:
    """AWS's rules for a token: 16-128 printable ASCII characters; at creation letters, digits and
    ``! & # $ ^ < > -`` only, on modification anything printable but ``/ " @ %``. Spaces are refused
    in both (not visible, and AWS's wording is "alphanumeric characters or symbols")."""
    if not MIN_LENGTH <= len(token) <= MAX_LENGTH:
        raise InvalidParameterValue(f"{INVALID} The token must be {MIN_LENGTH} to {MAX_LENGTH} characters long.")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in token):
        raise InvalidParameterValue(f"{INVALID} The token must consist of printable ASCII characters, without spaces.")
    if creating:
        if any(c not in _ALNUM and c not in CREATE_SPECIALS for c in token):
            raise InvalidParameterValue(
                f"{INVALID} Only letters, digits and the special characters ! & # $ ^ < > - are allowed."
            )
    elif any(c in MODIFY_FORBIDDEN for c in token):
        raise InvalidParameterValue(f'{INVALID} The characters / " @ and % are not allowed.')


def initial_state(
    token: str | None,
    *,
    transit: Transit,
    user_groups: bool = False,
) -> TokenState:
    """The token state of a new group or cluster (``CreateReplicationGroup``/``CreateCacheCluster``)."""
    if token is None:
        return NO_TOKEN
    _check_access_control(transit, user_groups)
    check_token(token, creating=True)
    return TokenState(hashes=(password_hash(token),), open_access=False)


def parse_strategy(value: str | None) -> Strategy:
    if value is None:
        return Strategy.ROTATE
    try:
        return Strategy(value)
    except ValueError:
        raise InvalidParameterValue(
            f"Invalid AuthTokenUpdateStrategy {value!r}: expected one of ROTATE, SET, DELETE."
        ) from None


def modify(
    state: TokenState,
    token: str | None,
    strategy: str | None,
    *,
    transit: Transit,
    user_groups_added: bool = False,
    user_groups: bool = False,
) -> TokenState:
    """The state after ``ModifyReplicationGroup`` (or ``ModifyCacheCluster``) with ``AuthToken`` and
    ``AuthTokenUpdateStrategy``; raises AWS's error (and changes nothing) when the call is refused.

    ``user_groups`` says the group already uses RBAC; ``user_groups_added`` that this call attaches
    a user group (the only time ``DELETE`` is allowed).
    """
    if token is None and strategy is None:
        return state
    chosen = parse_strategy(strategy)
    if chosen is Strategy.DELETE:
        if token is not None:
            raise InvalidParameterCombination("AuthToken cannot be given with AuthTokenUpdateStrategy DELETE.")
        if not state.enabled:
            raise InvalidParameterValue("The AUTH token cannot be deleted: none is set.")
        if not user_groups_added:
            raise InvalidParameterCombination(
                "AuthTokenUpdateStrategy DELETE is only supported when migrating to RBAC: "
                "add a user group (UserGroupIdsToAdd) in the same call."
            )
        return NO_TOKEN
    if token is None:
        raise InvalidParameterValue(f"AuthToken is required with AuthTokenUpdateStrategy {chosen}.")
    _check_access_control(transit, user_groups)
    check_token(token, creating=False)
    digest = password_hash(token)
    if chosen is Strategy.ROTATE:
        if state.hashes and hmac.compare_digest(state.hashes[-1], digest):
            return state  # the newest token again: nothing to rotate
        if state.hashes:
            return TokenState(hashes=(state.hashes[-1], digest), open_access=False)
        return TokenState(hashes=(digest,), open_access=True)
    # SET
    if not state.rotating:
        raise InvalidParameterValue(
            "AuthTokenUpdateStrategy SET is only allowed after a ROTATE: rotate to the new token first."
        )
    if not hmac.compare_digest(state.hashes[-1], digest):
        raise InvalidParameterValue(f"{INVALID} SET must name the token given with the last ROTATE.")
    return TokenState(hashes=(digest,), open_access=False)


def _check_access_control(transit: Transit, user_groups: bool) -> None:
    if not transit.enabled:
        raise InvalidParameterCombination("The AUTH token is only supported when encryption-in-transit is enabled.")
    if transit.mode is TransitMode.PREFERRED:
        raise InvalidParameterCombination("Transit encryption preferred is not supported with redis access control.")
    if user_groups:
        raise InvalidParameterCombination(
            "AuthToken cannot be used with user groups: a group uses either an AUTH token or RBAC."
        )
