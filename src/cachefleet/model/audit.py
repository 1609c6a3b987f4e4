"""CloudTrail-like records of the calls that change something, built from what the edge knows.

One record per mutating call (any service, allowed or not), in CloudTrail's field names: who
(``userIdentity``), what (``eventSource``, ``eventName``, ``requestParameters``, ``resources``), from
where (``sourceIPAddress``, ``userAgent``), and how it ended (``errorCode``/``errorMessage``, or
``responseElements``). Secrets never reach a record: passwords, tokens and secret keys in the
request or the answer are replaced by CloudTrail's ``HIDDEN_DUE_TO_SECURITY_REASONS``. Policy
documents are kept (they are not secret, and they are what an auditor wants to read). Pure.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cachefleet.model.iam import Principal

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
EVENT_VERSION = "1.08"
# Request and response members whose values are secrets (compared lowercased).
SECRET_MEMBERS = frozenset(
    {
        "authtoken",
        "password",
        "passwords",
        "newpassword",
        "oldpassword",
        "secretaccesskey",
        "sessiontoken",
        "privatekey",
        "token",
    }
)
# Redis ACL access strings: rules that carry a password or its hash (">pw", "<pw", "#hash", "!hash").
# AWS refuses them in an access string, but the refused request is audited as it came.
ACCESS_STRING_MEMBERS = frozenset({"accessstring", "appendaccessstring"})
_PASSWORD_RULE = ">", "<", "#", "!"
# Answer members kept in responseElements: identifiers and states, never whole objects.
_RESPONSE_KEYS = ("Id", "Name", "Arn", "ARN", "Status", "VersionId")


def event_source(service: str) -> str:
    return f"{service}.amazonaws.com"


def user_identity(principal: Principal | None, access_key_id: str | None) -> dict[str, Any]:
    if principal is None:
        # The key was unknown, inactive or its signature wrong: all there is, is the key id it named.
        identity: dict[str, Any] = {"type": "Unknown"}
        if access_key_id:
            identity["accessKeyId"] = access_key_id
        return identity
    identity = {
        "type": principal.kind,
        "principalId": principal.user_id,
        "arn": principal.arn,
        "accountId": principal.account,
        "accessKeyId": principal.access_key_id,
    }
    if principal.user_name is not None:
        identity["userName"] = principal.user_name
    return identity


def audit_record(
    *,
    when: datetime,
    service: str,
    operation: str,
    region: str,
    source_ip: str,
    user_agent: str,
    principal: Principal | None,
    access_key_id: str | None,
    params: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    error: tuple[str, str] | None,
    request_id: str,
    event_id: str,
    resources: Sequence[str],
    account: str,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(principal, access_key_id),
        "eventTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": event_source(service),
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent[:256],
        "requestParameters": redact(params) if params else None,
        "responseElements": response_elements(result) if error is None else None,
        "requestID": request_id,
        "eventID": event_id,
        "readOnly": False,
        "resources": [{"ARN": arn} for arn in resources if arn != "*"],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
    }
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
    return record


def redact(value: Any) -> Any:
    """``value`` with its secret members hidden and its keys in CloudTrail's lowerCamelCase."""
    if isinstance(value, Mapping):
        return {_camel(str(k)): _redacted_member(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return _plain(value)


def _redacted_member(name: str, value: Any) -> Any:
    lowered = name.lower()
    if lowered in SECRET_MEMBERS:
        return HIDDEN
    if lowered in ACCESS_STRING_MEMBERS and isinstance(value, str):
        return " ".join(HIDDEN if rule.startswith(_PASSWORD_RULE) else rule for rule in value.split())
    return redact(value)


def response_elements(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The identifiers and states of an answer, one level into its objects (never secrets)."""
    if not result:
        return None
    kept: dict[str, Any] = {}
    for name, value in result.items():
        if isinstance(value, Mapping):
            inner = {
                _camel(k): _plain(v)
                for k, v in value.items()
                if k.endswith(_RESPONSE_KEYS) and k.lower() not in SECRET_MEMBERS and _is_scalar(v)
            }
            if inner:
                kept[_camel(name)] = inner
        elif name.endswith(_RESPONSE_KEYS) and name.lower() not in SECRET_MEMBERS and _is_scalar(value):
            kept[_camel(name)] = _plain(value)
    return kept or None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | datetime)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]
