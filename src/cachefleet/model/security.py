"""A replication group's (or standalone Redis cluster's) access control and TLS, as one desired value.

``Security`` is what the API stores in the spec: the TLS setting (``model.transit``), the AUTH token
state (``model.auth_token``: SHA-256 hashes only, never a token), the user group (RBAC), and a
``version`` that every change through the API bumps. The reconciler records the version it has
carried out on every node (``GroupStatus.security_done``); until then Describe shows the change in
``PendingModifiedValues``.

``at_creation`` and ``modified`` hold AWS's rules across the three: one user group per group, a
user group and an AUTH token exclusive (a token is dropped with ``DELETE`` in the call that adds a
user group), access control only with TLS ``required``, the user group's engine the group's own.
Each returns the new value or raises the error a boto3 user expects, changing nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from cachefleet.model import auth_token, transit
from cachefleet.model.auth_token import NO_TOKEN, Strategy, TokenState
from cachefleet.model.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidUserGroupState,
    UserGroupNotFound,
)
from cachefleet.model.transit import OFF, Transit, TransitMode

MAX_USER_GROUPS = 1  # a cluster-mode-disabled group takes one user group


class TokenUpdate(StrEnum):
    """``PendingModifiedValues.AuthTokenStatus`` while a token change reaches the nodes."""

    SETTING = "SETTING"
    ROTATING = "ROTATING"


@dataclass(frozen=True)
class Security:
    transit: Transit = OFF
    tokens: TokenState = NO_TOKEN
    token_modified_at: datetime | None = None  # AuthTokenLastModifiedDate
    token_update: TokenUpdate | None = None  # the last token change, shown while it is carried out
    user_group_ids: tuple[str, ...] = ()
    version: int = 0  # bumped by every change; the status records the version the nodes have
    token_version: int = 0  # the version of the last token change (``token_update`` is pending until then)

    @property
    def access_control(self) -> bool:
        """An AUTH token or a user group decides who gets in (no unauthenticated client then)."""
        return self.tokens.enabled or bool(self.user_group_ids)

    @property
    def tls(self) -> bool:
        return self.transit.enabled

    @property
    def mode_text(self) -> str:
        """The TLS mode as stored in statuses: ``preferred``, ``required``, or empty without TLS."""
        return self.transit.mode.value if self.transit.mode is not None else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "transit": self.mode_text,
            "token_hashes": list(self.tokens.hashes),
            "token_open_access": self.tokens.open_access,
            "token_modified_at": self.token_modified_at.isoformat() if self.token_modified_at else None,
            "token_update": self.token_update.value if self.token_update else None,
            "user_group_ids": list(self.user_group_ids),
            "version": self.version,
            "token_version": self.token_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Self:
        """Records written before security existed have none: no TLS, no token, no user group."""
        if not data:
            return cls()
        modified = data.get("token_modified_at")
        update = data.get("token_update")
        return cls(
            transit=transit_from_text(data.get("transit", "")),
            tokens=TokenState(tuple(data.get("token_hashes", ())), bool(data.get("token_open_access", True))),
            token_modified_at=datetime.fromisoformat(modified) if modified else None,
            token_update=TokenUpdate(update) if update else None,
            user_group_ids=tuple(data.get("user_group_ids", ())),
            version=int(data.get("version", 0)),
            token_version=int(data.get("token_version", 0)),
        )


NONE = Security()


def transit_from_text(text: str) -> Transit:
    return Transit(True, TransitMode(text)) if text else OFF


@dataclass(frozen=True)
class Request:
    """The security members of one Create/Modify call, as given (the token still plain here)."""

    transit_enabled: bool | None = None
    transit_mode: str | None = None
    auth_token: str | None = None
    strategy: str | None = None
    user_group_ids: Sequence[str] | None = None  # CreateReplicationGroup UserGroupIds
    to_add: Sequence[str] = ()
    to_remove: Sequence[str] = ()
    remove_all: bool = False

    @property
    def given(self) -> bool:
        return (
            self.transit_enabled is not None
            or self.transit_mode is not None
            or self.auth_token is not None
            or self.strategy is not None
            or self.user_group_ids is not None
            or bool(self.to_add or self.to_remove or self.remove_all)
        )

    def __repr__(self) -> str:  # never the token, not even in a traceback
        return f"Request(transit={self.transit_enabled}/{self.transit_mode}, token=<hidden>, groups={self.to_add})"


def at_creation(
    request: Request,
    *,
    engine: str,
    user_groups: Mapping[str, str],
    deleting: Collection[str] = (),
    now: datetime,
) -> Security:
    """The security of a new group or standalone cluster (``CreateReplicationGroup``,
    ``CreateCacheCluster``). ``user_groups`` holds the engine of every user group by id,
    ``deleting`` the ids of those being deleted."""
    chosen = transit.at_creation(request.transit_enabled, request.transit_mode)
    ids = _check_ids(request.user_group_ids or (), "UserGroupIds")
    if len(ids) > MAX_USER_GROUPS:
        raise InvalidParameterValue("A replication group can be associated with one user group only.")
    if ids and request.auth_token is not None:
        raise InvalidParameterCombination(
            "AuthToken and UserGroupIds cannot be used together: a group uses either an AUTH token or RBAC."
        )
    if ids:
        _check_access_control_transit(chosen)
        _check_user_groups(ids, engine, user_groups, deleting)
    tokens = auth_token.initial_state(request.auth_token, transit=chosen)
    return Security(
        transit=chosen,
        tokens=tokens,
        token_modified_at=now if tokens.enabled else None,
        user_group_ids=ids,
    )


def modified(
    current: Security,
    request: Request,
    *,
    engine: str,
    user_groups: Mapping[str, str],
    deleting: Collection[str] = (),
    now: datetime,
) -> Security:
    """The security after ``ModifyReplicationGroup`` (or ``ModifyCacheCluster``, which sends tokens
    only); ``current`` unchanged when the call asks for nothing here."""
    if not request.given:
        return current
    if request.remove_all and request.to_add:
        raise InvalidParameterCombination("RemoveUserGroups cannot be combined with UserGroupIdsToAdd.")
    to_add = _check_ids(request.to_add, "UserGroupIdsToAdd")
    to_remove = _check_ids(request.to_remove, "UserGroupIdsToRemove")
    both = sorted(set(to_add) & set(to_remove))
    if both:
        raise InvalidParameterCombination(f"User group(s) {', '.join(both)} cannot be both added and removed.")
    absent = sorted(set(to_remove) - set(current.user_group_ids))
    if absent:
        raise InvalidParameterValue(f"User group(s) {', '.join(absent)} are not associated with this group.")
    already = sorted(set(to_add) & set(current.user_group_ids))
    if already:
        raise InvalidParameterValue(f"User group(s) {', '.join(already)} are already associated with this group.")
    groups = () if request.remove_all else tuple(g for g in current.user_group_ids if g not in to_remove)
    groups += to_add
    if len(groups) > MAX_USER_GROUPS:
        raise InvalidParameterValue("A replication group can be associated with one user group only.")
    if to_add:
        _check_user_groups(to_add, engine, user_groups, deleting)

    new_transit = transit.modified(
        current.transit,
        request.transit_enabled,
        request.transit_mode,
        access_control=current.access_control,
    )
    if groups and to_add:
        _check_access_control_transit(new_transit)
    tokens = auth_token.modify(
        current.tokens,
        request.auth_token,
        request.strategy,
        transit=new_transit,
        user_groups_added=bool(to_add),
        user_groups=bool(groups) and request.strategy != Strategy.DELETE,
    )
    if groups and tokens.enabled:
        raise InvalidParameterCombination(
            "A group with an AUTH token takes a user group only with AuthTokenUpdateStrategy DELETE in the same call."
        )
    changed = replace(current, transit=new_transit, tokens=tokens, user_group_ids=groups)
    if changed == current:
        return current
    version = current.version + 1
    changed = replace(changed, version=version)
    if tokens != current.tokens:
        strategy = auth_token.parse_strategy(request.strategy)
        update = TokenUpdate.ROTATING if strategy is Strategy.ROTATE else TokenUpdate.SETTING
        changed = replace(changed, token_modified_at=now, token_update=update, token_version=version)
    return changed


def pending(spec: Security, done: int, applied_mode: str, applied_groups: tuple[str, ...]) -> dict[str, object]:
    """Describe's ``PendingModifiedValues`` members for what the nodes do not run yet: the token
    change (``AuthTokenStatus``), the user groups to add and remove, the TLS setting."""
    if spec.version <= done:
        return {}
    shown: dict[str, object] = {}
    if spec.token_update is not None and spec.token_version > done:
        shown["AuthTokenStatus"] = spec.token_update.value
    if spec.user_group_ids != applied_groups:
        shown["UserGroups"] = {
            "UserGroupIdsToAdd": [g for g in spec.user_group_ids if g not in applied_groups],
            "UserGroupIdsToRemove": [g for g in applied_groups if g not in spec.user_group_ids],
        }
    if spec.mode_text != applied_mode:
        shown["TransitEncryptionEnabled"] = spec.tls
        if spec.tls:
            shown["TransitEncryptionMode"] = spec.mode_text
    return shown


def _check_ids(ids: Sequence[str], what: str) -> tuple[str, ...]:
    lowered = tuple(i.lower() for i in ids)
    if len(set(lowered)) != len(lowered):
        raise InvalidParameterValue(f"A user group id is listed twice in {what}.")
    return lowered


def _check_access_control_transit(chosen: Transit) -> None:
    if not chosen.enabled:
        raise InvalidParameterCombination("User groups are only supported when encryption-in-transit is enabled.")
    if chosen.mode is TransitMode.PREFERRED:
        raise InvalidParameterCombination("Transit encryption preferred is not supported with redis access control.")


def _check_user_groups(
    ids: Sequence[str], engine: str, user_groups: Mapping[str, str], deleting: Collection[str]
) -> None:
    for group_id in ids:
        group_engine = user_groups.get(group_id)
        if group_engine is None:
            raise UserGroupNotFound(f"User group {group_id} not found.")
        if group_id in deleting:
            raise InvalidUserGroupState(f"User group {group_id} is being deleted.")
        if group_engine != engine:
            raise InvalidParameterCombination(
                f"User group {group_id} is for the {group_engine} engine; this group runs {engine}."
            )
