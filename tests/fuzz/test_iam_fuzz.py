"""Thousands of malformed IAM and STS requests from a seeded generator (no 500, no crash, no hang).

Cheaper per request than hypothesis' generation, so every ``./test.sh`` sends 3,000, from the root
and from a user whose policy is evaluated on each: operations this version implements, mostly, with
every member right or wrong in every way a form can be, and some unknown actions and versions. The
hypothesis query fuzz (``test_query_fuzz.py``) draws IAM and STS forms too.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from cachefleet.api.handlers.iam import IAM_HANDLERS, STS_HANDLERS
from cachefleet.protocol.service import load_service_model
from tests.fuzz.conftest import FIGURES, record
from tests.fuzz.oracle import check_answer
from tests.support.inprocess import FORM_TYPE, URL, InProcessApi

REQUESTS = 3000
_GARBAGE = ["", " ", "*", "x" * 300, "\u00e9\u00e8", "%00", "-1", "99999999999999999999", "true", "null", "{", "}",
            '{"Statement": []}', "arn:aws:iam::000000000000:policy/p", "arn:aws:iam::aws:policy/AdministratorAccess",
            "/", "/a/", "//", "v1", "v0", "Active", "Inactive", "Expired", "AKIA0000000000000000", "\t\n"]  # fmt: skip


def _value(shape: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value for ``shape``, right or wrong in every way a form can be."""
    kind = shape.type_name
    if rng.random() < 0.05 or depth > 3:
        return rng.choice(_GARBAGE)
    if kind == "structure":
        required = set(shape.required_members)
        return {
            name: _value(member, rng, depth + 1)
            for name, member in shape.members.items()
            if rng.random() < (0.95 if name in required else 0.4)
        }
    if kind == "list":
        return [_value(shape.member, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind in ("integer", "long"):
        return rng.choice([0, 1, 5, 1000, 1001, -3, 2**40])
    if kind == "boolean":
        return rng.choice([True, False])
    if shape.metadata.get("enum"):
        return rng.choice([*shape.metadata["enum"], "nope"])
    if shape.name == "policyDocumentType":
        statement = {"Effect": rng.choice(["Allow", "Deny", "x"]), "Action": rng.choice(["*", "iam:*", "x"]),
                     "Resource": rng.choice(["*", "arn:aws:iam::*:user/*", "bad"])}  # fmt: skip
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    if shape.name == "arnType":
        return rng.choice(["arn:aws:iam::000000000000:policy/p1", "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
                           "arn:aws:iam::000000000000:policy/ops/p2", "arn:nope"])  # fmt: skip
    if "path" in shape.name.lower():
        return rng.choice(["/", "/ops/", "ops", "//"])
    return rng.choice(["bob", "alice", "grp", "p1", "p2", "v1", "v2", *rng.sample(_GARBAGE, 1)])


def _form(prefix: str, value: Any, shape: Any, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, dict) and shape is not None and shape.type_name == "structure":
        for name, item in value.items():
            _form(f"{prefix}{name}.", item, shape.members.get(name), pairs)
    elif isinstance(value, list) and shape is not None and shape.type_name == "list":
        member = shape.member.serialization.get("name", "member")
        for index, item in enumerate(value, start=1):
            _form(f"{prefix}{member}.{index}.", item, shape.member, pairs)
    else:
        text = "true" if value is True else "false" if value is False else str(value)
        pairs.append((prefix.rstrip("."), text))


def _request(service: str, rng: random.Random) -> list[tuple[str, str]]:
    model = load_service_model(service)
    built = sorted(IAM_HANDLERS if service == "iam" else STS_HANDLERS)
    if rng.random() < 0.85:
        action = rng.choice(built)  # the operations this version implements, mostly
    else:
        action = rng.choice([*sorted(model.operation_names), "NoSuchAction", "", "CreateUser ", *_GARBAGE])
    pairs = [("Action", action), ("Version", model.api_version if rng.random() < 0.95 else "1999-01-01")]
    if action in model.operation_names:
        shape = model.operation(action).input_shape
        if shape is not None:
            _form("", _value(shape, rng), shape, pairs)
    if rng.random() < 0.1:
        pairs.append((rng.choice(["Foo", "UserName.1", "Tags.member.0.Key", "Tags.member.99999999999.Key"]), "x"))
    return pairs


@pytest.fixture
def unthrottled(tmp_path: Path) -> Iterator[InProcessApi]:
    # The fuzz is a flood from two keys: throttling (tested above) would answer most of it.
    server = InProcessApi(tmp_path / "fuzz", api_rate=1e9, api_burst=10**9)
    yield server
    server.close()


def _user_key(api: InProcessApi, name: str, *statements: dict[str, Any]) -> tuple[str, str]:
    iam = api.client("iam")
    iam.create_user(UserName=name)
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_thousands_of_malformed_iam_and_sts_requests_never_fail_the_server(unthrottled: InProcessApi) -> None:
    api = unthrottled
    rng = random.Random(20260301)
    user = _user_key(api, "fuzzer", {"Effect": "Allow", "Action": ["iam:*", "sts:*"], "Resource": "*"},
                     {"Effect": "Deny", "Action": "iam:Delete*", "Resource": "arn:aws:iam::*:user/bob"})  # fmt: skip
    models = {"iam": load_service_model("iam"), "sts": load_service_model("sts")}
    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}
    for index in range(REQUESTS):
        service = "iam" if rng.random() < 0.8 else "sts"
        pairs = _request(service, rng)
        body = urlencode(pairs, quote_via=quote).encode()
        key = user if index % 3 == 0 else None
        headers = api.sign("POST", URL, body, {"Content-Type": FORM_TYPE}, service=service,
                           **({"key": key} if key else {}))  # fmt: skip
        started = time.monotonic()
        response = api.send("POST", body=body, headers=headers)
        record("http", response.status_code, time.monotonic() - started)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        action = dict(pairs).get("Action", "")
        known = action if action in models[service].operation_names else None
        # No 5xx, a request id, and XML botocore reads: an error with Code and Message, or the output.
        answer = check_answer(models[service], known, response)
        name = answer.get("Error", {}).get("Code", "ok")
        codes[name] = codes.get(name, 0) + 1
        FIGURES[f"seeded.{service}.status.{response.status_code}"] += 1
    assert sum(statuses.values()) == REQUESTS
    # The generator reaches the handlers, not only the parser: some calls succeed, some are refused.
    assert statuses.get(200, 0) > REQUESTS // 10, codes
    assert statuses.get(400, 0) > REQUESTS // 10, codes
    assert {"NoSuchEntity", "ValidationError", "AccessDenied", "MalformedPolicyDocument"} <= set(codes), codes
