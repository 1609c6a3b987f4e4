"""No 500 for any input: each class of hostile request found against the edge, as a fixed case.

The fuzz tests (tests/fuzz) search around these; here each class is pinned down with the answer AWS
gives, checked through botocore's own parser. In-process: the real app, a real SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import botocore.parsers
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tests.support.inprocess import KEY_ID, NODE_TYPE, SECRET, InProcessApi

from cachefleet.api.handlers import OPERATIONS
from cachefleet.model.specs import ReplicationGroupSpec
from cachefleet.protocol.query import parse_request
from cachefleet.protocol.service import Shape, load_service_model
from cachefleet.store.records import GROUP

MODEL = load_service_model()
PARSER = botocore.parsers.create_parser("query")
HUGE = "9" * 5000  # past Python's 4300-digit int() limit


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApi]:
    server = InProcessApi(tmp_path_factory.mktemp("hostile"))
    yield server
    server.close()


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error botocore reads from ``response``, which must have HTTP ``status``."""
    assert response.status_code == status, response.text
    parsed = PARSER.parse({"body": response.content, "headers": dict(response.headers), "status_code": status}, None)
    error: dict[str, Any] = parsed["Error"]
    return error


def form(action: str, **params: str) -> dict[str, str]:
    return {"Action": action, "Version": "2015-02-02", **params}


# Digit strings longer than int() converts, in any integer member or list index


