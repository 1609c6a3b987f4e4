"""AWS Signature Version 4 verification: who signed a request, for which service and region.

The API edge calls ``verify`` before parsing the form. It reads what the client claims (from the
Authorization header, or from a presigned query string), checks the claim's form and time, and has
botocore's own signer recompute the signature from the request as received: botocore canonicalises
the path, query and headers and derives the signing key, so the only canonicalisation left here is
decoding the query into pairs and choosing the headers the client says it signed. The answer is a
``Caller`` (access key id, service, region from the credential scope) or an auth error from
``cachefleet.model.errors``. The service picks the API model (``elasticache`` today; ``iam``,
``sts``, ``monitoring`` later on the same ``POST /``); the region is not checked, so any region name
works. Pure: the clock and the key store are passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from cachefleet.model.errors import (
    IncompleteSignature,
    InvalidClientTokenId,
    MalformedQueryString,
    MissingAuthenticationToken,
    RequestExpired,
    SignatureDoesNotMatch,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "elasticache"
_TERMINATOR = "aws4_request"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = timedelta(days=7)
_MAX_EXPIRES_DIGITS = 7  # 604800 has six; more is refused before int() is asked
_ECHO = 64  # characters of a client's value quoted back in a message
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the access key id, and the service and region of its credential scope."""

    access_key_id: str
    service: str
    region: str


@dataclass(frozen=True)
class _Claim:
    """What the client says it signed, before any of it is trusted."""

    access_key: str
    date: str  # YYYYMMDD of the scope
    region: str
    service: str
    stamp: str  # the request time as signed, YYYYMMDDTHHMMSSZ
    when: datetime
    signed_headers: tuple[str, ...]
    signature: str
    expires: timedelta | None  # only for presigned URLs


def verify(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    services: Collection[str] = (SERVICE,),
    max_skew: timedelta = MAX_SKEW,
) -> Caller:
    """Return who signed the request, or raise the matching auth error.

    ``path`` and ``query`` are as sent on the wire (still percent-encoded); ``headers`` may use any
    case and may repeat a name (repeated values are joined by commas, as SigV4 signs them).
    ``services`` are the credential-scope services this server answers for.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    lowered = _lowered(headers)
    pairs = _query_pairs(query)
    if "authorization" in lowered:
        claim = _claim_from_header(",".join(lowered["authorization"]), lowered, services)
    elif any(name == "X-Amz-Algorithm" for name, _ in pairs):
        claim = _claim_from_query(dict(pairs), services)
        # The signature cannot sign itself.
        pairs = [(name, value) for name, value in pairs if name != "X-Amz-Signature"]
    else:
        raise MissingAuthenticationToken("Request is missing Authentication Token")
    secret = secret_for(claim.access_key)
    if secret is None:
        raise InvalidClientTokenId("The security token included in the request is invalid.")
    _check_time(claim, now, max_skew)
    expected = _expected_signature(secret, claim, method=method, path=path, pairs=pairs, headers=lowered, body=body)
    if not hmac.compare_digest(expected.encode(), claim.signature.encode("utf-8", "replace")):
        raise SignatureDoesNotMatch(_MISMATCH)
    return Caller(access_key_id=claim.access_key, service=claim.service, region=claim.region)


def _lowered(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    lowered: dict[str, list[str]] = {}
    for name, value in items:
        lowered.setdefault(name.lower(), []).append(value)
    return lowered


def _quote(raw: str) -> str:
    """A client's value as a message quotes it: repr (which escapes what cannot be shown), cut short."""
    return repr(raw) if len(raw) <= _ECHO else repr(raw[:_ECHO]) + "..."


# Reading the claim


def _claim_from_header(authorization: str, headers: Mapping[str, list[str]], services: Collection[str]) -> _Claim:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Authorization header must use the {ALGORITHM} algorithm.")
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise IncompleteSignature(" ".join(f"Authorization header requires '{name}' parameter." for name in missing))
    stamp, when = _request_time(headers)
    return _claim(
        fields["Credential"],
        stamp,
        when,
        signed=fields["SignedHeaders"],
        signature=fields["Signature"],
        expires=None,
        services=services,
    )


def _claim_from_query(params: Mapping[str, str], services: Collection[str]) -> _Claim:
    names = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires")
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise IncompleteSignature(f"Presigned request is missing {', '.join(missing)}.")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(f"X-Amz-Algorithm must be {ALGORITHM}.")
    stamp = params["X-Amz-Date"]
    expires = _expires(params["X-Amz-Expires"])
    return _claim(
        params["X-Amz-Credential"],
        stamp,
        _parse_stamp(stamp),
        signed=params["X-Amz-SignedHeaders"],
        signature=params["X-Amz-Signature"],
        expires=expires,
        services=services,
    )


