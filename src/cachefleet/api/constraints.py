"""The service model's constraints on input members (length, range, pattern, enum), checked the way
IAM and STS check them: every violation listed in one ``ValidationError``.

AWS's wording: ``1 validation error detected: Value 'a b' at 'userName' failed to satisfy
constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+``. The patterns are
Java regexes; those Python's ``re`` reads the same way are checked, the rest (Unicode classes
such as ``\\p{L}``) are left to the handlers. Pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from cachefleet.model.errors import ValidationError

Shape = Any  # botocore.model.Shape

_MAX_LISTED = 5


def check(shape: Shape | None, params: Mapping[str, Any]) -> None:
    if shape is None:
        return
    problems: list[str] = []
    _structure(shape, params, "", problems)
    if problems:
        count = len(problems)
        shown = "; ".join(problems[:_MAX_LISTED])
        noun = "error" if count == 1 else "errors"
        raise ValidationError(f"{count} validation {noun} detected: {shown}")


def _structure(shape: Shape, value: Mapping[str, Any], path: str, problems: list[str]) -> None:
    for name, member in shape.members.items():
        if name in value:
            _value(member, value[name], f"{path}.{_camel(name)}" if path else _camel(name), problems)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _value(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        _structure(shape, value, path, problems)
    elif kind == "list" and isinstance(value, list):
        _length(len(value), meta, value, path, problems, unit="length")
        for index, item in enumerate(value, start=1):
            _value(shape.member, item, f"{path}.{index}.member", problems)
    elif kind == "string" and isinstance(value, str):
        _length(len(value), meta, value, path, problems, unit="length")
        enum = meta.get("enum")
        if enum and value not in enum:
            problems.append(_message(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
        pattern = meta.get("pattern")
        regex = _regex(pattern) if pattern else None
        if regex is not None and regex.fullmatch(value) is None:
            problems.append(_message(value, path, f"Member must satisfy regular expression pattern: {pattern}"))
    elif kind in ("integer", "long") and isinstance(value, int):
        if "min" in meta and value < meta["min"]:
            problems.append(_message(value, path, f"Member must have value greater than or equal to {meta['min']}"))
        if "max" in meta and value > meta["max"]:
            problems.append(_message(value, path, f"Member must have value less than or equal to {meta['max']}"))


def _length(size: int, meta: Mapping[str, Any], value: Any, path: str, problems: list[str], *, unit: str) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(_message(value, path, f"Member must have {unit} greater than or equal to {meta['min']}"))
    if "max" in meta and size > meta["max"]:
        problems.append(_message(value, path, f"Member must have {unit} less than or equal to {meta['max']}"))


def _message(value: Any, path: str, constraint: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, list):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    if len(text) > 128:
        text = text[:125] + "..."
    return f"Value '{text}' at '{path}' failed to satisfy constraint: {constraint}"


@functools.cache
def _regex(pattern: str) -> re.Pattern[str] | None:
    if "\\p{" in pattern or "\\P{" in pattern:
        return None
    try:
        # Java's \w is ASCII, as is re.ASCII's.
        return re.compile(pattern, re.ASCII | re.DOTALL)
    except re.error:
        return None
