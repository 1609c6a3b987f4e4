"""Marker/MaxRecords paging shared by the Describe calls."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from cachefleet.model.errors import InvalidParameterValue

T = TypeVar("T")


def page(
    items: Sequence[T], params: dict[str, Any], *, default: int = 100, maximum: int = 100
) -> tuple[Sequence[T], str | None]:
    """The slice of ``items`` that ``Marker``/``MaxRecords`` ask for, and the marker of the next page."""
    limit = params.get("MaxRecords", default)
    if not 20 <= limit <= maximum:
        raise InvalidParameterValue(f"The parameter MaxRecords must be between 20 and {maximum}.")
    start = _decode(params["Marker"]) if "Marker" in params else 0
    if start > len(items):
        raise InvalidParameterValue("The parameter Marker is not valid.")
    end = start + limit
    return items[start:end], (_encode(end) if end < len(items) else None)


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"cf1:{offset}".encode()).decode()


def _decode(marker: str) -> int:
    try:
        prefix, _, offset = base64.urlsafe_b64decode(marker.encode()).decode().partition(":")
        value = int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterValue("The parameter Marker is not valid.") from exc
    if prefix != "cf1" or value < 0:
        raise InvalidParameterValue("The parameter Marker is not valid.")
    return value
