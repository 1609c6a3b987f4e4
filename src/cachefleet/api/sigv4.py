"""AWS Signature Version 4 verification for requests to the ``elasticache`` service.

The API edge calls ``verify`` before parsing the form: it recomputes the signature the client made
(from the Authorization header, or from a presigned query string) and answers with the access key id
or an auth error from ``cachefleet.model.errors``. Pure: the clock and the key store are passed in.
Region is read from the client's credential scope and not checked, so any region name works.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from cachefleet.model.errors import (
    IncompleteSignature,
    InvalidClientTokenId,
    MissingAuthenticationToken,
    RequestExpired,
    SignatureDoesNotMatch,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "elasticache"
_TERMINATOR = "aws4_request"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_PRESIGN_EXPIRES = timedelta(days=7)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class _Claim:
    """What the client says it signed, before any of it is trusted."""

    access_key: str
    scope: str  # date/region/service/aws4_request
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
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> str:
    """Return the access key id that signed the request, or raise the matching auth error.

    ``path`` and ``query`` are as sent on the wire (still percent-encoded); ``headers`` may use any
    case, with repeated headers already joined by commas.
    """
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    lowered = {name.lower(): value for name, value in headers.items()}
    pairs = _query_pairs(query)
    if "authorization" in lowered:
        claim = _claim_from_header(lowered["authorization"], lowered)
    elif any(name == "X-Amz-Algorithm" for name, _ in pairs):
        claim = _claim_from_query(dict(pairs))
        # The signature cannot sign itself.
        pairs = [(name, value) for name, value in pairs if name != "X-Amz-Signature"]
    else:
        raise MissingAuthenticationToken("Request is missing Authentication Token")
    secret = secret_for(claim.access_key)
    if secret is None:
        raise InvalidClientTokenId("The security token included in the request is invalid.")
    _check_time(claim, now, max_skew)
    canonical = _canonical_request(
        method=method, path=path, pairs=pairs, headers=lowered, signed_headers=claim.signed_headers, body=body
    )
    expected = _signature(secret, claim, canonical)
    if not hmac.compare_digest(expected.encode(), claim.signature.encode("utf-8", "surrogateescape")):
        raise SignatureDoesNotMatch(_MISMATCH)
    return claim.access_key


# Reading the claim


def _claim_from_header(authorization: str, headers: Mapping[str, str]) -> _Claim:
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
    )


def _claim_from_query(params: Mapping[str, str]) -> _Claim:
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
    )


def _claim(
    credential: str, stamp: str, when: datetime, *, signed: str, signature: str, expires: timedelta | None
) -> _Claim:
    parts = credential.split("/")
    expected_form = f"<access key>/<YYYYMMDD>/<region>/{SERVICE}/{_TERMINATOR}"
    if len(parts) != 5 or not all(parts):
        raise IncompleteSignature(f"Credential must have the form {expected_form}, got {credential!r}.")
    access_key, date, _region, service, terminator = parts
    if service != SERVICE or terminator != _TERMINATOR:
        raise IncompleteSignature(f"Credential should be scoped to {expected_form}, got {credential!r}.")
    if date != stamp[:8]:
        raise IncompleteSignature(f"Date in Credential scope does not match YYYYMMDD from the request date {stamp}.")
    return _Claim(
        access_key=access_key,
        scope="/".join(parts[1:]),
        stamp=stamp,
        when=when,
        signed_headers=tuple(signed.split(";")),
        signature=signature,
        expires=expires,
    )


def _request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    if "x-amz-date" in headers:
        stamp = headers["x-amz-date"].strip()
        return stamp, _parse_stamp(stamp)
    if "date" in headers:
        # SigV4 allows the HTTP Date header instead; the client signed it in the basic ISO form.
        try:
            when = parsedate_to_datetime(headers["date"]).astimezone(UTC)
        except (TypeError, ValueError):
            raise IncompleteSignature("Date header is not an HTTP date.") from None
        return when.strftime(_STAMP_FORMAT), when
    raise IncompleteSignature("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")


def _parse_stamp(stamp: str) -> datetime:
    try:
        return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature(f"X-Amz-Date {stamp!r} is not in the form YYYYMMDDTHHMMSSZ.") from None


def _expires(raw: str) -> timedelta:
    if raw.isascii() and raw.isdigit():
        expires = timedelta(seconds=int(raw))
        if timedelta(seconds=1) <= expires <= _MAX_PRESIGN_EXPIRES:
            return expires
    raise IncompleteSignature(f"X-Amz-Expires must be a number of seconds from 1 to 604800, got {raw!r}.")


def _check_time(claim: _Claim, now: datetime, max_skew: timedelta) -> None:
    now_stamp = now.astimezone(UTC).strftime(_STAMP_FORMAT)
    if claim.expires is not None:
        if now > claim.when + claim.expires or claim.when - now > max_skew:
            raise RequestExpired(
                f"Request has expired: signed at {claim.stamp} for {int(claim.expires.total_seconds())}s, "
                f"server time is {now_stamp}."
            )
    elif abs(now - claim.when) > max_skew:
        raise RequestExpired(
            f"Request has expired: request time {claim.stamp} is more than "
            f"{int(max_skew.total_seconds() // 60)} minutes from server time {now_stamp}."
        )


# Recomputing the signature


def _canonical_request(
    *,
    method: str,
    path: str,
    pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    return "\n".join(
        [
            method.upper(),
            # Non-S3 services encode the already-encoded path once more.
            quote(_remove_dot_segments(path).encode("utf-8", "surrogateescape"), safe="/~"),
            _canonical_query(pairs),
            _canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            _payload_hash(headers, body),
        ]
    )


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_decode(name), _decode(value)))
    return pairs


def _decode(text: str) -> str:
    # Bytes that are not UTF-8 survive the round trip through surrogateescape.
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="-_.~")


def _canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    encoded = sorted((_encode(name), _encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _canonical_headers(headers: Mapping[str, str], signed_headers: Sequence[str]) -> str:
    lines = []
    for name in signed_headers:
        if name not in headers:
            raise SignatureDoesNotMatch(f"{_MISMATCH} The signed header {name!r} is not in the request.")
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    return "".join(lines)


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    actual = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        return actual
    # The form body carries the parameters, so an unsigned or mismatched payload is never accepted.
    if declared.strip().lower() != actual:
        raise SignatureDoesNotMatch(f"{_MISMATCH} The x-amz-content-sha256 header does not match the body.")
    return declared


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 dot-segment removal, plus AWS's collapsing of repeated slashes.
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and segments else ""
    return lead + "/".join(segments) + trail


def _signature(secret: str, claim: _Claim, canonical_request: str) -> str:
    string_to_sign = "\n".join(
        [ALGORITHM, claim.stamp, claim.scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in claim.scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
