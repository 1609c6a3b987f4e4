"""SigV4 verification against botocore's own signers (header and presigned) as the oracle."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cachefleet.api.sigv4 import Caller, verify
from cachefleet.model.errors import (
    AuthFailure,
    IncompleteSignature,
    InvalidClientTokenId,
    MissingAuthenticationToken,
    RequestExpired,
    SignatureDoesNotMatch,
)

KEY = "AKIDCACHEFLEETTEST"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOST = "localhost:8080"
SIGNED_AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
FORM = b"Action=DescribeCacheClusters&Version=2015-02-02&CacheClusterId=my%20cluster"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
CALLER = Caller(access_key_id=KEY, service="elasticache", region="us-east-1")


@pytest.fixture(autouse=True)
def fixed_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's signer reads the wall clock; pin it so expiry cases are exact.
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *_, **__: SIGNED_AT.replace(tzinfo=None)
    )


def secret_for(key: str) -> str | None:
    return {KEY: SECRET}.get(key)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def verify(self, now: datetime = SIGNED_AT) -> Caller:
        return verify(
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body=self.body,
            secret_for=secret_for,
            now=now,
        )


def signed_post(
    body: bytes = FORM,
    *,
    region: str = "us-east-1",
    secret: str = SECRET,
    extra: dict[str, str] | None = None,
) -> Request:
    aws = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        data=body,
        headers={"Content-Type": CONTENT_TYPE, **(extra or {})},
    )
    SigV4Auth(Credentials(KEY, secret), "elasticache", region).add_auth(aws)
    # The HTTP client adds Host; botocore signs it without putting it in the headers.
    headers = {"Host": HOST, **dict(aws.headers.items())}
    return Request("POST", "/", "", headers, body)


def signed_get(params: dict[str, str], *, presign_expires: int | None = None) -> Request:
    # SDKs percent-encode spaces as %20, never '+' (which SigV4 reads as a literal plus).
    aws = AWSRequest(method="GET", url=f"http://{HOST}/?{urlencode(params, quote_via=quote)}")
    credentials = Credentials(KEY, SECRET)
    if presign_expires is None:
        SigV4Auth(credentials, "elasticache", "us-east-1").add_auth(aws)
    else:
        SigV4QueryAuth(credentials, "elasticache", "us-east-1", expires=presign_expires).add_auth(aws)
    url = urlsplit(aws.url)
    return Request("GET", url.path, url.query, {"Host": HOST, **dict(aws.headers.items())}, b"")


def test_botocore_signed_post_verifies() -> None:
    assert signed_post().verify() == CALLER


def test_header_names_are_case_insensitive() -> None:
    request = signed_post()
    lowered = replace(request, headers={name.lower(): value for name, value in request.headers.items()})
    assert lowered.verify() == CALLER


def test_any_region_verifies() -> None:
    assert signed_post(region="eu-west-3").verify() == Caller(KEY, "elasticache", "eu-west-3")


def test_skew_up_to_fifteen_minutes_is_accepted() -> None:
    request = signed_post()
    assert request.verify(SIGNED_AT + timedelta(minutes=15)) == CALLER
    assert request.verify(SIGNED_AT - timedelta(minutes=15)) == CALLER


def test_signed_get_with_encoded_query_verifies() -> None:
    params = {"Action": "DescribeCacheClusters", "CacheClusterId": "a b/c~d*é", "Marker": "x+y=z&"}
    assert signed_get(params).verify() == CALLER


def test_declared_payload_hash_that_matches_verifies() -> None:
    digest = hashlib.sha256(FORM).hexdigest()
    assert signed_post(extra={"X-Amz-Content-SHA256": digest}).verify() == CALLER


def test_presigned_url_verifies() -> None:
    request = signed_get({"Action": "DescribeCacheClusters", "Version": "2015-02-02"}, presign_expires=300)
    assert "authorization" not in {name.lower() for name in request.headers}
    assert request.verify(SIGNED_AT + timedelta(seconds=299)) == CALLER


def without(name: str) -> Callable[[Request], Request]:
    return lambda request: replace(
        request, headers={key: value for key, value in request.headers.items() if key.lower() != name}
    )


def with_header(name: str, value: str) -> Callable[[Request], Request]:
    return lambda request: replace(request, headers={**without(name.lower())(request).headers, name: value})


def with_authorization(edit: Callable[[str], str]) -> Callable[[Request], Request]:
    return lambda request: with_header("Authorization", edit(request.headers["Authorization"]))(request)


CASES: list[tuple[str, Callable[[Request], Request], type[AuthFailure], str]] = [
    ("no auth header", without("authorization"), MissingAuthenticationToken, "missing Authentication Token"),
    ("garbled header", with_header("Authorization", "garbage"), IncompleteSignature, "AWS4-HMAC-SHA256"),
    (
        "no signature",
        with_authorization(lambda auth: auth.split(", Signature=")[0]),
        IncompleteSignature,
        "'Signature'",
    ),
    ("no date", without("x-amz-date"), IncompleteSignature, "X-Amz-Date"),
    (
        "wrong service",
        with_authorization(lambda auth: auth.replace("/elasticache/", "/s3/")),
        IncompleteSignature,
        "elasticache",
    ),
    (
        "short scope",
        with_authorization(lambda auth: auth.replace("/aws4_request", "")),
        IncompleteSignature,
        "Credential",
    ),
    (
        "scope date differs",
        with_authorization(lambda auth: auth.replace("/20240506/", "/20240505/")),
        IncompleteSignature,
        "Date",
    ),
    (
        "unknown key",
        with_authorization(lambda auth: auth.replace(KEY, "AKIDNOBODY")),
        InvalidClientTokenId,
        "security token included in the request is invalid",
    ),
    (
        "tampered body",
        lambda request: replace(request, body=FORM + b"&x=1"),
        SignatureDoesNotMatch,
        "calculated",
    ),
    ("tampered header", with_header("Content-Type", "text/plain"), SignatureDoesNotMatch, "calculated"),
    ("tampered method", lambda request: replace(request, method="PUT"), SignatureDoesNotMatch, "calculated"),
    ("tampered path", lambda request: replace(request, path="/other"), SignatureDoesNotMatch, "calculated"),
    ("added query", lambda request: replace(request, query="a=b"), SignatureDoesNotMatch, "calculated"),
    ("signed header dropped", without("content-type"), SignatureDoesNotMatch, "content-type"),
    (
        "unsigned payload",
        with_header("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
        SignatureDoesNotMatch,
        "x-amz-content-sha256",
    ),
]


@pytest.mark.parametrize(
    ("edit", "error", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_rejections(edit: Callable[[Request], Request], error: type[AuthFailure], message: str) -> None:
    with pytest.raises(error, match=message):
        edit(signed_post()).verify()


def test_wrong_secret() -> None:
    with pytest.raises(SignatureDoesNotMatch, match="does not match the signature you provided"):
        signed_post(secret="not-the-secret").verify()


@pytest.mark.parametrize(
    "skew", [timedelta(minutes=20), timedelta(minutes=-20), timedelta(minutes=15, seconds=1)]
)
def test_expired(skew: timedelta) -> None:
    now = SIGNED_AT + skew
    with pytest.raises(RequestExpired) as caught:
        signed_post().verify(now)
    assert "20240506T070809Z" in caught.value.message
    assert now.strftime("%Y%m%dT%H%M%SZ") in caught.value.message


def test_signed_with_the_real_clock_verifies_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # botocore signs with the wall clock again
    assert signed_post().verify(datetime.now(UTC)) == CALLER


def test_presigned_url_expires() -> None:
    request = signed_get({"Action": "DescribeCacheClusters"}, presign_expires=300)
    with pytest.raises(RequestExpired, match="20240506T070809Z"):
        request.verify(SIGNED_AT + timedelta(seconds=301))


def test_presigned_url_tampered() -> None:
    request = signed_get({"Action": "DescribeCacheClusters", "CacheClusterId": "a"}, presign_expires=300)
    tampered = replace(request, query=request.query.replace("CacheClusterId=a", "CacheClusterId=b"))
    with pytest.raises(SignatureDoesNotMatch):
        tampered.verify()


def test_presigned_url_missing_parts() -> None:
    request = signed_get({"Action": "DescribeCacheClusters"}, presign_expires=300)
    kept = "&".join(part for part in request.query.split("&") if not part.startswith("X-Amz-Signature="))
    with pytest.raises(IncompleteSignature, match="X-Amz-Signature"):
        replace(request, query=kept).verify()


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signed_post().verify(SIGNED_AT.replace(tzinfo=None))
