"""The edge's guards in-process: request size, throttling per access key, IAM's wire format, and
thousands of malformed IAM and STS requests (no 500, no crash, no hang).

Real boto3 clients (or botocore-signed raw requests) into the real app over a real SQLite store.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from xml.etree import ElementTree as ET

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import FORM_TYPE, URL, InProcessApi

from cachefleet.api.handlers.iam import IAM_HANDLERS, STS_HANDLERS
from cachefleet.protocol.service import load_service_model

FUZZ_COUNTS: dict[str, int] = {}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path / "cf")
    yield server
    server.close()


def _error(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def _user_key(api: InProcessApi, name: str, *statements: dict[str, Any]) -> tuple[str, str]:
    iam = api.client("iam")
    iam.create_user(UserName=name)
    if statements:
        document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    api = InProcessApi(tmp_path / "cf", max_request_bytes=4096)
    try:
        small = api.post({"Action": "DescribeReplicationGroups", "Version": "2015-02-02"})
        assert small.status_code == 200
        big = api.post({"Action": "DescribeReplicationGroups", "Version": "2015-02-02", "Marker": "x" * 5000})
        assert big.status_code == 413
        assert "<Code>RequestEntityTooLarge</Code>" in big.text
        assert "4096 bytes" in big.text
        # A declared length over the limit is refused before a byte of the body is read.
        lying = api.send(
            "POST", body=b"Action=x", headers={"Content-Length": "999999999999", "Content-Type": FORM_TYPE}
        )
        assert lying.status_code == 413
    finally:
        api.close()


def test_each_access_key_has_its_own_throttle(tmp_path: Path) -> None:
    # One call per 1000 s after a burst of 3: the fourth call is throttled whatever the machine's speed.
    api = InProcessApi(tmp_path / "cf", api_rate=0.001, api_burst=3)
    try:
        user = _user_key(api, "busy", {"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"})
        # The root key spent its three calls making the user; the next one is refused.
        root = api.client()
        assert _error(root.describe_replication_groups) == ("Throttling", 400, "Rate exceeded")
        mine = api.client(key=user)
        for _ in range(3):
            mine.describe_replication_groups()
        assert _error(mine.describe_replication_groups)[:2] == ("Throttling", 400)
    finally:
        api.close()


def test_iam_errors_use_iams_namespace_and_codes(api: InProcessApi) -> None:
    body = b"Action=GetUser&Version=2010-05-08&UserName=ghost"
    headers = api.sign("POST", URL, body, {"Content-Type": FORM_TYPE}, service="iam")
    response = api.send("POST", body=body, headers=headers)
    assert response.status_code == 404
    root = ET.fromstring(response.content)
    assert root.tag == "{https://iam.amazonaws.com/doc/2010-05-08/}ErrorResponse"
    assert "<Code>NoSuchEntity</Code>" in response.text
    sts = api.sign("POST", URL, b"Action=GetCallerIdentity&Version=2011-06-15", {"Content-Type": FORM_TYPE},
                   service="sts")  # fmt: skip
    answer = api.send("POST", body=b"Action=GetCallerIdentity&Version=2011-06-15", headers=sts)
    assert answer.status_code == 200
    assert ET.fromstring(answer.content).tag == "{https://sts.amazonaws.com/doc/2011-06-15/}GetCallerIdentityResponse"


def test_a_denied_call_is_audited_and_changes_nothing(api: InProcessApi) -> None:
    key = _user_key(api, "eve")
    eve = api.client(key=key)
    code, status, message = _error(eve.create_replication_group, ReplicationGroupId="x",
                                   ReplicationGroupDescription="d", CacheNodeType="cache.t4g.micro",
                                   CacheParameterGroupName="default.redis7")  # fmt: skip
    assert (code, status) == ("AccessDenied", 403)
    # The first resource refused is the group itself; the parameter group it names is checked too.
    assert "on resource: arn:aws:elasticache:us-east-1:000000000000:replicationgroup:x because" in message
    assert api.client().describe_replication_groups()["ReplicationGroups"] == []
    lines = (api.ctx.settings.audit_path / "audit.log").read_text().splitlines()
    denied = [json.loads(line) for line in lines if '"AccessDenied"' in line]
    assert len(denied) == 1
    assert denied[0]["resources"] == [
        {"ARN": "arn:aws:elasticache:us-east-1:000000000000:replicationgroup:x"},
        {"ARN": "arn:aws:elasticache:us-east-1:000000000000:parametergroup:default.redis7"},
    ]


# -- fuzz ------------------------------------------------------------------------------------------

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


def test_thousands_of_malformed_iam_and_sts_requests_never_fail_the_server(unthrottled: InProcessApi) -> None:
    api = unthrottled
    rng = random.Random(20260301)
    user = _user_key(api, "fuzzer", {"Effect": "Allow", "Action": ["iam:*", "sts:*"], "Resource": "*"},
                     {"Effect": "Deny", "Action": "iam:Delete*", "Resource": "arn:aws:iam::*:user/bob"})  # fmt: skip
    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}
    for index in range(REQUESTS):
        service = "iam" if rng.random() < 0.8 else "sts"
        pairs = _request(service, rng)
        body = urlencode(pairs, quote_via=quote).encode()
        key = user if index % 3 == 0 else None
        headers = api.sign("POST", URL, body, {"Content-Type": FORM_TYPE}, service=service,
                           **({"key": key} if key else {}))  # fmt: skip
        response = api.send("POST", body=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (pairs, response.text)
        answer = ET.fromstring(response.content)  # always a well-formed XML answer
        code = answer.find(".//{*}Code")
        name = code.text or "" if code is not None else "ok"
        codes[name] = codes.get(name, 0) + 1
    FUZZ_COUNTS["iam+sts requests"] = REQUESTS
    assert sum(statuses.values()) == REQUESTS
    # The generator reaches the handlers, not only the parser: some calls succeed, some are refused.
    assert statuses.get(200, 0) > REQUESTS // 10, codes
    assert statuses.get(400, 0) > REQUESTS // 10, codes
    assert {"NoSuchEntity", "ValidationError", "AccessDenied", "MalformedPolicyDocument"} <= set(codes), codes
    print(f"iam+sts fuzz: {REQUESTS} requests, statuses {dict(sorted(statuses.items()))}, codes {codes}")
