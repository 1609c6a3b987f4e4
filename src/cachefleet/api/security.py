"""The security members of Create/Modify calls, read once for every handler that takes them.

The rules are ``model.security`` (with ``model.auth_token`` and ``model.transit``); this reads the
members into a ``Request`` and gives the model what it checks user groups against. A token exists
here only inside the request: the model hashes it and the spec keeps the hash.
"""

from __future__ import annotations

from typing import Any

from cachefleet.model.errors import InvalidParameterCombination
from cachefleet.model.security import Request, Security
from cachefleet.model.status import UserGroupState
from cachefleet.store.kinds import GROUPS, USER_GROUPS
from cachefleet.store.sqlite import Store


def request(params: dict[str, Any]) -> Request:
    return Request(
        transit_enabled=params.get("TransitEncryptionEnabled"),
        transit_mode=params.get("TransitEncryptionMode"),
        auth_token=params.get("AuthToken"),
        strategy=params.get("AuthTokenUpdateStrategy"),
        user_group_ids=params.get("UserGroupIds"),
        to_add=tuple(params.get("UserGroupIdsToAdd", ())),
        to_remove=tuple(params.get("UserGroupIdsToRemove", ())),
        remove_all=bool(params.get("RemoveUserGroups", False)),
    )


def user_group_engines(store: Store) -> dict[str, str]:
    """Every user group's engine, by id (what ``model.security`` checks associations against)."""
    return {g.spec.user_group_id: g.spec.engine for g in USER_GROUPS.all(store)}


def user_groups_deleting(store: Store) -> frozenset[str]:
    return frozenset(g.spec.user_group_id for g in USER_GROUPS.all(store) if g.status.status is UserGroupState.DELETING)


def groups_using(store: Store, user_group_id: str) -> list[str]:
    """The replication groups associated with a user group (what DeleteUserGroup refuses, and
    DescribeUserGroups lists)."""
    return sorted(g.spec.id for g in GROUPS.all(store) if user_group_id in g.spec.security.user_group_ids)


def same_as_primary(wanted: Security, primary: Security, cluster_id: str) -> None:
    """A group built on an existing cluster (``PrimaryClusterId``) keeps that node's TLS and token."""
    if (wanted.transit, wanted.tokens.hashes, wanted.user_group_ids) != (
        primary.transit,
        primary.tokens.hashes,
        primary.user_group_ids,
    ):
        raise InvalidParameterCombination(
            f"TransitEncryptionEnabled, AuthToken and UserGroupIds must agree with the primary cluster {cluster_id} "
            "(PrimaryClusterId)."
        )
