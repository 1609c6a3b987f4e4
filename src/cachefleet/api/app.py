"""The ASGI edge: ``/`` (AWS Query, POST or GET), ``GET /healthz``, the admin API under ``/admin/v1/``
(``api/admin.py``, JSON); anything else an XML error.

One request: read the body -> verify SigV4 (which says who signed, and for which service) -> pick
that service's model -> parse the form against it -> refuse any input member the operation does
not implement -> run the handler -> serialize the result. Every ``CacheFleetError`` becomes an
``ErrorResponse`` in exactly one place (``_error_response``), whatever the method or the stage;
anything else is logged here and answered as ``InternalFailure``, so no traceback ever reaches the
wire.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from cachefleet.api import admin, sigv4
from cachefleet.api.context import Context
from cachefleet.api.handlers import OPERATIONS, Operation
from cachefleet.model.errors import (
    CacheFleetError,
    InvalidAction,
    MalformedQueryString,
    MethodNotAllowed,
    PathNotFound,
)
from cachefleet.protocol.query import decode_form, parse_request
from cachefleet.protocol.service import SERVICE_NAME, ServiceModel, load_service_model
from cachefleet.protocol.xml import XML_NAMESPACE, serialize_error, serialize_result

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
METHODS = ("POST", "GET")


@dataclass(frozen=True)
class ServiceApi:
    """One AWS Query service answered on ``/``: its botocore model and the operations built for it."""

    model: ServiceModel
    operations: Mapping[str, Operation]


def elasticache_api() -> ServiceApi:
    return ServiceApi(load_service_model(SERVICE_NAME), OPERATIONS)


def build_app(ctx: Context, services: Mapping[str, ServiceApi] | None = None) -> Starlette:
    """The ASGI app; ``services`` maps a SigV4 credential-scope service name to what answers it."""
    apis = dict(services) if services is not None else {SERVICE_NAME: elasticache_api()}

    async def query(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        namespace = XML_NAMESPACE
        try:
            # Only the scope's fields: Starlette's request.url fails on a query string that is not UTF-8.
            path = request.scope.get("path", "")
            if path != "/":
                raise PathNotFound(f"There is nothing at {path[:64]!r}: the API answers at /.")
            if request.method not in METHODS:
                raise MethodNotAllowed(f"The method {request.method} is not allowed: the API answers POST and GET.")
            body = await _body(request)
            caller = sigv4.verify(
                method=request.method,
                path=request.scope.get("raw_path", b"/").decode("latin-1"),
                query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=request.headers.items(),
                body=body,
                secret_for=ctx.store.secret_for,
                now=ctx.clock(),
                services=apis.keys(),
            )
            api = apis[caller.service]
            namespace = api.model.xml_namespace
            form = body if request.method == "POST" else request.scope.get("query_string", b"")
            name, params = parse_request(api.model, decode_form(form))
            operation = api.operations.get(name)
            if operation is None:
                raise InvalidAction(f"The action {name} is not implemented by this cachefleet version.")
            # Before the handler: a member this version does not implement changes nothing.
            operation.inputs.refuse(params)
            result = await operation.handler(ctx, params)
            log.info("%s %s %s ok", request_id, caller.access_key_id, name)
            return _xml(serialize_result(api.model, name, result, request_id), 200, request_id)
        except CacheFleetError as exc:
            # %r: a message may quote what the client sent, line breaks included.
            log.info("%s %s: %r", request_id, exc.code, exc.message)
            return _error_response(exc, request_id, namespace)
        except Exception:
            log.exception("%s internal failure", request_id)
            return _error_response(CacheFleetError("An internal error occurred."), request_id, namespace)

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


async def _body(request: Request) -> bytes:
    """The request body, refused once it passes ``MAX_BODY`` (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 9 or int(declared) > MAX_BODY):
        raise MalformedQueryString("The request body is too large.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise MalformedQueryString("The request body is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_response(exc: CacheFleetError, request_id: str, namespace: str) -> Response:
    body = serialize_error(exc.code, exc.message, exc.sender_fault, request_id, namespace)
    response = _xml(body, exc.http_status, request_id)
    if isinstance(exc, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(METHODS)
    return response


def _xml(body: bytes, status: int, request_id: str) -> Response:
    return Response(body, status_code=status, media_type="text/xml", headers={"x-amzn-RequestId": request_id})
