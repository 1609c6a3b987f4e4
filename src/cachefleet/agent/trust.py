"""Who may command the agent: the control plane, proven by a client certificate (mutual TLS).

Two checks, at two layers:

1. The TLS handshake (``server_context``): the client must present a certificate that chains to
   the installation's CA, the only CA the agent trusts (no system CAs are loaded). A client with no
   certificate, or one from another CA, never gets an HTTP exchange.
2. Every request (``PeerCheck``): a certificate of the installation's CA is not enough, since the
   CA also issues certificates to nodes, Sentinels, endpoints and other agents, whose keys live on
   the hosts. The certificate must be the control plane's: extended key usage client
   authentication only (every other role also serves, so it also carries server authentication)
   and the control plane's common name. Anything else answers 403 with a JSON error.

uvicorn does not pass the peer's certificate to the application, so ``PeerCertProtocol`` (its
httptools protocol, per connection) puts it into the request scope as the ASGI TLS extension does
(``scope["extensions"]["tls"]["client_cert_chain"]``, the leaf as PEM).
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cachefleet.hosts.agent_api import ErrorCode, error_body
from cachefleet.tls.certs import CONTROL_PLANE, usages


def server_context(ca_file: Path, cert_file: Path) -> ssl.SSLContext:
    """TLS for the agent's listener: its own certificate (key and certificate in one PEM), and a
    client certificate required, verified against the installation's CA alone."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file)
    context.load_verify_locations(cafile=ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@functools.lru_cache(maxsize=64)
def refusal(pem: str) -> str | None:
    """Why the client certificate ``pem`` (already verified against the CA) may not command the
    agent, or None when it is the control plane's."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "the client certificate cannot be read"
    try:
        found = frozenset(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        found = frozenset()
    if found != usages(CONTROL_PLANE.role):
        return "the client certificate was not issued to the control plane (its key usages are another role's)"
    names = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [CONTROL_PLANE.common_name]:
        return f"the client certificate names {', '.join(map(str, names)) or 'nobody'}, not the control plane"
    return None


class PeerCheck:
    """ASGI middleware: every request must come from the control plane's certificate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
        reason = refusal(chain[0]) if chain else "no client certificate"
        if reason is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(error_body(ErrorCode.FORBIDDEN, reason)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the peer's certificate in each request's scope."""

    _tls: dict[str, Any]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._tls = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None if der else "no client certificate",
            "tls_version": None,
            "cipher_suite": None,
        }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = dict(self.scope.get("extensions") or {})
        extensions["tls"] = self._tls
        self.scope["extensions"] = extensions
