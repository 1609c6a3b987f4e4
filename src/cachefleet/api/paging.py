"""Marker/MaxRecords paging shared by the Describe calls.

Stored resources and events are paged by position: a marker says where the next page starts (a
resource's ``seq``; an event's date and ``seq``), so each page is one indexed query that costs by
the page, and a resource created or deleted between two calls shifts nothing. The fixed lists
(engine versions, parameters, the default parameter groups) are paged by offset. Markers are
opaque to clients; each kind of list refuses the others' (InvalidParameterValue), as a malformed one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from cachefleet.model.errors import InvalidParameterValue
from cachefleet.store.kinds import RecordKind, Resource
from cachefleet.store.sqlite import Event, Filter, Store

T = TypeVar("T")
_OFFSET, _RESOURCE, _EVENT = "cf1", "cf2r", "cf2e"
MAX_MARKER = 512  # far above any marker this server writes; a longer one is refused before decoding
_MAX_SEQ = (1 << 63) - 1  # SQLite's largest integer


def max_records(params: dict[str, Any], *, default: int = 100, maximum: int = 100) -> int:
    limit = params.get("MaxRecords", default)
    if not 20 <= limit <= maximum:
        raise InvalidParameterValue(f"The parameter MaxRecords must be between 20 and {maximum}.")
    return int(limit)


# Stored resources, in creation order.


def resources(
    kind: RecordKind[Any, Any],
    store: Store,
    params: dict[str, Any],
    *,
    where: Filter = (),
    default: int = 100,
    maximum: int = 100,
) -> tuple[list[Resource[Any, Any]], str | None]:
    """The page of ``kind`` that ``Marker``/``MaxRecords`` ask for (filtered by ``where``), and the next marker."""
    limit = max_records(params, default=default, maximum=maximum)
    found = kind.page(store, start=_resource_start(params), limit=limit, where=where)
    return found.items, _encode(_RESOURCE, found.next_seq) if found.next_seq is not None else None


def one(
    resource: Resource[Any, Any], params: dict[str, Any], *, default: int = 100, maximum: int = 100
) -> list[Resource[Any, Any]]:
    """A Describe call naming one resource: ``MaxRecords`` and ``Marker`` are checked as for a list,
    and the resource is its whole list, empty when the marker starts after it."""
    max_records(params, default=default, maximum=maximum)
    return [resource] if resource.seq >= _resource_start(params) else []


def _resource_start(params: dict[str, Any]) -> int:
    if "Marker" not in params:
        return 0
    fields = _decode(params["Marker"], _RESOURCE)
    if len(fields) != 1 or not _is_int(fields[0]) or fields[0] < 1:
        raise _invalid()
    return int(fields[0])


# Events, newest first.


def events(
    store: Store,
    params: dict[str, Any],
    *,
    start: datetime,
    end: datetime,
    source_type: str | None,
    source_id: str | None,
) -> tuple[list[Event], str | None]:
    """The page of events that ``Marker``/``MaxRecords`` ask for within [start, end], and the next marker."""
    limit = max_records(params)
    rows = store.recent_events(
        start=start,
        end=end,
        limit=limit + 1,
        source_type=source_type,
        source_id=source_id,
        before=_event_position(params),
    )
    if len(rows) <= limit:
        return rows, None
    following = rows[limit]
    return rows[:limit], _encode(_EVENT, following.date.isoformat(), following.seq)


def _event_position(params: dict[str, Any]) -> tuple[datetime, int] | None:
    if "Marker" not in params:
        return None
    fields = _decode(params["Marker"], _EVENT)
    if len(fields) != 2 or not isinstance(fields[0], str) or not _is_int(fields[1]) or fields[1] < 1:
        raise _invalid()
    try:
        date = datetime.fromisoformat(fields[0])
    except ValueError as exc:
        raise _invalid() from exc
    if date.tzinfo is None:
        raise _invalid()
    return date, int(fields[1])


# Fixed lists, by offset.


def page(
    items: Sequence[T], params: dict[str, Any], *, default: int = 100, maximum: int = 100
) -> tuple[Sequence[T], str | None]:
    """The slice of ``items`` that ``Marker``/``MaxRecords`` ask for, and the marker of the next page."""
    limit = max_records(params, default=default, maximum=maximum)
    start = 0
    if "Marker" in params:
        fields = _decode(params["Marker"], _OFFSET)
        if len(fields) != 1 or not _is_int(fields[0]) or not 0 <= fields[0] <= len(items):
            raise _invalid()
        start = int(fields[0])
    end = start + limit
    return items[start:end], (_encode(_OFFSET, end) if end < len(items) else None)


# The marker's form: URL-safe base64 of a JSON array, the list's kind first.


def _encode(kind: str, *fields: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, *fields], separators=(",", ":")).encode()).decode()


def _decode(marker: str, kind: str) -> list[Any]:
    if len(marker) > MAX_MARKER:
        raise _invalid()
    try:
        value = json.loads(base64.urlsafe_b64decode(marker.encode()).decode())
    except (ValueError, UnicodeError, RecursionError) as exc:  # binascii.Error, JSONDecodeError: ValueErrors
        raise _invalid() from exc
    if not isinstance(value, list) or not value or value[0] != kind:
        raise _invalid()
    return value[1:]


def _is_int(value: Any) -> bool:
    """A JSON integer SQLite can hold (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and -_MAX_SEQ <= value <= _MAX_SEQ


def _invalid() -> InvalidParameterValue:
    return InvalidParameterValue("The parameter Marker is not valid.")
