"""The ``Condition`` element of a policy statement: operators, set qualifiers and missing keys.

A block ``{"StringLike": {"aws:username": ["a*", "b*"]}}`` holds when, for every operator and every
key under it, the request's value matches one of the listed values (the values are ORed, the keys
and operators ANDed). As AWS documents it:

- a key absent from the request makes a positive operator false and a negated one
  (``StringNotEquals``, ``ArnNotLike``, ``NotIpAddress``, ...) true; ``...IfExists`` makes any
  operator true for an absent key; ``Null`` tests the absence itself;
- ``ForAnyValue:`` holds when at least one of a multi-valued key's values matches (false when the
  key is absent or empty), ``ForAllValues:`` when every value does (true when absent or empty);
- String and Arn operators take policy variables in their values (``${aws:username}``) in
  documents of Version 2012-10-17.

Values that an operator cannot read (a number that is not one, an IP that is not an address) are
refused when the policy is parsed, with ``MalformedPolicyDocument``. Pure.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachefleet.model.errors import MalformedPolicyDocument
from cachefleet.model.patterns import RequestContext, arn_like, has_variables, literal, string_like, substitute

Matcher = Callable[[str, str], bool]  # (policy value, request value) -> matches


@functools.lru_cache(maxsize=4096)
def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@functools.lru_cache(maxsize=4096)
def _date(text: str) -> datetime | None:
    stripped = text.strip()
    number = _number(stripped)
    try:
        if number is not None:
            return datetime.fromtimestamp(number, UTC)
        parsed = datetime.fromisoformat(stripped)
    except (ValueError, OverflowError, OSError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _compare(parse: Callable[[str], Any], test: Callable[[Any, Any], bool]) -> Matcher:
    def match(expected: str, actual: str) -> bool:
        want, have = parse(expected), parse(actual)
        return want is not None and have is not None and bool(test(have, want))

    return match


@functools.lru_cache(maxsize=4096)
def _ip_in(expected: str, actual: str) -> bool:
    # Cached: a policy's networks and the few client addresses repeat on every request.
    try:
        network = ipaddress.ip_network(expected, strict=False)
        address = ipaddress.ip_address(actual)
    except ValueError:
        return False
    return address.version == network.version and address in network


def _bool(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _binary(expected: str, actual: str) -> bool:
    return expected == actual


def _string_equals(expected: str, actual: str) -> bool:
    return literal(expected) == actual


def _string_equals_ignore_case(expected: str, actual: str) -> bool:
    return literal(expected).lower() == actual.lower()


@dataclass(frozen=True)
class _Operator:
    match: Matcher
    negated: bool = False
    variables: bool = False  # policy variables allowed in the values
    check: Callable[[str], bool] | None = None  # a policy value this operator can read


_NUMERIC = {
    "Equals": lambda a, b: a == b,
    "NotEquals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _ip_network_ok(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _operators() -> dict[str, _Operator]:
    ops: dict[str, _Operator] = {
        "StringEquals": _Operator(_string_equals, variables=True),
        "StringNotEquals": _Operator(_string_equals, negated=True, variables=True),
        "StringEqualsIgnoreCase": _Operator(_string_equals_ignore_case, variables=True),
        "StringNotEqualsIgnoreCase": _Operator(_string_equals_ignore_case, negated=True, variables=True),
        "StringLike": _Operator(string_like, variables=True),
        "StringNotLike": _Operator(string_like, negated=True, variables=True),
        "ArnEquals": _Operator(arn_like, variables=True),
        "ArnLike": _Operator(arn_like, variables=True),
        "ArnNotEquals": _Operator(arn_like, negated=True, variables=True),
        "ArnNotLike": _Operator(arn_like, negated=True, variables=True),
        "Bool": _Operator(_bool, check=lambda v: v.lower() in ("true", "false")),
        "BinaryEquals": _Operator(_binary, check=_base64_ok),
        "IpAddress": _Operator(_ip_in, check=_ip_network_ok),
        "NotIpAddress": _Operator(_ip_in, negated=True, check=_ip_network_ok),
    }
    for suffix, test in _NUMERIC.items():
        negated = suffix == "NotEquals"
        ops[f"Numeric{suffix}"] = _Operator(
            _compare(_number, test), negated=negated, check=lambda v: _number(v) is not None
        )
        ops[f"Date{suffix}"] = _Operator(_compare(_date, test), negated=negated, check=lambda v: _date(v) is not None)
    return ops


def _base64_ok(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return True


OPERATORS: Mapping[str, _Operator] = _operators()
_BY_LOWER = {name.lower(): name for name in OPERATORS}


@dataclass(frozen=True)
class Condition:
    """One key under one operator: ``ForAnyValue:StringLikeIfExists`` + ``aws:TagKeys`` + values."""

    operator: str  # the canonical base name, e.g. "StringLike"; "Null" for the Null check
    key: str
    values: tuple[str, ...]
    qualifier: str = ""  # "", "ForAnyValue" or "ForAllValues"
    if_exists: bool = False
    variables: bool = True  # Version 2012-10-17: ${...} in String and Arn values are substituted

    def holds(self, ctx: RequestContext) -> bool:
        found = ctx.get(self.key)
        if self.operator == "Null":
            absent = not found
            return any((v.lower() == "true") == absent for v in self.values)
        op = OPERATORS[self.operator]
        if found is None or (self.qualifier and not found):
            if self.qualifier == "ForAllValues" or self.if_exists:
                return True
            return op.negated and not self.qualifier
        expected = self._expected(op, ctx)

        def one(actual: str) -> bool:
            matched = any(op.match(e, actual) for e in expected)
            return not matched if op.negated else matched

        if self.qualifier == "ForAllValues":
            return all(one(v) for v in found)
        if op.negated and not self.qualifier:
            return all(one(v) for v in found)  # matches none of the values
        return any(one(v) for v in found)

    def _expected(self, op: _Operator, ctx: RequestContext) -> tuple[str, ...]:
        if not (self.variables and op.variables and any(has_variables(v) for v in self.values)):
            return self.values
        substituted = (substitute(v, ctx) if has_variables(v) else v for v in self.values)
        return tuple(v for v in substituted if v is not None)


def parse_conditions(block: Any, *, variables: bool) -> tuple[Condition, ...]:
    """The conditions of a statement's ``Condition`` element, or ``MalformedPolicyDocument``."""
    if not isinstance(block, dict):
        raise MalformedPolicyDocument("Condition must be an object of operators.")
    conditions: list[Condition] = []
    for raw_operator, keys in block.items():
        qualifier, base, if_exists = _operator_name(raw_operator)
        if not isinstance(keys, dict) or not keys:
            raise MalformedPolicyDocument(f"Condition operator {raw_operator} must map condition keys to values.")
        for key, raw_values in keys.items():
            if ":" not in key or not key.split(":", 1)[0] or not key.split(":", 1)[1]:
                raise MalformedPolicyDocument(
                    f"Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. Found: {key}"
                )
            values = _values(raw_values, raw_operator)
            if base != "Null":
                op = OPERATORS[base]
                literal_values = [v for v in values if not (variables and op.variables and has_variables(v))]
                if op.check is not None and not all(op.check(v) for v in literal_values):
                    raise MalformedPolicyDocument(f"Condition {raw_operator} has a value it cannot compare: {key}.")
            elif not all(v.lower() in ("true", "false") for v in values):
                raise MalformedPolicyDocument(f"The Null condition takes true or false, for {key}.")
            conditions.append(Condition(base, key, values, qualifier, if_exists, variables))
    return tuple(conditions)


