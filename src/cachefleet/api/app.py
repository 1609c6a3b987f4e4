"""The ASGI edge: ``/`` (AWS Query, POST or GET), ``GET /healthz``, the admin API under ``/admin/v1/``
(``api/admin.py``, JSON); anything else an XML error.

One request: read the body (no more than ``max_request_bytes``) -> verify SigV4 (which says who
signed, and for which service) -> resolve the signer's identity and spend a token of its
throttle -> pick that service's model -> parse the form against it -> authorize the caller's
action on every resource the call names (``api/gatekeeper.py``) -> refuse any input member the
operation does not implement -> run the handler -> serialize the result -> audit the call if it
changes anything. Every ``CacheFleetError`` becomes an ``ErrorResponse`` in exactly one place
(``_error_response``), whatever the method or the stage; anything else is logged here and
answered as ``InternalFailure``, so no traceback ever reaches the wire.

Services on ``/``: ``elasticache``, and with identities configured ``iam`` and ``sts``.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from cachefleet.api import admin, sigv4
from cachefleet.api.context import Context
from cachefleet.api.gatekeeper import Caller, Gatekeeper
from cachefleet.api.handlers import OPERATIONS, Operation
from cachefleet.api.handlers.iam import IAM, STS, iam_operations, sts_operations
from cachefleet.model.errors import (
    CacheFleetError,
    InvalidAction,
    MethodNotAllowed,
    PathNotFound,
    RequestEntityTooLarge,
)
from cachefleet.protocol.query import decode_form, parse_request
from cachefleet.protocol.service import SERVICE_NAME, ServiceModel, load_service_model
from cachefleet.protocol.xml import XML_NAMESPACE, serialize_error, serialize_result

log = logging.getLogger(__name__)

METHODS = ("POST", "GET")


@dataclass(frozen=True)
class ServiceApi:
    """One AWS Query service answered on ``/``: its botocore model and the operations built for it."""

    model: ServiceModel
    operations: Mapping[str, Operation]


def elasticache_api() -> ServiceApi:
    return ServiceApi(load_service_model(SERVICE_NAME), OPERATIONS)


def default_services(ctx: Context) -> dict[str, ServiceApi]:
    services = {SERVICE_NAME: elasticache_api()}
    if ctx.identities is not None:
        services[IAM] = ServiceApi(load_service_model(IAM), iam_operations())
        services[STS] = ServiceApi(load_service_model(STS), sts_operations())
    return services


@dataclass
class _Exchange:
    """What one request has revealed so far, for its audit record whatever stage it ends at."""

    service: str = SERVICE_NAME
    region: str = ""
    access_key_id: str | None = None
    caller: Caller | None = None
    operation: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    resources: tuple[str, ...] = ()


def build_app(ctx: Context, services: Mapping[str, ServiceApi] | None = None) -> Starlette:
    """The ASGI app; ``services`` maps a SigV4 credential-scope service name to what answers it."""
    apis = dict(services) if services is not None else default_services(ctx)
    gate = ctx.gatekeeper
    secret_for = gate.secret_for if gate is not None else ctx.store.secret_for
    max_body = ctx.settings.max_request_bytes

    async def query(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        namespace = XML_NAMESPACE
        seen = _Exchange(region=ctx.settings.region)
        result: dict[str, Any] | None = None
        failure: CacheFleetError | None = None
        try:
            # Only the scope's fields: Starlette's request.url fails on a query string that is not UTF-8.
            path = request.scope.get("path", "")
            if path != "/":
                raise PathNotFound(f"There is nothing at {path[:64]!r}: the API answers at /.")
            if request.method not in METHODS:
                raise MethodNotAllowed(f"The method {request.method} is not allowed: the API answers POST and GET.")
            body = await _body(request, max_body)
            signer = sigv4.verify(
                method=request.method,
                path=request.scope.get("raw_path", b"/").decode("latin-1"),
                query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=request.headers.items(),
                body=body,
                secret_for=secret_for,
                now=ctx.clock(),
                services=apis.keys(),
            )
            seen.service, seen.region, seen.access_key_id = signer.service, signer.region, signer.access_key_id
            api = apis[signer.service]
            namespace = api.model.xml_namespace
            call_ctx = ctx
            if gate is not None:
                principal = gate.identify(signer.access_key_id)
                seen.caller = Caller(
                    principal, signer.region, _client_ip(request), request.headers.get("user-agent", "")
                )
                gate.throttle(principal)
                call_ctx = dataclasses.replace(ctx, caller=principal)
            form = body if request.method == "POST" else request.scope.get("query_string", b"")
            name, params = parse_request(api.model, decode_form(form))
            seen.operation, seen.params = name, params
            if gate is not None and seen.caller is not None:
                wanted = gate.authorization(signer.service, name, params, seen.caller)
                seen.resources = wanted.resources
                gate.authorize(wanted, seen.caller)
            operation = api.operations.get(name)
            if operation is None:
                raise InvalidAction(f"The action {name} is not implemented by this cachefleet version.")
            # Before the handler: a member this version does not implement changes nothing.
            operation.inputs.refuse(params)
            result = await operation.handler(call_ctx, params)
            log.info("%s %s %s ok", request_id, signer.access_key_id, name)
            return _xml(serialize_result(api.model, name, result, request_id), 200, request_id)
        except CacheFleetError as exc:
            failure = exc
            # %r: a message may quote what the client sent, line breaks included.
            log.info("%s %s: %r", request_id, exc.code, exc.message)
            return _error_response(exc, request_id, namespace)
        except Exception:
            failure = CacheFleetError("An internal error occurred.")
            log.exception("%s internal failure", request_id)
            return _error_response(failure, request_id, namespace)
        finally:
            if gate is not None and seen.operation is not None:
                _audit(gate, seen=seen, request=request, request_id=request_id, result=result, failure=failure)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    endpoint = _AnyMethod(query)
    hosts = _AnyMethod(admin.endpoint(ctx))
    app = Starlette(
        routes=[
            Route("/", endpoint),
            Route("/healthz", healthz, methods=["GET"]),
            Route(admin.PREFIX + "{rest:path}", hosts),
        ]
    )
    # Any other path gets the API's XML error too, not Starlette's plain text or its redirect to
    # "/" (whose URL building fails on a query string that is not UTF-8).
    app.router.redirect_slashes = False
    app.router.default = endpoint
    return app


class _AnyMethod:
    """An endpoint that every HTTP method reaches (Starlette answers a function endpoint's other
    methods itself, in plain text), so that those get the API's XML error too."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self._app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _audit(
    gate: Gatekeeper,
    *,
    seen: _Exchange,
    request: Request,
    request_id: str,
    result: Mapping[str, Any] | None,
    failure: CacheFleetError | None,
) -> None:
    assert seen.operation is not None
    gate.audit(
        service=seen.service,
        operation=seen.operation,
        caller=seen.caller,
        access_key_id=seen.access_key_id,
        region=seen.region,
        source_ip=_client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        params=seen.params,
        result=result,
        error=failure,
        request_id=request_id,
        resources=seen.resources,
    )


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused once it passes ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise RequestEntityTooLarge(_too_large(limit))
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"Request body is larger than the {limit} bytes this server accepts."


def _error_response(exc: CacheFleetError, request_id: str, namespace: str) -> Response:
    body = serialize_error(exc.code, exc.message, exc.sender_fault, request_id, namespace)
    response = _xml(body, exc.http_status, request_id)
    if isinstance(exc, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(METHODS)
    return response


def _xml(body: bytes, status: int, request_id: str) -> Response:
    return Response(body, status_code=status, media_type="text/xml", headers={"x-amzn-RequestId": request_id})
