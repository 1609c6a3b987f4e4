"""The one writer of statuses: every status a resource shows is written here, checked against its table.

Four ways in, one rule (the kind's ``model.lifecycle`` table):

- ``create``: a new resource, in the first status of its lifecycle.
- ``change``: an immediate transition by event. ElastiCache answers ``deleting``, ``modifying``,
  ``snapshotting`` at once, so a Describe right after the call must show it: the API (and the
  snapshot scheduler) read, fire and write in one transaction. A status in which no row lets the
  event fire is the kind's InvalidState fault: some other change won the race since the caller
  looked. ``change_from`` fires only from one given status (a snapshot shows ``copying`` only when
  it was ``available``).
- ``write``: a status the reconciler computed. Its lifecycle value either stays (the other fields,
  ports or roles, may change freely) or moves along a row, whose event is logged; anything else is
  a bug: logged as an error and refused, the stored status kept. The statuses of a cluster's nodes
  are checked the same way against the node table.
- ``record``: a reconcile pass's statuses, written in one transaction only if no spec the pass read
  has moved on since (its generation): a status computed from an older spec is stale and would undo
  what the API has just written (a ``deleting`` or ``modifying``).

``Store.write_status`` is called from nowhere else (tests/unit/test_status_writer.py checks it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any, TypeVar

from cachefleet.model.lifecycle import Event, InvalidTransition, Lifecycle, refusal
from cachefleet.store.kinds import KINDS, RecordKind, Stored
from cachefleet.store.sqlite import Record, Store

log = logging.getLogger(__name__)

ResourceKey = tuple[str, str]  # (kind name, resource id)
SpecT = TypeVar("SpecT", bound=Stored)
StatusT = TypeVar("StatusT", bound=Stored)


def create(
    store: Store, kind: RecordKind[SpecT, StatusT], resource_id: str, spec: SpecT, status: StatusT | None = None
) -> bool:
    """Insert a new resource in its first status (``status`` carries extra fields); False when the id is taken."""
    initial = status if status is not None else kind.new_status()
    if kind.lifecycle is not None:
        kind.lifecycle.event_between(None, _state(initial))  # a bug if the table does not start there
    return store.create(kind.name, kind.key(resource_id), spec.to_json(), initial.to_json())


def change(store: Store, kind: RecordKind[Any, StatusT], resource_id: str, event: Event, **fields: Any) -> StatusT:
    """Fire ``event`` on the resource now (its other status fields set from ``fields``)."""
    lifecycle = _lifecycle(kind)
    with store.transaction():
        current = kind.get(store, resource_id).status
        state = _state(current)
        try:
            target = lifecycle.fire(state, event)
        except InvalidTransition:
            log.info("%s %s: %s refused in status %s", kind.name, resource_id, event, state)
            raise refusal(lifecycle, resource_id, state) from None
        changed: StatusT = replace(current, status=target, **fields)  # type: ignore[type-var]
        store.write_status(kind.name, kind.key(resource_id), changed.to_json())
    return changed


def change_from(
    store: Store, kind: RecordKind[Any, Any], resource_id: str, source: StrEnum, event: Event, **fields: Any
) -> bool:
    """Fire ``event`` if the resource is in status ``source``; otherwise leave its status as it is."""
    with store.transaction():
        found = kind.find(store, resource_id)
        if found is None or _state(found.status) != source:
            return False
        change(store, kind, resource_id, event, **fields)
    return True


def write(store: Store, kind: RecordKind[Any, StatusT], resource_id: str, status: StatusT) -> bool:
    """Write a status the reconciler computed; False (logged) when the resource is gone or the table refuses it."""
    with store.transaction():
        record = store.get(kind.name, kind.key(resource_id))
        return record is not None and _write(store, kind, record, status)


def record(
    store: Store,
    statuses: Mapping[ResourceKey, Stored],
    generations: Mapping[ResourceKey, int],
    kinds: Mapping[str, RecordKind[Any, Any]] = KINDS,
) -> bool:
    """Write a pass's statuses in one transaction, unless a spec it read moved on (False then, nothing written).

    A status refused by its table is left out (and logged); the others are written. ``kinds`` names
    the record kind of each key (the reconciler passes those of the kinds registered with it).
    """
    with store.transaction():
        records = {key: store.get(*key) for key in {*generations, *statuses}}
        for key, generation in generations.items():
            found = records[key]
            if found is None or found.generation != generation:
                return False
        for key, status in statuses.items():
            found = records[key]
            if found is not None:
                _write(store, kinds[key[0]], found, status)
    return True


def _write(store: Store, kind: RecordKind[Any, Any], stored: Record, status: Stored) -> bool:
    current = kind.read_status(stored.status)
    if current == status:
        return True
    problem = _check(kind, current, status)
    if problem is not None:
        log.error("refused status write for %s %s: %s", kind.name, stored.id, problem)
        return False
    store.write_status(kind.name, stored.id, status.to_json())
    return True


def _check(kind: RecordKind[Any, Any], current: Any, new: Any) -> str | None:
    """Why the table refuses ``current`` -> ``new``, or None; moves along rows are logged."""
    if kind.lifecycle is not None:
        problem = _moves(kind.lifecycle, _state(current), _state(new), kind.name)
        if problem is not None:
            return problem
    if kind.parts is not None and kind.parts_lifecycle is not None:
        before = kind.parts(current)
        for part, state in kind.parts(new).items():
            problem = _moves(kind.parts_lifecycle, before.get(part), state, f"{kind.parts_lifecycle.kind} {part}")
            if problem is not None:
                return problem
    return None


def _moves(lifecycle: Lifecycle[Any], source: StrEnum | None, target: StrEnum, what: str) -> str | None:
    if source == target:
        return None
    try:
        event = lifecycle.event_between(source, target)
    except InvalidTransition as exc:
        return str(exc)
    log.debug("%s: %s -[%s]-> %s", what, source, event, target)
    return None


def _lifecycle(kind: RecordKind[Any, Any]) -> Lifecycle[Any]:
    if kind.lifecycle is None:
        raise ValueError(f"{kind.name} has no lifecycle")
    return kind.lifecycle


def _state(status: Any) -> StrEnum:
    state = status.status
    assert isinstance(state, StrEnum)
    return state
