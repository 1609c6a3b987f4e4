"""Raw SigV4-signed requests, for what boto3 will not send: unknown actions, garbage bodies, old clocks."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.server import ServerProcess


def sign(url: str, body: bytes, key_id: str, secret: str, *, when: dt.datetime | None = None) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    signer = SigV4Auth(Credentials(key_id, secret), "elasticache", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        # botocore stamps the current time; a fixed stamp lets tests send a stale signature.
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        signature = signer.signature(string_to_sign, request)
        signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def signed_post(
    server: ServerProcess, form: dict[str, str] | bytes, *, secret: str | None = None, **kwargs: Any
) -> httpx.Response:
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    key_id, real_secret = server.credentials()
    url = server.endpoint_url + "/"
    headers = sign(url, body, key_id, secret or real_secret, **kwargs)
    return httpx.post(url, content=body, headers=headers, timeout=10)
