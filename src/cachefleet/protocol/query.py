"""Decode an AWS Query request (the form of ``POST /`` or a GET query string) into an operation's params.

This is the first step after authentication: the API edge hands the decoded form pairs here and gets
back the operation name and a dict keyed by the input shape's member names, ready to build a spec
from. Wire names come from the service model only. Absent members are absent from the dict (never
``None``), so a ``Modify*`` handler can tell "not given" from any value.

Every value is checked here, whatever the handler does with it later: a number must fit its type
(and is never handed to ``int`` when it has more digits than any fitting value can have, since
Python refuses such strings), a list index must be a plausible one, and a string must hold only
characters that an XML answer can carry, since handlers echo and store strings.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from cachefleet.model.errors import InvalidParameterValue, MalformedQueryString, MissingParameter
from cachefleet.protocol.service import ServiceModel, Shape
from cachefleet.protocol.text import describe, first_invalid

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EPOCH = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INTEGER_BITS = {"integer": 32, "long": 64}
# More significant digits than any 64-bit value has: refused before int() is asked.
_MAX_INTEGER_DIGITS = 20
# A list index of more digits than this is no index a client sends (lists hold at most thousands).
_MAX_INDEX_DIGITS = 6
_ECHO = 64  # characters of a bad value quoted back in a message


def decode_form(data: bytes | str) -> list[tuple[str, str]]:
    """The ``name=value`` pairs of a form body or query string, percent-decoded as strict UTF-8."""
    try:
        text = data.decode() if isinstance(data, bytes) else data
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedQueryString("The request is not valid form-encoded UTF-8.") from exc


@dataclass
class _Node:
    """One dotted path segment of the form: ``Tags.Tag.1.Key=a`` becomes Tags -> Tag -> 1 -> Key."""

    value: str | None = None
    children: dict[str, _Node] = field(default_factory=dict)


def parse_request(model: ServiceModel, pairs: Sequence[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    root = _tree(pairs)
    action = _value(root, "Action")
    if action is None:
        raise MissingParameter("The request must contain the parameter Action.")
    operation = model.operation(action)
    version = _value(root, "Version")
    if version is not None and version != model.api_version:
        raise InvalidParameterValue(
            f"Unsupported Version {_quote(version)}: this service speaks Version {model.api_version}."
        )
    shape = operation.input_shape
    if shape is None:
        return action, {}
    return action, _structure(shape, root, "") or {}


def _tree(pairs: Sequence[tuple[str, str]]) -> _Node:
    root = _Node()
    for key, value in pairs:
        node = root
        for part in key.split("."):
            node = node.children.setdefault(part, _Node())
        # A repeated key keeps its last value, as the form parsers in front of us do.
        node.value = value
    return root


def _value(node: _Node, name: str) -> str | None:
    child = node.children.get(name)
    return None if child is None else child.value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _parse(shape: Shape, node: _Node | None, path: str) -> Any:
    """The parsed value at ``node``, or None when the form does not give it."""
    if node is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, node, path)
    if kind == "list":
        return _list(shape, node, path)
    if kind == "map":
        return _map(shape, node, path)
    if node.value is None:
        return None
    return _SCALARS.get(kind, _string)(shape, node.value, path)


def _member_wire_name(member: Shape, name: str) -> str:
    # A flattened list with a named member is keyed by that name in its parent (as botocore sends it).
    if member.type_name == "list" and member.serialization.get("flattened"):
        item_name: str | None = member.member.serialization.get("name")
        if item_name:
            return item_name
    wire_name: str = member.serialization.get("name", name)
    return wire_name


def _structure(shape: Shape, node: _Node, path: str) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        wire_name = _member_wire_name(member, name)
        value = _parse(member, node.children.get(wire_name), _join(path, wire_name))
        if value is not None:
            params[name] = value
    if not params and path:
        # A nested structure with nothing in it was not given; its parent decides if that is allowed.
        return None
    for name in shape.required_members:
        if name not in params:
            wire_name = _member_wire_name(shape.members[name], name)
            raise MissingParameter(f"The request must contain the parameter {_join(path, wire_name)}.")
    return params


def _list(shape: Shape, node: _Node, path: str) -> list[Any] | None:
    if not shape.serialization.get("flattened"):
        item_name: str = shape.member.serialization.get("name", "member")
        path = _join(path, item_name)
        inner = node.children.get(item_name)
        if inner is None:
            return None
        node = inner
    items = [_parse(shape.member, child, f"{path}.{index}") for index, child in _indexed(node, path)]
    # An empty list (botocore sends ``Name=`` for one) reads as "not given", like any absent member.
    return [item for item in items if item is not None] or None


def _map(shape: Shape, node: _Node, path: str) -> dict[Any, Any] | None:
    if not shape.serialization.get("flattened"):
        path = _join(path, "entry")
        inner = node.children.get("entry")
        if inner is None:
            return None
        node = inner
    key_name: str = shape.key.serialization.get("name", "key")
    value_name: str = shape.value.serialization.get("name", "value")
    entries: dict[Any, Any] = {}
    for index, entry in _indexed(node, path):
        entry_path = f"{path}.{index}"
        key = _required(shape.key, entry, key_name, entry_path)
        entries[key] = _required(shape.value, entry, value_name, entry_path)
    return entries or None


def _required(shape: Shape, node: _Node, name: str, path: str) -> Any:
    value = _parse(shape, node.children.get(name), _join(path, name))
    if value is None:
        raise MissingParameter(f"The request must contain the parameter {_join(path, name)}.")
    return value


def _indexed(node: _Node, path: str) -> Iterator[tuple[int, _Node]]:
    """The 1-based numbered children of ``node`` in index order; gaps are tolerated, zero is not."""
    numbered = []
    for key, child in node.children.items():
        if not (key.isascii() and key.isdigit() and not key.startswith("0")):
            continue
        if len(key) > _MAX_INDEX_DIGITS:
            raise InvalidParameterValue(f"Invalid list index {_quote(key)} for parameter {path}.")
        numbered.append((int(key), child))
    return iter(sorted(numbered, key=lambda pair: pair[0]))


def _quote(raw: str) -> str:
    """A bad value as a message quotes it: repr (which escapes what cannot be shown), cut short."""
    return repr(raw) if len(raw) <= _ECHO else repr(raw[:_ECHO]) + "..."


# Scalars. Each takes the shape (for bounds), the raw text and the wire path for the message.


def _string(shape: Shape, raw: str, path: str) -> str:
    bad = first_invalid(raw)
    if bad is not None:
        raise InvalidParameterValue(
            f"Invalid value for parameter {path}: the character {describe(bad)} is not allowed."
        )
    return raw


def _integer(shape: Shape, raw: str, path: str) -> int:
    text = raw.strip()
    bits = _INTEGER_BITS.get(shape.type_name, 64)
    if _INTEGER.fullmatch(text):
        # Leading zeros count against Python's digit limit too, so they go before int() sees them.
        digits = text.lstrip("+-").lstrip("0") or "0"
        if len(digits) <= _MAX_INTEGER_DIGITS:
            value = int(digits) * (-1 if text.startswith("-") else 1)
            if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                return value
    raise InvalidParameterValue(f"Invalid integer value {_quote(raw)} for parameter {path}.")


def _double(shape: Shape, raw: str, path: str) -> float:
    text = raw.strip()
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
    raise InvalidParameterValue(f"Invalid number value {_quote(raw)} for parameter {path}.")


def _boolean(shape: Shape, raw: str, path: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise InvalidParameterValue(
        f"Invalid boolean value {_quote(raw)} for parameter {path}: expected true or false."
    )


def _timestamp(shape: Shape, raw: str, path: str) -> datetime:
    text = raw.strip()
    try:
        if _EPOCH.fullmatch(text):
            return datetime.fromtimestamp(float(text), tz=UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        pass
    else:
        # A timestamp without an offset is UTC, as in every AWS API.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise InvalidParameterValue(
        f"Invalid timestamp value {_quote(raw)} for parameter {path}: expected ISO 8601 or epoch seconds."
    )


def _blob(shape: Shape, raw: str, path: str) -> bytes:
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise InvalidParameterValue(f"Invalid base64 value for parameter {path}.") from None


_SCALARS: dict[str, Callable[[Shape, str, str], Any]] = {
    "string": _string,
    "character": _string,
    "integer": _integer,
    "long": _integer,
    "double": _double,
    "float": _double,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
}
