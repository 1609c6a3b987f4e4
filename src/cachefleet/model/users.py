"""RBAC users and user groups (``CreateUser``, ``CreateUserGroup``, ...): AWS's rules as pure functions.

A ``User`` keeps the SHA-256 of each password, never a password. Every function here either returns
the new value or raises the AWS error a boto3 user expects, with a message that names no secret.

The built-in ``default`` user (``UserId`` = ``UserName`` = ``default``, ``on ~* +@all``, no
password) exists in every installation and can be neither modified nor deleted; to lock a cache
down, a customer creates another user whose ``UserName`` is ``default`` and puts it in the group.
Every user group needs a member named ``default``: that is who a client that never authenticates
becomes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Self

from cachefleet.model.acl import CommandCatalog, parse_access_string, password_hash
from cachefleet.model.errors import (
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
from cachefleet.model.specs import Tags

DEFAULT_USER_ID = "default"
DEFAULT_USER_NAME = "default"
DEFAULT_ACCESS_STRING = "on ~* +@all"
MINIMUM_ENGINE_VERSION = "6.0"
MAX_PASSWORDS = 2
PASSWORD_MIN, PASSWORD_MAX = 16, 128
PASSWORD_FORBIDDEN = frozenset(',"/@')
USER_QUOTA = 1000
USER_GROUP_QUOTA = 100
USERS_PER_GROUP = 100
ENGINES = ("redis", "valkey")
# Names of the product's own ACL users (``engines.acl``): a customer user may never take one.
RESERVED_NAME_PREFIX = "cachefleet-"

_ID = re.compile(r"[a-z][a-z0-9-]*")
_ID_MAX = 40
# Redis takes any name without spaces; quotes and backslashes would need escaping in redis.conf.
_USER_NAME = re.compile(r"[!#-\[\]-~]{1,128}")


class AuthenticationType(StrEnum):
    """``Authentication.Type`` in answers (the input's ``no-password-required`` reads ``no-password``)."""

    PASSWORD = "password"
    NO_PASSWORD = "no-password"
    IAM = "iam"


@dataclass(frozen=True)
class User:
    """A user's desired state (the ``user`` kind's spec); its status lives apart (``model.status``)."""

    user_id: str
    user_name: str
    engine: str
    access_string: str
    password_hashes: tuple[str, ...] = ()
    authentication: AuthenticationType = AuthenticationType.NO_PASSWORD
    tags: Tags = ()

    @property
    def id(self) -> str:
        return self.user_id

    @property
    def enabled(self) -> bool:
        """``on`` wins when it comes last (the access string was checked when the user was made)."""
        return parse_access_string(self.access_string).enabled

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
                **data,
                "password_hashes": tuple(data["password_hashes"]),
                "authentication": AuthenticationType(data["authentication"]),
                "tags": tuple(tuple(t) for t in data.get("tags", ())),
            }
        )


@dataclass(frozen=True)
class UserGroup:
    """A user group's desired state (the ``user-group`` kind's spec)."""

    user_group_id: str
    engine: str
    user_ids: tuple[str, ...]
    tags: Tags = ()

    @property
    def id(self) -> str:
        return self.user_group_id

    def with_tags(self, tags: Tags) -> Self:
        return replace(self, tags=tags)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{**data, "user_ids": tuple(data["user_ids"]), "tags": tuple(tuple(t) for t in data.get("tags", ()))}
        )


DEFAULT_USER = User(
    user_id=DEFAULT_USER_ID,
    user_name=DEFAULT_USER_NAME,
    engine="redis",
    access_string=DEFAULT_ACCESS_STRING,
)


@dataclass(frozen=True)
class Credentials:
    """How a user authenticates, from the request: ``Passwords``/``NoPasswordRequired`` or
    ``AuthenticationMode {Type, Passwords}``. Passwords are plain here, and hashed by ``hashed``."""

    passwords: tuple[str, ...] | None = None
    no_password_required: bool | None = None
    mode_type: str | None = None
    mode_passwords: tuple[str, ...] | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.passwords, self.no_password_required, self.mode_type))


