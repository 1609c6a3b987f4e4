"""SigV4 on every request: missing, malformed, unknown, stale or wrong signatures are refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.support.server import ServerProcess
from tests.support.sign import signed_post

pytestmark = pytest.mark.integration

DESCRIBE = {"Action": "DescribeReplicationGroups", "Version": "2015-02-02"}


def _code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_signed_requests_pass_and_bad_ones_get_aws_codes(server: ServerProcess) -> None:
    assert server.client().describe_replication_groups()["ReplicationGroups"] == []

    unsigned = server.client(config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    assert _code(unsigned.describe_replication_groups) == ("MissingAuthenticationToken", 403)

    wrong_secret = server.client(aws_secret_access_key="x" * 40)
    assert _code(wrong_secret.describe_replication_groups) == ("SignatureDoesNotMatch", 403)

    unknown_key = server.client(aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    assert _code(unknown_key.describe_replication_groups) == ("InvalidClientTokenId", 403)

    stale = signed_post(server, DESCRIBE, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    assert stale.status_code == 400
    assert "<Code>RequestExpired</Code>" in stale.text

    garbled = httpx.post(
        server.endpoint_url + "/",
        data=DESCRIBE,
        headers={"Authorization": "AWS4-HMAC-SHA256 nonsense", "X-Amz-Date": "20260101T000000Z"},
    )
    assert garbled.status_code == 400
    assert "<Code>IncompleteSignature</Code>" in garbled.text


def test_a_refused_request_changes_nothing(server: ServerProcess) -> None:
    create = {
        "Action": "CreateReplicationGroup",
        "Version": "2015-02-02",
        "ReplicationGroupId": "sneaky",
        "ReplicationGroupDescription": "x",
    }
    response = signed_post(server, create, secret="y" * 40)
    assert response.status_code == 403
    assert server.client().describe_replication_groups()["ReplicationGroups"] == []
