"""The API edge in this process: the real ASGI app over a real SQLite store, no reconciler, no server.

Requests are real: signed with botocore's SigV4 signer and sent through httpx's ASGI transport (on
an event loop of its own, so tests stay synchronous), or made by a real boto3 client whose HTTP
sending is routed into the app (botocore's ``before-send`` event), so serialization, signing,
parsing and modeled exceptions are boto3's own. Nothing reconciles, so resources stay in the
status the API wrote (``creating``...): enough for the checks the edge makes, in milliseconds.
Integration tests keep the real server and real engines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials

from cachefleet.api.app import build_app
from cachefleet.api.context import Context
from cachefleet.engines.installed import EngineBinary
from cachefleet.settings import Settings
from cachefleet.store import statuses
from cachefleet.store.iam import AccessKey
from cachefleet.store.kinds import KINDS
from cachefleet.store.snapshots import LocalBuckets
from cachefleet.store.sqlite import Store
from cachefleet.wiring import build_api_security

KEY_ID = "AKIAINPROCESSTEST001"
SECRET = "in-process-secret-0123456789abcdefghijklmn"
URL = "http://testserver/"
REGION = "us-east-1"
# What the host has is not asked for: these stand for Debian 12's packages.
ENGINES = (
    EngineBinary("redis", "7.0.15", "/usr/bin/redis-server"),
    EngineBinary("memcached", "1.6.18", "/usr/bin/memcached"),
)
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
NODE_TYPE = "cache.t4g.micro"


class InProcessApi:
    def __init__(self, data_dir: Path, **settings_overrides: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(data_dir / "state.db")
        settings = Settings(data_dir=data_dir, **settings_overrides)
        # The server's own identities, keys, throttle and audit; KEY_ID is the root identity's key.
        self.api_security = build_api_security(settings, self.store, self.now)
        self.api_security.identities.add_access_key(AccessKey(KEY_ID, None, "Active", self.now()), SECRET)
        exports = LocalBuckets(settings.exports_path)
        self.ctx = Context(
            store=self.store,
            settings=settings,
            engines=ENGINES,
            clock=self.now,
            exports=exports,
            root_key_id=KEY_ID,
            issue_agent_certificate=_test_certificate,
            gatekeeper=self.api_security.gatekeeper,
            identities=self.api_security.identities,
            kms=self.api_security.kms,
        )
        self._loop = asyncio.new_event_loop()
        self.app = build_app(self.ctx)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=URL)
        self.requests = 0  # every request the app answered, for the fuzz figures

    def now(self) -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        self._loop.run_until_complete(self.http.aclose())
        self._loop.close()
        self.api_security.identities.close()
        self.store.close()

    def mark_available(self, kind: str, resource_id: str) -> None:
        """Stand in for the reconciler: the resource is ``available`` (its other status fields kept),
        written through the one status writer, so only along a row of its lifecycle table."""
        record_kind = KINDS[kind]
        current = record_kind.get(self.store, resource_id).status
        available = replace(current, status=type(current.status)("available"))
        assert statuses.write(self.store, record_kind, resource_id, available), f"{kind} {resource_id}"

    # Raw requests

    def send(
        self,
        method: str,
        *,
        body: bytes = b"",
        query: str = "",
        headers: Mapping[str, str] | Sequence[tuple[bytes, bytes]] | None = None,
    ) -> Any:
        """One request exactly as given (signed or not by the caller); the app's response."""
        self.requests += 1
        request = self.http.request(method, URL + (f"?{query}" if query else ""), content=body, headers=headers)
        return self._loop.run_until_complete(request)

    def raw(
        self,
        method: str,
        *,
        path: bytes = b"/",
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
    ) -> RawResponse:
        """One request straight into the ASGI app, bytes as they would come off the wire (an HTTP
        client library would refuse to send some of them)."""
        self.requests += 1
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in headers],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        return self._loop.run_until_complete(_call(self.app, scope, body))

    def post(self, form: Mapping[str, str] | Sequence[tuple[str, str]] | bytes, **extra_headers: str) -> Any:
        """A form POST signed as boto3 signs it (``form`` as pairs, or a raw body)."""
        body = form if isinstance(form, bytes) else urlencode(list(_pairs(form)), quote_via=quote).encode()
        headers = self.sign("POST", URL, body, {"Content-Type": FORM_TYPE, **extra_headers})
        return self.send("POST", body=body, headers=headers)

    def sign(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        service: str = "elasticache",
        key: tuple[str, str] = (KEY_ID, SECRET),
    ) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(Credentials(*key), service, REGION).add_auth(request)
        return dict(request.headers.items())

    def admin(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        signed: bool = True,
        key: tuple[str, str] = (KEY_ID, SECRET),
    ) -> Any:
        """A call to the admin API (``/admin/v1/...``, JSON), signed as ``cachefleet host`` signs it."""
        self.requests += 1
        data = json.dumps(body).encode() if body is not None else b""
        url = URL.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if signed:
            headers = self.sign(method, url, data, headers, service="cachefleet", key=key)
        return self._loop.run_until_complete(self.http.request(method, url, content=data, headers=headers))

    # A real boto3 client, sending into the app

    def client(self, service: str = "elasticache", key: tuple[str, str] = (KEY_ID, SECRET)) -> Any:
        client = boto3.client(
            service,
            endpoint_url=URL.rstrip("/"),
            region_name=REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=Config(retries={"max_attempts": 1}),
        )
        client.meta.events.register("before-send", self._send_in_process)
        return client

    def _send_in_process(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        response = self.send(request.method, body=request.body or b"", headers=dict(request.headers.items()))
        # botocore reads the body through ``raw.stream()``.
        return AWSResponse(request.url, response.status_code, dict(response.headers), _Raw(response.content))


@dataclass
class RawResponse:
    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # names lowercased
    content: bytes = b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> RawResponse:
    response = RawResponse()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status_code = message["status"]
            response.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            response.content += message.get("body", b"")

    await app(scope, receive, send)
    return response


class _Raw:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def _pairs(form: Mapping[str, str] | Sequence[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    yield from (form.items() if isinstance(form, Mapping) else form)


def _test_certificate(csr: str, host_id: str, address: str) -> tuple[str, str]:
    """Stands in for the installation CA: the admin API's tests look at the hosts, not at certificates."""
    return f"certificate for {host_id} at {address}", "ca certificate"
