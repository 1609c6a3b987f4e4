"""IAM identity-based policies: parse a JSON document once, then evaluate requests against it.

``parse_policy`` checks a document the way IAM does before it stores one (grammar, vendors, ARN
form, operators) and raises ``MalformedPolicyDocument`` for anything else. What it returns is
compiled: every Action and Resource pattern is a regular expression, so evaluating a request is a
few regex matches per statement.

``evaluate`` follows AWS's order for identity-based policies of one account: an explicit Deny in
any statement wins; otherwise an Allow in any statement; otherwise the implicit deny. A statement
applies when its action, resource and every condition match. Conditions are in ``model.conditions``.

Pure: no I/O, no clock. The request's condition keys come in a ``RequestContext`` (``model.patterns``).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachefleet.model.conditions import Condition, parse_conditions
from cachefleet.model.errors import MalformedPolicyDocument
from cachefleet.model.patterns import RequestContext, arn_like, arn_source, glob_source, has_variables, substitute

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})
_PRINCIPAL_KEYS = frozenset({"Principal", "NotPrincipal"})
_SID = re.compile(r"[A-Za-z0-9]*")
_VENDOR = re.compile(r"[a-z0-9-]+")
_ACTION_NAME = re.compile(r"[A-Za-z0-9*?]+")
_SYNTAX = "Syntax errors in policy."


class Effect(enum.StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


# Patterns


@dataclass(frozen=True)
class _Patterns:
    """A statement's Action or Resource list, compiled into one regex; patterns with policy
    variables are kept apart and compiled per request once substituted."""

    texts: tuple[str, ...]
    regex: re.Pattern[str] | None
    templated: tuple[str, ...] = ()

    def matches(self, value: str, ctx: RequestContext | None) -> bool:
        if self.regex is not None and self.regex.fullmatch(value):
            return True
        for template in self.templated:
            text = substitute(template, ctx)
            if text is not None and arn_like(text, value):
                return True
        return False


def _compile_actions(texts: tuple[str, ...]) -> _Patterns:
    # Action names are case-insensitive ("elasticache:describe*" allows DescribeReplicationGroups).
    regex = re.compile("|".join(f"(?:{glob_source(t)})" for t in texts), re.IGNORECASE | re.DOTALL)
    return _Patterns(texts, regex)


def _compile_resources(texts: tuple[str, ...], *, variables: bool) -> _Patterns:
    plain = [t for t in texts if not (variables and has_variables(t))]
    templated = tuple(t for t in texts if variables and has_variables(t))
    regex = re.compile("|".join(f"(?:{arn_source(t)})" for t in plain), re.DOTALL) if plain else None
    return _Patterns(texts, regex, templated)


# Statements and policies


@dataclass(frozen=True)
class Statement:
    effect: Effect
    sid: str | None
    actions: _Patterns
    negate_actions: bool  # NotAction
    resources: _Patterns
    negate_resources: bool  # NotResource
    conditions: tuple[Condition, ...] = ()

    def covers(self, action: str) -> bool:
        return self.actions.matches(action, None) != self.negate_actions

    def applies(self, action: str, resource: str, ctx: RequestContext) -> bool:
        if not self.covers(action):
            return False
        return self.applies_to(resource, ctx)

    def applies_to(self, resource: str, ctx: RequestContext) -> bool:
        """Whether the statement applies to ``resource``, its action being known to match."""
        if self.resources.matches(resource, ctx) == self.negate_resources:
            return False
        return all(condition.holds(ctx) for condition in self.conditions)


_MAX_CACHED_ACTIONS = 1024


@dataclass(frozen=True)
class Policy:
    version: str
    statements: tuple[Statement, ...]
    id: str | None = None
    source: str = field(default="", compare=False, repr=False)
    # Action -> the statements whose Action/NotAction covers it, Deny ones first. A request asks
    # about one action, and a server has a few hundred: each is worked out once per policy.
    _by_action: dict[str, tuple[Statement, ...]] = field(default_factory=dict, compare=False, repr=False)

    def for_action(self, action: str) -> tuple[Statement, ...]:
        found = self._by_action.get(action)
        if found is None:
            matching = [s for s in self.statements if s.covers(action)]
            found = tuple(sorted(matching, key=lambda s: s.effect is not Effect.DENY))
            if len(self._by_action) >= _MAX_CACHED_ACTIONS:
                self._by_action.clear()
            self._by_action[action] = found
        return found


def parse_policy(text: str) -> Policy:
    """A compiled ``Policy``, or ``MalformedPolicyDocument`` saying what is wrong with ``text``."""
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, _Malformed) else _SYNTAX
        raise MalformedPolicyDocument(reason) from None
    if not isinstance(document, dict):
        raise MalformedPolicyDocument(_SYNTAX)
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise MalformedPolicyDocument(f"Policy document has unknown field {sorted(unknown)[0]}.")
    version = document.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicyDocument(f"The policy version {_show(version)} is not valid: use 2012-10-17.")
    policy_id = document.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyDocument(_SYNTAX)
    if "Statement" not in document:
        raise MalformedPolicyDocument("Missing required field Statement.")
    raw = document["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise MalformedPolicyDocument("Policy document must contain at least one statement.")
    variables = version == "2012-10-17"
    statements = tuple(_statement(item, variables) for item in items)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicyDocument("Statement IDs (SID) in a single policy must be unique.")
    return Policy(version=version, statements=statements, id=policy_id, source=text)


class _Malformed(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Malformed(f"Policy document has the field {key} more than once.")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _Malformed(_SYNTAX)  # NaN, Infinity: not JSON


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _statement(item: Any, variables: bool) -> Statement:
    if not isinstance(item, dict):
        raise MalformedPolicyDocument(_SYNTAX)
    if _PRINCIPAL_KEYS & set(item):
        raise MalformedPolicyDocument("Policy document should not specify a principal.")
    unknown = set(item) - _STATEMENT_KEYS
    if unknown:
        raise MalformedPolicyDocument(f"Statement has unknown field {sorted(unknown)[0]}.")
    sid = item.get("Sid")
    if sid is not None and (not isinstance(sid, str) or not _SID.fullmatch(sid)):
        raise MalformedPolicyDocument("Statement IDs (SID) must be alpha-numeric.")
    if "Effect" not in item:
        raise MalformedPolicyDocument("Missing required field Effect.")
    if item["Effect"] not in (Effect.ALLOW, Effect.DENY):
        raise MalformedPolicyDocument(f"Invalid effect: {_show(item['Effect'])}. Use Allow or Deny.")
    negate_actions, actions = _one_of(item, "Action", "NotAction", "Policy statement must contain actions.")
    for action in actions:
        _check_action(action)
    negate_resources, resources = _one_of(item, "Resource", "NotResource", "Policy statement must contain resources.")
    for resource in resources:
        _check_resource(resource)
    conditions = parse_conditions(item["Condition"], variables=variables) if "Condition" in item else ()
    return Statement(
        effect=Effect(item["Effect"]),
        sid=sid or None,
        actions=_compile_actions(actions),
        negate_actions=negate_actions,
        resources=_compile_resources(resources, variables=variables),
        negate_resources=negate_resources,
        conditions=conditions,
    )


def _one_of(item: Mapping[str, Any], name: str, negated: str, missing: str) -> tuple[bool, tuple[str, ...]]:
    if name in item and negated in item:
        raise MalformedPolicyDocument(f"Statement cannot have both {name} and {negated}.")
    if name not in item and negated not in item:
        raise MalformedPolicyDocument(missing)
    key = name if name in item else negated
    return key == negated, _strings(item[key], key)


def _strings(value: Any, field_name: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise MalformedPolicyDocument(f"{field_name} must be a non-empty string or a list of non-empty strings.")
    return tuple(values)


def _check_action(action: str) -> None:
    if action == "*":
        return
    vendor, colon, name = action.partition(":")
    if not colon or not _VENDOR.fullmatch(vendor.lower()):
        raise MalformedPolicyDocument(
            f"Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. Found: {_show(action)}"
        )
    if not _ACTION_NAME.fullmatch(name):
        raise MalformedPolicyDocument(f"Action {_show(action)} is not valid.")


def _check_resource(resource: str) -> None:
    if resource == "*":
        return
    if not resource.startswith("arn:") or resource.count(":") < 5:
        raise MalformedPolicyDocument(f'Resource {_show(resource)} must be in ARN format or "*".')


# Evaluation


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    resource: str = ""  # the first resource that was not allowed, for the AccessDenied message

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def evaluate(policies: Iterable[Policy], action: str, resource: str, ctx: RequestContext) -> Decision:
    """One action on one resource: explicit Deny > Allow > implicit deny."""
    allowed = False
    for policy in policies:
        for statement in policy.for_action(action):
            if statement.effect is Effect.ALLOW and allowed:
                continue  # an Allow is known; only a Deny can still change the answer
            if statement.applies_to(resource, ctx):
                if statement.effect is Effect.DENY:
                    return Decision.EXPLICIT_DENY
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def authorize(
    policies: Sequence[Policy],
    action: str,
    resources: Sequence[str],
    context_for: Callable[[str], RequestContext],
) -> Verdict:
    """Every resource of the request must be allowed; the first refusal is the answer (an explicit
    deny anywhere is reported before an implicit one)."""
    refused: Verdict | None = None
    for resource in resources:
        decision = evaluate(policies, action, resource, context_for(resource))
        if decision is Decision.EXPLICIT_DENY:
            return Verdict(decision, resource)
        if decision is Decision.IMPLICIT_DENY and refused is None:
            refused = Verdict(decision, resource)
    return refused or Verdict(Decision.ALLOW)


def denial_message(principal_arn: str, action: str, verdict: Verdict) -> str:
    """AWS's AccessDenied wording, naming the identity, action and resource."""
    reason = (
        "with an explicit deny in an identity-based policy"
        if verdict.decision is Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal_arn} is not authorized to perform: {action} on resource: {verdict.resource} {reason}"


def document_size(text: str) -> int:
    """A policy's size as IAM's quotas count it: characters other than whitespace."""
    return sum(1 for c in text if not c.isspace())