def _operator_name(raw: str) -> tuple[str, str, bool]:
    qualifier, colon, name = raw.partition(":")
    if not colon:
        qualifier, name = "", raw
    elif qualifier.lower() == "foranyvalue":
        qualifier = "ForAnyValue"
    elif qualifier.lower() == "forallvalues":
        qualifier = "ForAllValues"
    else:
        raise MalformedPolicyDocument(f"Invalid Condition type : {raw}.")
    if_exists = name.lower().endswith("ifexists") and name.lower() != "ifexists"
    base = name[: -len("IfExists")] if if_exists else name
    if base.lower() == "null":
        if if_exists:
            raise MalformedPolicyDocument(f"Invalid Condition type : {raw}.")
        return qualifier, "Null", False
    canonical = _BY_LOWER.get(base.lower())
    if canonical is None:
        raise MalformedPolicyDocument(f"Invalid Condition type : {raw}.")
    return qualifier, canonical, if_exists


def _values(raw: Any, operator: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicyDocument(f"Condition {operator} has an empty list of values.")
    values = []
    for item in items:
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str):
            values.append(item)
        elif isinstance(item, int | float):
            values.append(str(item))
        else:
            raise MalformedPolicyDocument(f"Condition {operator} values must be strings, numbers or booleans.")
    return tuple(values)
