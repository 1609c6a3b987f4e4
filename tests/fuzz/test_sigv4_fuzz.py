"""The SigV4 verifier under hostile claims: any method, path, query, headers and body either verify
or raise the auth error a client can read; botocore-signed requests always verify. And whole hostile
requests (methods, headers, presigned queries) into the app: never a 5xx, always XML."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from cachefleet.api.sigv4 import Caller, verify
from cachefleet.model.errors import ClientError
from tests.fuzz import strategies as fz
from tests.fuzz.conftest import FuzzServer, record
from tests.fuzz.oracle import check_answer
from tests.fuzz.targets import TARGETS
from tests.support.inprocess import KEY_ID, SECRET

SERVICES = tuple(target.service for target in TARGETS)
MODEL = TARGETS[0].model
NOW = datetime.now(UTC)


def secret_for(key: str) -> str | None:
    return SECRET if key == KEY_ID else None


def _verify(**request: Any) -> Caller | None:
    """verify() on ``request``: the caller, or None after an error a client can read."""
    started = time.monotonic()
    try:
        return verify(secret_for=secret_for, now=NOW, services=SERVICES, **request)
    except ClientError:
        return None  # an AWS error code and message: what the edge answers
    finally:
        record("verify", None, time.monotonic() - started)


@st.composite
def hostile_requests(draw: st.DrawFn) -> dict[str, Any]:
    headers: list[tuple[str, str]] = draw(st.lists(st.tuples(fz.header_names, fz.header_values), max_size=4))
    if draw(st.booleans()):
        headers.append(("Authorization", draw(fz.authorization(KEY_ID, SERVICES))))
    if draw(st.booleans()):
        headers.append(("X-Amz-Date", draw(fz.amz_dates())))
    if draw(st.booleans()):
        headers.append(("Date", draw(fz.http_dates())))
    if draw(st.booleans()):
        headers.append(("Host", draw(st.just("testserver") | fz.header_values)))
    if draw(st.booleans()):
        headers.append(("X-Amz-Content-SHA256", draw(st.just("UNSIGNED-PAYLOAD") | fz.header_values)))
    pairs = draw(fz.presigned_query(KEY_ID, SERVICES)) if draw(st.booleans()) else []
    pairs += draw(st.lists(st.tuples(fz.text(), fz.text()), max_size=3))
    query = fz.encode_form(pairs).decode() if draw(st.integers(0, 3)) else draw(fz.text())
    return {
        "method": draw(st.sampled_from(fz.METHODS)),
        "path": draw(st.sampled_from(["/", "", "//", "/healthz", "/?"]) | fz.text()),
        "query": query,
        "headers": headers,
        "body": draw(st.binary(max_size=100)),
    }


@given(request=hostile_requests())
def test_the_verifier_answers_hostile_claims_with_auth_errors_only(request: dict[str, Any]) -> None:
    assert _verify(**request) is None  # a forged signature never verifies


@given(
    form=st.lists(st.tuples(fz.text(), fz.text()), max_size=5),
    region=st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
    presign=st.booleans(),
    skew=st.integers(-14 * 60, 14 * 60),
)
def test_what_botocore_signs_verifies(form: list[tuple[str, str]], region: str, presign: bool, skew: int) -> None:
    # Forms as botocore's serializer would encode them (valid UTF-8 only: it cannot encode more).
    pairs = [(k, v) for k, v in form if _utf8(k) and _utf8(v)]
    body = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs).encode()
    signed_at = NOW + timedelta(seconds=skew)
    credentials = Credentials(KEY_ID, SECRET)
    if presign:
        aws = AWSRequest(method="GET", url="http://testserver/?" + body.decode())
        signer: SigV4Auth = SigV4QueryAuth(credentials, SERVICES[0], region, expires=900)
    else:
        aws = AWSRequest(method="POST", url="http://testserver/", data=body)
        signer = SigV4Auth(credentials, SERVICES[0], region)
    aws.context["timestamp"] = signed_at.strftime("%Y%m%dT%H%M%SZ")
    # add_auth stamps the wall clock; sign with our own stamp, as botocore does given one.
    signer._modify_request_before_signing(aws)
    canonical = signer.canonical_request(aws)
    signer._inject_signature_to_request(aws, signer.signature(signer.string_to_sign(aws, canonical), aws))
    url = urlsplit(aws.url)
    headers = [("Host", "testserver"), *aws.headers.items()]
    caller = _verify(method=aws.method, path=url.path, query=url.query, headers=headers, body=aws.body or b"")
    assert caller == Caller(KEY_ID, SERVICES[0], region)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(request=hostile_requests())
def test_hostile_requests_into_the_app_get_xml_errors(fuzz_server: FuzzServer, request: dict[str, Any]) -> None:
    response = fuzz_server.raw(
        request["method"],
        path=_wire(request["path"]),
        query=_wire(request["query"]),
        headers=[(name.encode(), _wire(value)) for name, value in request["headers"]],
        body=request["body"],
    )
    if request["path"] == "/healthz":
        assert response.status_code < 500, response.text  # the one route that is not the API
    else:
        check_answer(MODEL, None, response, method=request["method"])


def _wire(text: str) -> bytes:
    # Latin-1 where it can be (as servers decode the wire), else the UTF-8 bytes, surrogates kept.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
