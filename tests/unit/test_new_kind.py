"""A new kind is one registration per layer: the worked example of docs/architecture.md ("Adding a kind").

ACL users, as the next wave brings them: statuses ``active``, ``modifying``, ``deleting`` (a table),
a ``RecordKind`` for typed access, and a ``PlannedKind`` whose plan the loop executes and records,
without a line of the loop, the writer or the other kinds changed. An IAM identity, stored but not
reconciled, is a ``RecordKind`` alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Self

import pytest
from tests.support.fakes import Fleet

from cachefleet.control.actions import Plan
from cachefleet.control.kinds.base import Generations, PlannedKind
from cachefleet.control.loop import Reconciler
from cachefleet.control.queue import KeyedQueue
from cachefleet.model.errors import InvalidState, NotFound
from cachefleet.model.lifecycle import Event, Lifecycle
from cachefleet.model.status import NoStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import RecordKind, Resource
from cachefleet.store.sqlite import Store

# -- model: the spec, the status and its table -----------------------------------------------------


@dataclass(frozen=True)
class UserSpec:
    id: str
    access_string: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


class UserState(StrEnum):
    ACTIVE = "active"
    MODIFYING = "modifying"
    DELETING = "deleting"


@dataclass(frozen=True)
class UserStatus:
    status: UserState
    applied: str = ""  # the access string the engines have

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(UserState(data["status"]), data.get("applied", ""))


# Named apart from the real user kind (control/kinds/users.py), which the fleet already runs.
USER = Lifecycle(
    "example-user",
    "User",
    UserState,
    [
        (None, Event.CREATE, UserState.ACTIVE),
        (UserState.ACTIVE, Event.MODIFY, UserState.MODIFYING),
        (UserState.MODIFYING, Event.READY, UserState.ACTIVE),
        (UserState.ACTIVE, Event.DELETE, UserState.DELETING),
    ],
    InvalidState,
)

# -- store: one RecordKind -------------------------------------------------------------------------

USERS = RecordKind(
    "example-user",
    UserSpec.from_json,
    UserStatus.from_json,
    lambda: UserStatus(UserState.ACTIVE),
    lambda i: NotFound(f"User {i} not found."),
    USER,
)
IDENTITIES = RecordKind(
    "iam-user", UserSpec.from_json, NoStatus.from_json, NoStatus, lambda i: NotFound(f"Identity {i} not found.")
)

# -- control: one PlannedKind ------------------------------------------------------------------------


@dataclass(frozen=True)
class UserLoad:
    user: Resource[UserSpec, UserStatus]
    generations: Generations


class UserKind(PlannedKind[UserLoad, str]):
    records = USERS

    def __init__(self, store: Store) -> None:
        self._store = store

    def load(self, resource_id: str) -> UserLoad | Plan | None:
        user = USERS.find(self._store, resource_id)
        return UserLoad(user, {(USERS.name, user.spec.id): user.generation}) if user else None

    async def observe(self, loaded: UserLoad) -> str:
        return loaded.user.status.applied  # the real one asks the engines (ACL GETUSER)

    def plan(self, loaded: UserLoad, observed: str) -> Plan:
        user = loaded.user
        done = replace(user.status, status=UserState.ACTIVE, applied=user.spec.access_string)
        return Plan(statuses={(USERS.name, user.spec.id): done}, converged=True)


def test_a_reconciled_kind_is_one_table_one_record_kind_and_one_registration() -> None:
    fleet = Fleet()
    store = fleet.store
    assert statuses.create(store, USERS, "alice", UserSpec("alice", "on ~* +@read"))
    USERS.put_spec(store, "alice", UserSpec("alice", "on ~* +@all"))
    statuses.change(store, USERS, "alice", Event.MODIFY)  # what the API answers at once
    with pytest.raises(InvalidState):
        statuses.change(store, USERS, "alice", Event.DELETE)  # not while modifying

    loop = Reconciler(
        store=store,
        executor=_NoEffects(),
        kinds=[*fleet.kinds.values(), UserKind(store)],
        queue=KeyedQueue(),
        clock=lambda: fleet.clock,
        resync_interval=1.0,
    )
    assert asyncio.run(loop.reconcile((USERS.name, "alice"))) is None
    assert USERS.get(store, "alice").status == UserStatus(UserState.ACTIVE, "on ~* +@all")


def test_a_stored_kind_is_one_record_kind() -> None:
    store = Store(":memory:")
    assert statuses.create(store, IDENTITIES, "Bob", UserSpec("bob", ""))
    assert [i.spec.id for i in IDENTITIES.all(store)] == ["bob"]
    assert IDENTITIES.get(store, "BOB").status == NoStatus()
    with pytest.raises(NotFound):
        IDENTITIES.get(store, "carol")


class _NoEffects:
    async def run(self, actions: object) -> None:
        raise AssertionError("a user's plan has no actions here")