# -- identifiers ---------------------------------------------------------------------------------


def check_id(value: str, what: str) -> str:
    """A ``UserId`` or ``UserGroupId``: stored lower case; a letter first, then letters, digits and
    single hyphens, at most 40 characters, not ending in a hyphen."""
    lowered = value.lower()
    if not (_ID.fullmatch(lowered) and len(lowered) <= _ID_MAX and "--" not in lowered and not lowered.endswith("-")):
        raise InvalidParameterValue(
            f"The parameter {what} is not a valid identifier. Identifiers must begin with a letter; must contain "
            "only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive "
            f"hyphens. Length is at most {_ID_MAX} characters."
        )
    return lowered


def check_user_name(name: str) -> str:
    if not _USER_NAME.fullmatch(name):
        raise InvalidParameterValue(
            "The parameter UserName must be 1 to 128 printable ASCII characters, without spaces, quotes or backslashes."
        )
    if name.lower().startswith(RESERVED_NAME_PREFIX):
        raise InvalidParameterValue(f"User names starting with '{RESERVED_NAME_PREFIX}' are reserved.")
    return name


def check_engine(engine: str, installed: Collection[str] = ENGINES) -> str:
    lowered = engine.lower()
    if lowered not in ENGINES or lowered not in installed:
        raise InvalidParameterValue(f"Engine {engine!r} is not supported for users: use one of {', '.join(installed)}.")
    return lowered


# -- passwords -----------------------------------------------------------------------------------


def check_password(password: str) -> None:
    """16-128 printable ASCII characters, without spaces and without ``, " / @``. The message never
    repeats the password."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidParameterValue(f"Passwords must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long.")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in password):
        raise InvalidParameterValue("Passwords must consist of printable ASCII characters, without spaces.")
    if any(c in PASSWORD_FORBIDDEN for c in password):
        raise InvalidParameterValue('Passwords must not contain the characters , " / or @.')


def hashed(credentials: Credentials) -> tuple[AuthenticationType, tuple[str, ...]]:
    """The authentication type and password hashes the request asks for; AWS's errors otherwise."""
    mode = credentials.mode_type
    if mode is not None and (credentials.passwords is not None or credentials.no_password_required is not None):
        raise InvalidParameterCombination("AuthenticationMode cannot be combined with Passwords or NoPasswordRequired.")
    if mode is not None:
        if mode == "iam":
            if credentials.mode_passwords:
                raise InvalidParameterCombination("Passwords cannot be given with AuthenticationMode Type iam.")
            return AuthenticationType.IAM, ()
        if mode == "no-password-required":
            if credentials.mode_passwords:
                raise InvalidParameterCombination(
                    "Passwords cannot be given with AuthenticationMode Type no-password-required."
                )
            return AuthenticationType.NO_PASSWORD, ()
        if mode != "password":
            raise InvalidParameterValue(
                f"Invalid AuthenticationMode Type {mode!r}: expected password, no-password-required or iam."
            )
        if not credentials.mode_passwords:
            raise InvalidParameterValue("AuthenticationMode Type password needs at least one password.")
        return AuthenticationType.PASSWORD, _hashes(credentials.mode_passwords)
    if credentials.no_password_required:
        if credentials.passwords:
            raise InvalidParameterCombination("Passwords cannot be given when NoPasswordRequired is true.")
        return AuthenticationType.NO_PASSWORD, ()
    if not credentials.passwords:
        raise InvalidParameterValue(
            "No password was given. To make a user without a password, set NoPasswordRequired to true."
        )
    return AuthenticationType.PASSWORD, _hashes(credentials.passwords)


def _hashes(passwords: Sequence[str]) -> tuple[str, ...]:
    if len(passwords) > MAX_PASSWORDS:
        raise InvalidParameterValue(f"A user can have at most {MAX_PASSWORDS} passwords.")
    for password in passwords:
        check_password(password)
    return tuple(dict.fromkeys(password_hash(p) for p in passwords))


