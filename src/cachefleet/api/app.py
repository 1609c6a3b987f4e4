"""The ASGI edge: ``POST /`` (AWS Query), ``GET /healthz``.

One request: read the form -> verify SigV4 -> parse against the service model -> run the handler ->
serialize the result. Every ``CacheFleetError`` becomes an ``ErrorResponse`` in exactly one place
(``_error_response``); anything else is logged here and answered as ``InternalFailure``, so no
traceback ever reaches the wire.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cachefleet.api import sigv4
from cachefleet.api.context import Context
from cachefleet.api.handlers import HANDLERS
from cachefleet.model.errors import CacheFleetError, InvalidAction, MalformedQueryString
from cachefleet.protocol.query import parse_request
from cachefleet.protocol.service import load_service_model
from cachefleet.protocol.xml import serialize_error, serialize_result

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20


def build_app(ctx: Context) -> Starlette:
    model = load_service_model()

    async def query(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            operation, params = await _authenticated_params(ctx, model, request)
            handler = HANDLERS.get(operation)
            if handler is None:
                raise InvalidAction(f"The action {operation} is not implemented by this cachefleet version.")
            result = await handler(ctx, params)
            log.info("%s %s ok", request_id, operation)
            return _xml(serialize_result(model, operation, result, request_id), 200, request_id)
        except CacheFleetError as exc:
            log.info("%s %s: %s", request_id, exc.code, exc.message)
            return _error_response(exc, request_id)
        except Exception:
            log.exception("%s internal failure", request_id)
            return _error_response(CacheFleetError("An internal error occurred."), request_id)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/", query, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def _authenticated_params(ctx: Context, model: Any, request: Request) -> tuple[str, dict[str, Any]]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise MalformedQueryString("The request body is too large.")
    sigv4.verify(
        method=request.method,
        path=request.scope.get("raw_path", b"/").decode("latin-1"),
        query=request.url.query,
        headers=dict(request.headers),
        body=body,
        secret_for=ctx.store.secret_for,
        now=ctx.clock(),
    )
    try:
        text = body.decode() if request.method == "POST" else request.url.query
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise MalformedQueryString("The request is not valid form-encoded UTF-8.") from exc
    return parse_request(model, pairs)


def _error_response(exc: CacheFleetError, request_id: str) -> Response:
    body = serialize_error(exc.code, exc.message, exc.sender_fault, request_id)
    return _xml(body, exc.http_status, request_id)


def _xml(body: bytes, status: int, request_id: str) -> Response:
    return Response(body, status_code=status, media_type="text/xml", headers={"x-amzn-RequestId": request_id})