def _integer_paths(shape: Shape, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(wire key, member path) of every integer member, through structures and lists (index 1)."""
    for name, member in shape.members.items():
        wire = member.serialization.get("name", name)
        kind = member.type_name
        if kind in ("integer", "long"):
            yield f"{prefix}{wire}", name
        elif kind == "structure":
            yield from ((k, f"{name}.{p}") for k, p in _integer_paths(member, f"{prefix}{wire}."))
        elif kind == "list" and member.member.type_name == "structure":
            item = member.member.serialization.get("name", "member")
            yield from ((k, f"{name}.{p}") for k, p in _integer_paths(member.member, f"{prefix}{wire}.{item}.1."))


INTEGERS = [
    (name, key, path)
    for name in sorted(OPERATIONS)
    for key, path in _integer_paths(MODEL.operation(name).input_shape)
]


@pytest.mark.parametrize(("operation", "key", "path"), INTEGERS, ids=[f"{c[0]}-{c[2]}" for c in INTEGERS])
def test_a_huge_integer_in_any_member_is_invalid_parameter_value(
    api: InProcessApi, operation: str, key: str, path: str
) -> None:
    for value in (HUGE, "-" + HUGE, "9223372036854775808"):
        error = error_of(api.post(form(operation, **{key: value})), 400)
        assert error["Code"] == "InvalidParameterValue"
        assert f"for parameter {key}" in error["Message"]
        assert len(error["Message"]) < 200  # the value is quoted short


def test_leading_zeros_do_not_count_against_the_digit_limit() -> None:
    _, params = parse_request(MODEL, list(form("DescribeCacheClusters", MaxRecords="0" * 5000 + "42").items()))
    assert params == {"MaxRecords": 42}


def test_there_are_integer_members_to_test() -> None:
    assert ("DescribeCacheClusters", "MaxRecords", "MaxRecords") in INTEGERS
    assert ("IncreaseReplicaCount", "ReplicaConfiguration.ConfigureShard.1.NewReplicaCount") in [
        (o, k) for o, k, _ in INTEGERS
    ]


@pytest.mark.parametrize("index", [HUGE, "1" + "0" * 6])
def test_a_huge_list_index_is_invalid_parameter_value(api: InProcessApi, index: str) -> None:
    params = {"ResourceName": "arn:aws:elasticache:us-east-1:000000000000:cluster:x", f"Tags.Tag.{index}.Key": "k"}
    error = error_of(api.post(form("AddTagsToResource", **params)), 400)
    assert error["Code"] == "InvalidParameterValue"
    assert "Invalid list index" in error["Message"]


# Presigned-URL fields and Date headers far from now


def _presigned(api: InProcessApi, signed_at: datetime, expires: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: signed_at.replace(tzinfo=None))
    aws = AWSRequest(method="GET", url="http://testserver/?Action=DescribeCacheClusters&Version=2015-02-02")
    SigV4QueryAuth(Credentials(KEY_ID, SECRET), "elasticache", "us-east-1", expires=expires).add_auth(aws)
    return urlsplit(aws.url).query


def test_a_presigned_url_from_year_9999_is_expired_not_an_overflow(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = _presigned(api, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), 604800, monkeypatch)
    assert error_of(api.send("GET", query=query), 400)["Code"] == "RequestExpired"


def test_a_presigned_url_signed_now_verifies(api: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> None:
    query = _presigned(api, datetime.now(UTC), 60, monkeypatch)
    assert api.send("GET", query=query).status_code == 200


@pytest.mark.parametrize("expires", [HUGE, "604801", "0", "-1", "1e3"])
def test_presigned_expiry_past_seven_days_or_not_a_number_is_refused(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch, expires: str
) -> None:
    query = _presigned(api, datetime.now(UTC), 60, monkeypatch).replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    error = error_of(api.send("GET", query=query), 400)
    assert error["Code"] == "IncompleteSignature"
    assert "X-Amz-Expires" in error["Message"]


def test_invalid_utf8_in_the_credential_scope_is_malformed(api: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> None:
    query = _presigned(api, datetime.now(UTC), 60, monkeypatch)
    query = query.replace(f"X-Amz-Credential={KEY_ID}", "X-Amz-Credential=%FF%FE%ED%A0%80")
    assert error_of(api.send("GET", query=query), 404)["Code"] == "MalformedQueryString"


@pytest.mark.parametrize(
    ("date", "code"),
    [
        ("Fri, 31 Dec 9999 23:59:59 GMT", "RequestExpired"),
        ("Fri, 31 Dec 9999 23:59:59 -1200", "IncompleteSignature"),  # past year 9999 in UTC
        ("Mon, 01 Jan 0001 00:00:00 +1400", "IncompleteSignature"),
        ("Sat, 01 Jan 2000 00:00:00 -0000", "RequestExpired"),
        ("yesterday", "IncompleteSignature"),
    ],
)
def test_a_date_header_far_from_now_is_an_auth_error(api: InProcessApi, date: str, code: str) -> None:
    # A well-formed claim by a real key whose only fault is its time: checked before the signature.
    credential = f"{KEY_ID}/{_scope_date(date)}/us-east-1/elasticache/aws4_request"
    headers = {
        "Date": date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=date;host, Signature={'0' * 64}",
    }
    body = b"Action=DescribeCacheClusters&Version=2015-02-02"
    assert error_of(api.send("POST", body=body, headers=headers), 400)["Code"] == code


def _scope_date(date: str) -> str:
    try:
        return datetime.strptime(date[5:16], "%d %b %Y").strftime("%Y%m%d")
    except ValueError:
        return "20000101"


def test_skew_of_more_than_fifteen_minutes_is_request_expired(api: InProcessApi) -> None:
    late = datetime.now(UTC) - timedelta(minutes=16)
    body = b"Action=DescribeCacheClusters&Version=2015-02-02"
    aws = AWSRequest(method="POST", url="http://testserver/", data=body)
    signer = SigV4Auth(Credentials(KEY_ID, SECRET), "elasticache", "us-east-1")
    aws.context["timestamp"] = late.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(aws)
    string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
    signer._inject_signature_to_request(aws, signer.signature(string_to_sign, aws))
    assert error_of(api.send("POST", body=body, headers=dict(aws.headers.items())), 400)["Code"] == "RequestExpired"


# Characters XML cannot carry: refused on the way in, never written out


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x1f", "\ufffe", "\uffff"])
def test_a_character_xml_cannot_carry_is_refused_by_name(api: InProcessApi, char: str) -> None:
    client = api.client()
    params = {"ReplicationGroupId": "ctl", "CacheNodeType": NODE_TYPE}
    for field in ({"ReplicationGroupDescription": f"a{char}b"}, {"ReplicationGroupDescription": "d", "Tags": [
        {"Key": "k", "Value": f"v{char}"}
    ]}):
        with pytest.raises(client.exceptions.ClientError) as caught:
            client.create_replication_group(**params, **field)
        error = caught.value.response["Error"]
        assert error["Code"] == "InvalidParameterValue"
        assert f"U+{ord(char):04X}" in error["Message"]
    assert client.describe_replication_groups()["ReplicationGroups"] == []


def test_a_lone_surrogate_is_not_utf8_and_is_malformed(api: InProcessApi) -> None:
    body = b"Action=CreateReplicationGroup&ReplicationGroupId=s&ReplicationGroupDescription=%ED%A0%80"
    assert error_of(api.post(body), 404)["Code"] == "MalformedQueryString"


def test_an_action_name_with_control_characters_gets_a_readable_error(api: InProcessApi) -> None:
    error = error_of(api.post({"Action": "Describe\x01\x02Clusters\ufffe", "Version": "2015-02-02"}), 400)
    assert error["Code"] == "InvalidAction"
    assert "Describe\ufffd\ufffdClusters\ufffd" in error["Message"]


def test_a_value_stored_before_these_checks_still_describes(api: InProcessApi) -> None:
    client = api.client()
    client.create_replication_group(ReplicationGroupId="old", ReplicationGroupDescription="d", CacheNodeType=NODE_TYPE)
    record = api.store.get(GROUP, "old")
    assert record is not None
    spec = ReplicationGroupSpec.from_json({**record.spec, "description": "bad\x01\ud800\uffffend"})
    api.store.put_spec(GROUP, "old", spec.to_json())
    described = client.describe_replication_groups(ReplicationGroupId="old")["ReplicationGroups"][0]
    assert described["Description"] == "bad\ufffd\ufffd\ufffdend"


def test_a_carriage_return_comes_back_as_sent(api: InProcessApi) -> None:
    client = api.client()
    client.create_replication_group(
        ReplicationGroupId="crlf", ReplicationGroupDescription="line one\r\nline two\rend", CacheNodeType=NODE_TYPE
    )
    described = client.describe_replication_groups(ReplicationGroupId="crlf")["ReplicationGroups"][0]
    assert described["Description"] == "line one\r\nline two\rend"


# Methods other than POST and GET


# HEAD too: the HTTP server sends no body for it, and the status says it all.
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "BREW"])
def test_other_methods_get_the_xml_error(api: InProcessApi, method: str) -> None:
    response = api.raw(method, query=b"Action=DescribeCacheClusters")
    assert error_of(response, 405)["Code"] == "MethodNotAllowed"
    assert response.headers["allow"] == "POST, GET"
    assert response.headers["content-type"].startswith("text/xml")


@pytest.mark.parametrize(
    ("path", "query"), [(b"/nothing-here", b""), (b"", b"\x80"), (b"//", b"a=\xff"), (b"/%ff/..", b"Action=x")]
)
def test_any_other_path_gets_the_xml_error(api: InProcessApi, path: bytes, query: bytes) -> None:
    # Not Starlette's plain-text 404, nor its redirect to "/" (which failed on a query that is not UTF-8).
    assert error_of(api.raw("GET", path=path, query=query), 404)["Code"] == "NotFound"


@pytest.mark.parametrize("query", [b"Action=%FF", b"Action=\xff", b"X-Amz-Credential=%ED%A0%80"])
def test_a_query_string_that_is_not_utf8_is_malformed(api: InProcessApi, query: bytes) -> None:
    assert error_of(api.raw("GET", query=query), 404)["Code"] == "MalformedQueryString"