# -- users -----------------------------------------------------------------------------------------


def new_user(
    *,
    user_id: str,
    user_name: str,
    engine: str,
    access_string: str,
    credentials: Credentials,
    existing: Mapping[str, User],
    catalog: CommandCatalog | None = None,
    installed: Collection[str] = ENGINES,
    tags: Tags = (),
) -> User:
    """A user for ``CreateUser``; ``existing`` holds every user by id (the built-in ``default`` too)."""
    uid = check_id(user_id, "UserId")
    if uid in existing or uid == DEFAULT_USER_ID:
        raise UserAlreadyExists(f"User {uid} already exists.")
    if len(existing) >= USER_QUOTA:
        raise UserQuotaExceeded(f"The quota of {USER_QUOTA} users is reached.")
    name = check_user_name(user_name)
    parse_access_string(access_string, catalog)
    kind, hashes = hashed(credentials)
    _check_iam_name(kind, uid, name)
    return User(
        user_id=uid,
        user_name=name,
        engine=check_engine(engine, installed),
        access_string=access_string,
        password_hashes=hashes,
        authentication=kind,
        tags=tags,
    )


def modified_user(
    user: User,
    *,
    access_string: str | None = None,
    append_access_string: str | None = None,
    credentials: Credentials = Credentials(),
    engine: str | None = None,
    catalog: CommandCatalog | None = None,
    installed: Collection[str] = ENGINES,
) -> User:
    """The user after ``ModifyUser``. New passwords replace the old ones (connections made with an
    old one stay open, as on ElastiCache). Whether its status allows a change is the lifecycle's
    rule (``model.lifecycle``)."""
    check_modifiable(user.user_id)
    if access_string is not None and append_access_string is not None:
        raise InvalidParameterCombination("AccessString and AppendAccessString cannot be given together.")
    if not (access_string is not None or append_access_string is not None or credentials.given or engine):
        raise InvalidParameterValue("No modification was requested.")
    changed = user
    if access_string is not None:
        parse_access_string(access_string, catalog)
        changed = replace(changed, access_string=access_string)
    if append_access_string is not None:
        combined = f"{user.access_string} {append_access_string}"
        parse_access_string(append_access_string, catalog)
        parse_access_string(combined, catalog)
        changed = replace(changed, access_string=combined)
    if credentials.given:
        kind, hashes = hashed(credentials)
        _check_iam_name(kind, user.user_id, user.user_name)
        changed = replace(changed, authentication=kind, password_hashes=hashes)
    if engine is not None:
        changed = replace(changed, engine=check_engine(engine, installed))
    return changed


def _check_iam_name(kind: AuthenticationType, user_id: str, user_name: str) -> None:
    # IAM tokens name the user by its id, and Redis's AUTH by its name: ElastiCache requires both the same.
    if kind is AuthenticationType.IAM and user_id != user_name:
        raise InvalidParameterValue("UserName and UserId must be the same for a user with AuthenticationMode Type iam.")


def check_modifiable(user_id: str) -> None:
    if user_id == DEFAULT_USER_ID:
        raise InvalidParameterValue("The built-in default user cannot be modified.")


def check_user_deletable(user: User, groups: Collection[UserGroup]) -> None:
    """``DeleteUser``: never the built-in default user; a user named ``default`` not while a group
    counts on it (the group would be left without one)."""
    if user.user_id == DEFAULT_USER_ID:
        raise InvalidParameterValue("The built-in default user cannot be deleted.")
    if user.user_name == DEFAULT_USER_NAME:
        holding = sorted(g.user_group_id for g in groups if user.user_id in g.user_ids)
        if holding:
            raise DefaultUserAssociatedToUserGroup(
                f"User {user.user_id} is the default user of user group(s) {', '.join(holding)}; "
                "replace it there first."
            )


# -- user groups ---------------------------------------------------------------------------------


