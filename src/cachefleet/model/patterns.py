"""Matching as IAM policies do it: globs, ARN patterns, policy variables, and a request's keys.

Shared by ``model.policy`` (Action and Resource) and ``model.conditions`` (the String and Arn
operators and policy variables in condition values). Pure.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPE = "\x00"  # before a character that substitution made literal (a '*' in a user name)
_SEGMENT = re.compile("(?<!\x00):")

Lookup = Callable[[str], tuple[str, ...] | None]


@dataclass(frozen=True)
class RequestContext:
    """The condition keys of one request, by lowercased name; each value is a tuple (multi-valued
    keys such as ``aws:TagKeys`` have several). ``lookup`` answers keys computed on demand (a
    resource's tags), so a policy that never asks for them costs no store read."""

    values: Mapping[str, tuple[str, ...]]
    lookup: Lookup | None = None

    def get(self, key: str) -> tuple[str, ...] | None:
        name = key.lower()
        found = self.values.get(name)
        if found is None and self.lookup is not None:
            found = self.lookup(name)
        return found


def context(values: Mapping[str, str | Sequence[str]], lookup: Lookup | None = None) -> RequestContext:
    """A ``RequestContext`` from plain values (a str is one value, a sequence several)."""
    normalised = {k.lower(): (v,) if isinstance(v, str) else tuple(v) for k, v in values.items()}
    return RequestContext(normalised, lookup)


# Globs


def glob_source(text: str, *, stop: str = "") -> str:
    """A glob (``*`` any run, ``?`` one character) as regex source; with ``stop``, neither crosses it."""
    any_run, any_one = (f"[^{re.escape(stop)}]*", f"[^{re.escape(stop)}]") if stop else (".*", ".")
    out = []
    escaped = False
    for c in text:
        if escaped:
            out.append(re.escape(c))
            escaped = False
        elif c == _ESCAPE:
            escaped = True
        else:
            out.append(any_run if c == "*" else any_one if c == "?" else re.escape(c))
    return "".join(out)


def arn_source(text: str) -> str:
    """An ARN pattern as regex source: partition, service, region and account are matched segment
    by segment (a wildcard there stops at ':'); the resource part, which may hold ':' and '/', is
    one glob. ``*`` alone matches anything."""
    if text == "*":
        return ".*"
    head = _SEGMENT.split(text, maxsplit=5)
    if len(head) < 6:
        return glob_source(text)
    return ":".join(glob_source(part, stop=":") for part in head[:5]) + ":" + glob_source(head[5])


@functools.lru_cache(maxsize=4096)
def _arn_regex(text: str) -> re.Pattern[str]:
    return re.compile(arn_source(text), re.DOTALL)


@functools.lru_cache(maxsize=4096)
def _glob_regex(text: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(glob_source(text), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def arn_like(pattern: str, value: str) -> bool:
    """``ArnLike`` and Resource matching (case-sensitive)."""
    return _arn_regex(pattern).fullmatch(value) is not None


def string_like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``StringLike``: a glob over the whole value."""
    return _glob_regex(pattern, ignore_case).fullmatch(value) is not None


def literal(text: str) -> str:
    """A substituted value for the exact-match operators: the literal marks dropped."""
    return text.replace(_ESCAPE, "")


# Policy variables


def has_variables(text: str) -> bool:
    return _VARIABLE.search(text) is not None


def substitute(text: str, ctx: RequestContext | None) -> str | None:
    """``text`` with its policy variables (``${aws:username}``, ``${*}``, ...) replaced by their
    values; None when a variable has no single value and no default (the pattern then matches
    nothing, as in AWS). Substituted characters are marked literal: a ``*`` in a value, or
    ``${*}``, is never a wildcard (``literal`` removes the marks for exact comparisons)."""
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1).strip()
        if inner in ("*", "?", "$"):
            return _ESCAPE + inner
        name, comma, default = inner.partition(",")
        default = default.strip()
        values = ctx.get(name.strip()) if ctx is not None else None
        if values is not None and len(values) == 1:
            value = values[0]
        elif comma and len(default) >= 2 and default[0] == default[-1] == "'":
            value = default[1:-1]
        else:
            missing = True
            return ""
        return "".join(_ESCAPE + c for c in value)

    out = _VARIABLE.sub(replace, text)
    return None if missing else out
