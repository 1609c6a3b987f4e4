"""The IAM policy parser and evaluator under thousands of hostile documents.

Whatever the text, ``parse_policy`` returns a policy or raises ``MalformedPolicyDocument`` with a
reason: no other exception, no crash. A document that parses evaluates any request without raising.
Hypothesis draws documents (the profile of ``conftest.py`` sets how many: ``ci`` with every
``./test.sh``, ``long`` with ``scripts/fuzz.sh``), including ``strategies.json_values()``; a seeded
structural mutator adds 20,000 more per run, far cheaper per document. Hangs are the per-test
timeout's to catch, not a timed assertion's. Counts go to the fuzz figures (``policy.tried``).
"""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachefleet.model.errors import MalformedPolicyDocument
from cachefleet.model.patterns import context
from cachefleet.model.policy import Decision, evaluate, parse_policy
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import FIGURES, record

_WORDS = st.sampled_from(
    [
        "*", "?", "${aws:username}", "${*}", "${", "}", "arn:aws:elasticache:*:*:replicationgroup:*", "arn:",
        "elasticache:Describe*", "elasticache:", "iam:*", ":", "aws:username", "aws:TagKeys", "Allow", "Deny",
        "2012-10-17", "2008-10-17", "StringLike", "ForAllValues:StringEquals", "NumericLessThan", "DateGreaterThan",
        "IpAddress", "Null", "true", "10.0.0.0/8", "", " ", "\u0000", "é", "a" * 300, "*" * 50,
    ]
)  # fmt: skip
_TEXT = st.one_of(_WORDS, st.text(max_size=40), st.lists(_WORDS, max_size=4).map("".join))
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)
_JSON: Any = st.recursive(
    _SCALAR,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_TEXT, children, max_size=5)),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["Version", "Statement", "Id", "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition",
     "Principal", "Foo"]
)  # fmt: skip


def _statement() -> Any:
    value = st.one_of(_TEXT, st.lists(_TEXT, max_size=4), _JSON)
    condition = st.dictionaries(_TEXT, st.dictionaries(_TEXT, st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3))))
    return st.fixed_dictionaries(
        {},
        optional={
            "Sid": _TEXT,
            "Effect": st.one_of(st.sampled_from(["Allow", "Deny"]), _TEXT),
            "Action": value,
            "NotAction": value,
            "Resource": value,
            "NotResource": value,
            "Condition": st.one_of(condition, _JSON),
            "Principal": _JSON,
        },
    )


_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "Version": st.one_of(st.sampled_from(["2012-10-17", "2008-10-17"]), _TEXT),
        "Statement": st.one_of(_statement(), st.lists(_statement(), max_size=4), _JSON),
        "Id": _TEXT,
    },
)


def _check(text: str, name: str) -> None:
    started = time.monotonic()
    _parse_and_evaluate(text)
    record("policy", None, time.monotonic() - started)
    FIGURES[f"policy.{name}"] += 1


def _parse_and_evaluate(text: str) -> None:
    reason = ""
    try:
        policy = parse_policy(text)
    except MalformedPolicyDocument as exc:
        policy, reason = None, exc.message
    if policy is None:
        assert reason, "a refusal says why"
        return
    ctx = context({"aws:username": "bob", "aws:TagKeys": ["a", "b"], "aws:CurrentTime": "2026-01-01T00:00:00Z"})
    for action in ("elasticache:DescribeReplicationGroups", "iam:CreateUser", "*", ""):
        for resource in ("*", "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:x", "", "arn:::::"):
            assert evaluate([policy], action, resource, ctx) in Decision


@given(_DOCUMENT)
def test_structured_documents_parse_or_are_malformed(document: dict[str, Any]) -> None:
    _check(json.dumps(document), "structured")


@given(st.one_of(_JSON, fz.json_values()))
def test_any_json_value_parses_or_is_malformed(value: Any) -> None:
    _check(json.dumps(value), "json")


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_any_text_parses_or_is_malformed(text: str) -> None:
    _check(text, "text")


_VALID = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": ["elasticache:Describe*"], "Resource": "*",
             "Condition": {"StringLike": {"aws:username": "${aws:username}"}, "Bool": {"aws:SecureTransport": "true"}}},
            {"Effect": "Deny", "NotAction": "iam:*", "NotResource": "arn:aws:elasticache:*:*:cluster:*"},
        ],
    }
)  # fmt: skip


@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.sampled_from(list('{}[]",:*?$ aZ0\\'))), max_size=6))
def test_a_valid_document_with_characters_changed_parses_or_is_malformed(edits: list[tuple[int, str]]) -> None:
    text = list(_VALID)
    for index, char in edits:
        text[index] = char
    _check("".join(text), "mutated")


# A seeded structural mutator: far cheaper per document than hypothesis' generation, so it covers
# many more documents in the same time. Each document is a valid policy with a few of its nodes
# replaced, removed, duplicated or retyped.

MUTATIONS = 20_000
_ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 10**30, "", "*", "?", "${aws:username}", "${", "arn:", "a:b", "x" * 1000, [], {}, [[]],
    {"": ""}, ["*"], {"StringEquals": {}}, {"StringEquals": {"aws:x": []}}, {"Bool": {"aws:x": "maybe"}},
    {"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}, {"DateLessThan": {"aws:CurrentTime": "tomorrow"}},
    {"ForAnyValue:StringLike": {"aws:TagKeys": ["*"]}}, {"NullIfExists": {"aws:x": "true"}},
]  # fmt: skip


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_nodes(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_nodes(item, (*path, index)))
    return found


def _mutate(document: Any, rng: random.Random) -> Any:
    for _ in range(rng.randint(1, 4)):
        paths = [p for p in _nodes(document) if p]
        if not paths:
            return rng.choice(_ODD_VALUES)
        path = rng.choice(paths)
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = rng.randrange(4)
        if action == 0:
            parent[last] = copy.deepcopy(rng.choice(_ODD_VALUES))
        elif action == 1 and isinstance(parent, dict):
            del parent[last]
        elif action == 1 and isinstance(parent, list):
            parent.pop(last)
        elif action == 2:
            parent[last] = [parent[last], copy.deepcopy(parent[last])]
        elif isinstance(parent, dict):
            parent[rng.choice(["Principal", "Foo", "Condition", "NotAction", "Sid", last])] = copy.deepcopy(
                parent[last]
            )
    return document


def test_thousands_of_mutated_documents_parse_or_are_malformed() -> None:
    rng = random.Random(1313)
    base = json.loads(_VALID)
    for _ in range(MUTATIONS):
        _check(json.dumps(_mutate(copy.deepcopy(base), rng)), "mutated-structure")


@pytest.mark.parametrize("depth", [10, 1000, 50_000])
def test_deep_nesting_is_malformed_not_a_crash(depth: int) -> None:
    with pytest.raises(MalformedPolicyDocument):
        parse_policy('{"Statement": ' + "[" * depth + "]" * depth + "}")