def new_user_group(
    *,
    user_group_id: str,
    engine: str,
    user_ids: Sequence[str],
    users: Mapping[str, User],
    existing: Collection[str],
    installed: Collection[str] = ENGINES,
    deleting: Collection[str] = (),
    tags: Tags = (),
) -> UserGroup:
    """A group for ``CreateUserGroup``; ``users`` holds every user by id, ``existing`` every group id,
    ``deleting`` the users being deleted (they join no group)."""
    gid = check_id(user_group_id, "UserGroupId")
    if gid in existing:
        raise UserGroupAlreadyExists(f"User group {gid} already exists.")
    if len(existing) >= USER_GROUP_QUOTA:
        raise UserGroupQuotaExceeded(f"The quota of {USER_GROUP_QUOTA} user groups is reached.")
    kind = check_engine(engine, installed)
    members = _members(user_ids, users, kind, deleting)
    _check_membership(members)
    return UserGroup(user_group_id=gid, engine=kind, user_ids=tuple(u.user_id for u in members), tags=tags)


def modified_user_group(
    group: UserGroup,
    *,
    to_add: Sequence[str] = (),
    to_remove: Sequence[str] = (),
    users: Mapping[str, User],
    deleting: Collection[str] = (),
) -> UserGroup:
    """The group after ``ModifyUserGroup UserIdsToAdd/UserIdsToRemove`` (its status is the lifecycle's
    business)."""
    if not to_add and not to_remove:
        raise InvalidParameterValue("No modification was requested: give UserIdsToAdd or UserIdsToRemove.")
    adding = [u.user_id for u in _members(to_add, users, group.engine, deleting)]
    removing = [check_id(u, "UserIdsToRemove") for u in to_remove]
    both = sorted(set(adding) & set(removing))
    if both:
        raise InvalidParameterCombination(f"User(s) {', '.join(both)} cannot be both added and removed.")
    already = sorted(set(adding) & set(group.user_ids))
    if already:
        raise InvalidParameterValue(f"User(s) {', '.join(already)} already belong to user group {group.user_group_id}.")
    absent = sorted(set(removing) - set(group.user_ids))
    if absent:
        raise InvalidParameterValue(f"User(s) {', '.join(absent)} do not belong to user group {group.user_group_id}.")
    remaining = [u for u in group.user_ids if u not in removing] + adding
    _check_membership([_lookup(u, users) for u in remaining])
    return replace(group, user_ids=tuple(remaining))


def check_user_group_deletable(group: UserGroup, replication_groups: Collection[str]) -> None:
    if replication_groups:
        raise InvalidUserGroupState(
            f"User group {group.user_group_id} is associated with replication group(s) "
            f"{', '.join(sorted(replication_groups))}; remove it from them first."
        )


def _members(user_ids: Sequence[str], users: Mapping[str, User], engine: str, deleting: Collection[str]) -> list[User]:
    ids = [check_id(u, "UserIds") for u in user_ids]
    if len(set(ids)) != len(ids):
        raise InvalidParameterValue("A user id is listed twice.")
    members = [_lookup(u, users) for u in ids]
    for member in members:
        # The built-in default user belongs to every engine's groups.
        if member.engine != engine and member.user_id != DEFAULT_USER_ID:
            raise InvalidParameterValue(
                f"User {member.user_id} is a {member.engine} user; the user group's engine is {engine}."
            )
        if member.user_id in deleting:
            raise InvalidUserState(f"User {member.user_id} is being deleted.")
    return members


def _lookup(user_id: str, users: Mapping[str, User]) -> User:
    user = users.get(user_id)
    if user is None:
        raise UserNotFound(f"User {user_id} not found.")
    return user


def _check_membership(members: Sequence[User]) -> None:
    if len(members) > USERS_PER_GROUP:
        raise InvalidParameterValue(f"A user group holds at most {USERS_PER_GROUP} users.")
    names = [m.user_name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DuplicateUserName(f"User name(s) {', '.join(duplicates)} appear more than once in the user group.")
    if DEFAULT_USER_NAME not in names:
        raise DefaultUserRequired("A user group must contain a user named default.")
