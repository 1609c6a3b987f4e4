"""The edge's guards in-process: request size, throttling per access key, IAM's wire format, and a
denied call's audit record.

Real boto3 clients (or botocore-signed raw requests) into the real app over a real SQLite store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from botocore.exceptions import ClientError
from tests.support.inprocess import FORM_TYPE, URL, InProcessApi

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