def _claim(
    credential: str,
    stamp: str,
    when: datetime,
    *,
    signed: str,
    signature: str,
    expires: timedelta | None,
    services: Collection[str],
) -> _Claim:
    parts = credential.split("/")
    expected_form = f"<access key>/<YYYYMMDD>/<region>/<service>/{_TERMINATOR}"
    # Every part is printable ASCII: an access key id, a date, a region and a service name are.
    if len(parts) != 5 or not all(part and part.isascii() and part.isprintable() for part in parts):
        raise IncompleteSignature(f"Credential must have the form {expected_form}, got {_quote(credential)}.")
    access_key, date, region, service, terminator = parts
    if terminator != _TERMINATOR:
        raise IncompleteSignature(f"Credential should be scoped with a valid terminator: '{_TERMINATOR}'.")
    if service not in services:
        names = ", ".join(f"'{name}'" for name in sorted(services))
        raise IncompleteSignature(f"Credential should be scoped to correct service: {names}.")
    if date != stamp[:8]:
        raise IncompleteSignature(
            f"Date in Credential scope does not match YYYYMMDD from the request date {_quote(stamp)}."
        )
    return _Claim(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        stamp=stamp,
        when=when,
        signed_headers=tuple(signed.split(";")),
        signature=signature,
        expires=expires,
    )


def _request_time(headers: Mapping[str, list[str]]) -> tuple[str, datetime]:
    if "x-amz-date" in headers:
        stamp = headers["x-amz-date"][-1].strip()
        return stamp, _parse_stamp(stamp)
    if "date" in headers:
        # SigV4 allows the HTTP Date header instead; the client signed it in the basic ISO form.
        try:
            when = parsedate_to_datetime(headers["date"][-1])
            # An HTTP date names its zone; "-0000" (unknown zone) parses naive and means UTC.
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        except (TypeError, ValueError, OverflowError):
            raise IncompleteSignature("Date header is not an HTTP date.") from None
        return when.strftime(_STAMP_FORMAT), when
    raise IncompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")


def _parse_stamp(stamp: str) -> datetime:
    try:
        return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature(f"X-Amz-Date {_quote(stamp)} is not in the form YYYYMMDDTHHMMSSZ.") from None


def _expires(raw: str) -> timedelta:
    if raw.isascii() and raw.isdigit() and len(raw) <= _MAX_EXPIRES_DIGITS:
        expires = timedelta(seconds=int(raw))
        if timedelta(seconds=1) <= expires <= MAX_PRESIGN_EXPIRES:
            return expires
    raise IncompleteSignature(f"X-Amz-Expires must be a number of seconds from 1 to 604800, got {_quote(raw)}.")


def _check_time(claim: _Claim, now: datetime, max_skew: timedelta) -> None:
    now_stamp = now.astimezone(UTC).strftime(_STAMP_FORMAT)
    # Differences only: a date near year 9999 plus a duration would overflow datetime.
    age = now - claim.when
    if claim.expires is not None:
        if age > claim.expires or -age > max_skew:
            raise RequestExpired(
                f"Request has expired: signed at {claim.stamp} for {int(claim.expires.total_seconds())}s, "
                f"server time is {now_stamp}."
            )
    elif abs(age) > max_skew:
        raise RequestExpired(
            f"Request has expired: request time {claim.stamp} is more than "
            f"{int(max_skew.total_seconds() // 60)} minutes from server time {now_stamp}."
        )


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's pairs, decoded as SigV4 reads them: '+' is a plus, and the text must be UTF-8."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_decode(name), _decode(value)))
    return pairs


def _decode(text: str) -> str:
    try:
        # The wire's bytes (the edge reads them as latin-1); text beyond latin-1 (a caller's own
        # string) as UTF-8, a lone surrogate as bytes that then fail the decoding.
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedQueryString("The query string is not valid percent-encoded UTF-8.") from None


# Recomputing the signature with botocore's signer


class _Signer(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's SigV4 signer, told which headers the client signed (it would otherwise choose)."""

    def __init__(self, claim: _Claim, secret: str, signed: HTTPHeaders) -> None:
        super().__init__(Credentials(claim.access_key, secret), claim.service, claim.region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        return self._signed


def _expected_signature(
    secret: str,
    claim: _Claim,
    *,
    method: str,
    path: str,
    pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, list[str]],
    body: bytes,
) -> str:
    signed = HTTPHeaders()
    for name in claim.signed_headers:
        if name not in headers:
            raise SignatureDoesNotMatch(f"{_MISMATCH} The signed header {_quote(name)} is not in the request.")
        for value in headers[name]:
            signed[name] = value
    request = AWSRequest(method=method.upper(), url="http://signed" + path, data=body, params=list(pairs))
    declared = headers.get("x-amz-content-sha256")
    if declared is not None:
        # The form body carries the parameters, so an unsigned or mismatched payload is never accepted.
        if declared[-1].strip().lower() != hashlib.sha256(body).hexdigest():
            raise SignatureDoesNotMatch(f"{_MISMATCH} The x-amz-content-sha256 header does not match the body.")
        request.headers["X-Amz-Content-SHA256"] = declared[-1]
    request.context["timestamp"] = claim.stamp
    signer = _Signer(claim, secret, signed)
    try:
        canonical = signer.canonical_request(request)
        signature: str = signer.signature(signer.string_to_sign(request, canonical), request)
    except (UnicodeError, ValueError):
        # A path or header that is not text as signed (a lone surrogate, a stray byte): not what was signed.
        raise SignatureDoesNotMatch(_MISMATCH) from None
    return signature
