"""The agent's HTTP API (``/v1``, JSON), served over mutual TLS (``agent.trust``).

Routes and shapes are in docs/architecture.md ("Host agents"); the wire format is built and read
only through ``hosts.agent_api``. Each route is the ``Host`` protocol's operation of the same name
on the agent's ``LocalHost``, through the ``Supervisor`` where supervision cares (start, stop,
reload, remove). Answers that change something carry ``seq``, the number of the last event at that
moment, so a client can tell which events its own call already accounts for.

No exception reaches the wire as a traceback: bad input is 400 ``InvalidArgument``, a full port
range 409 ``InsufficientCapacity``, anything the host fails at 500 ``OperationFailed`` (logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from cachefleet.agent.supervisor import Supervisor
from cachefleet.agent.trust import PeerCheck
from cachefleet.hosts import agent_api as api
from cachefleet.hosts import files
from cachefleet.hosts.agent_api import ErrorCode, EventKind
from cachefleet.model.errors import InsufficientCacheClusterCapacity
from cachefleet.model.nodes import PORT_SLOT, NodeKey, node_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """What ``GET /v1/info`` says of this host."""

    host_id: str
    zone: str
    address: str
    version: str
    port_range: tuple[int, int]


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


Handler = Callable[[Request], Awaitable[Response]]


def build_app(supervisor: Supervisor, identity: Identity) -> PeerCheck:
    local, events = supervisor.local, supervisor.events

    def answer(data: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(data, status_code=status)

    def changed(**data: Any) -> JSONResponse:
        return answer({**data, "epoch": events.epoch, "seq": events.last_seq})

    async def info(_: Request) -> Response:
        nodes = local.nodes()
        running = sum(1 for key in nodes if local.pid(key) is not None)
        low, high = identity.port_range
        return answer(
            {
                "host_id": identity.host_id,
                "zone": identity.zone,
                "address": identity.address,
                "agent_version": identity.version,
                "api_versions": list(api.VERSIONS),
                "nodes_root": str(local.root),
                "capacity": {
                    "cpus": os.cpu_count() or 1,
                    "memory_bytes": _meminfo("MemTotal"),
                    "ports": high - low + 1,
                },
                "usage": {
                    "nodes": len(nodes),
                    "running": running,
                    "memory_available_bytes": _meminfo("MemAvailable"),
                },
            }
        )

    async def nodes(_: Request) -> Response:
        seq = events.last_seq  # before reading: an event racing the read is delivered again, never lost
        listed = []
        for key in local.nodes():
            record = supervisor.supervised(key)
            listed.append(
                {
                    "cluster": key.cluster_id,
                    "node": key.node_id,
                    "ports": local.ports(key),
                    "pid": local.pid(key),
                    "supervised": record is not None,
                }
            )
        return answer({"epoch": events.epoch, "seq": seq, "nodes": listed})

    async def allocate(request: Request) -> Response:
        body = await _json(request)
        wanted = api.port_requests_from_json(body.get("requests"))
        taken = [int(p) for p in body.get("taken", [])]
        before = {(w.node, w.slot): local.port_of(w.node, w.slot) for w in wanted}
        ports = await asyncio.to_thread(local.allocate_ports, wanted, taken)
        new: dict[NodeKey, dict[str, int]] = {}
        for w, port in zip(wanted, ports, strict=True):
            if before[(w.node, w.slot)] != port:
                new.setdefault(w.node, {})[w.slot] = port
        for key, slots in new.items():
            events.emit(EventKind.PORTS, key, ports=slots)
        return changed(ports=ports)

    async def port_taken(request: Request) -> Response:
        slot = request.query_params.get("slot", PORT_SLOT)
        return answer({"taken": await asyncio.to_thread(local.port_taken, _key(request), slot)})

    async def start(request: Request) -> Response:
        spec = api.spec_from_json(await _json(request))
        pid = await supervisor.start(_key(request), spec)
        return changed(pid=pid)

    async def stop(request: Request) -> Response:
        body = await _json(request)
        timeout = float(body.get("timeout", 5.0))
        if not 0 <= timeout <= 600:
            raise ValueError(f"invalid timeout {timeout!r}")
        await supervisor.stop(_key(request), timeout)
        return changed()

    async def reload(request: Request) -> Response:
        body = await _json(request)
        spec = api.spec_from_json(body.get("spec"))
        await supervisor.reload(_key(request), spec, api.signal_from_name(body.get("signal")))
        return changed()

    async def remove(request: Request) -> Response:
        await supervisor.remove(_key(request))
        return changed()

    async def read_file(request: Request) -> Response:
        key, name = _key(request), request.path_params["name"]
        path = local.file_path(key, name)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise _Refused(404, ErrorCode.NOT_FOUND, f"node {key} has no file {name}") from None
        # One open file for the digest and the bytes: Redis replaces dump.rdb by renaming a new file
        # over it, which leaves this one (and so what the digest describes) intact.
        size = os.fstat(handle.fileno()).st_size
        digest = await asyncio.to_thread(_sha256_of, handle)
        handle.seek(0)
        headers = {"content-length": str(size), api.DIGEST_HEADER: api.digest_header(digest)}
        return StreamingResponse(_chunks(handle), media_type="application/octet-stream", headers=headers)

    async def write_file(request: Request) -> Response:
        key, name = _key(request), request.path_params["name"]
        size = request.headers.get("content-length")
        digest = api.digest_from_header(request.headers.get(api.DIGEST_HEADER))
        if digest is None:
            raise ValueError(f"an upload needs a {api.DIGEST_HEADER} header with its sha-256")
        path = local.file_path(key, name, writable=True)
        tmp = path.with_name(f".{name}.upload-{secrets.token_hex(4)}")
        hasher, written = hashlib.sha256(), 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
                    hasher.update(chunk)
                    written += len(chunk)
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            if (size is not None and int(size) != written) or hasher.hexdigest() != digest:
                raise _Refused(
                    422, ErrorCode.DIGEST_MISMATCH, f"received {written} bytes that do not match the size or digest"
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        events.emit(EventKind.FILES, key, names=[name])
        return changed(size=written, sha256=digest)

    async def event_list(request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "0"))
            wait = float(request.query_params.get("wait", "0"))
        except ValueError:
            raise ValueError("after is an event number, wait a number of seconds") from None
        if after < 0 or not 0 <= wait <= api.MAX_WAIT:
            raise ValueError(f"after >= 0 and 0 <= wait <= {api.MAX_WAIT:g}")
        found = await events.wait_after(after, wait)
        if found is None:
            return answer({"epoch": events.epoch, "reset": True, "seq": events.last_seq, "events": []})
        return answer({"epoch": events.epoch, "seq": events.last_seq, "events": [api.event_to_json(e) for e in found]})

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except _Refused as exc:
                return answer(api.error_body(exc.code, exc.message), exc.status)
            except InsufficientCacheClusterCapacity as exc:
                return answer(api.error_body(ErrorCode.CAPACITY, exc.message), 409)
            except (ValueError, KeyError, TypeError) as exc:
                return answer(api.error_body(ErrorCode.INVALID, _message(exc)), 400)
            except Exception:
                log.exception("%s %s failed", request.method, request.url.path)
                return answer(api.error_body(ErrorCode.FAILED, "the agent could not do it; see its log"), 500)

        return run

    node = "/nodes/{cluster}/{node}"
    routes = [
        Route("/info", guarded(info), methods=["GET"]),
        Route("/nodes", guarded(nodes), methods=["GET"]),
        Route("/ports", guarded(allocate), methods=["POST"]),
        Route("/events", guarded(event_list), methods=["GET"]),
        Route(node, guarded(remove), methods=["DELETE"]),
        Route(node + "/port-taken", guarded(port_taken), methods=["GET"]),
        Route(node + "/start", guarded(start), methods=["POST"]),
        Route(node + "/stop", guarded(stop), methods=["POST"]),
        Route(node + "/reload", guarded(reload), methods=["POST"]),
        Route(node + "/files/{name}", guarded(read_file), methods=["GET"]),
        Route(node + "/files/{name}", guarded(write_file), methods=["PUT"]),
    ]

    async def unknown(request: Request) -> Response:
        path = request.url.path
        if path == api.PREFIX or path.startswith(api.PREFIX + "/"):
            return answer(api.error_body(ErrorCode.NOT_FOUND, f"no route {request.method} {path}"), 404)
        return answer(
            api.error_body(
                ErrorCode.UNKNOWN_VERSION,
                f"this agent speaks API versions {', '.join(api.VERSIONS)}",
                versions=list(api.VERSIONS),
            ),
            404,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return await unknown(request)
        code = ErrorCode.INVALID if status < 500 else ErrorCode.FAILED
        return answer(api.error_body(code, f"{request.method} {request.url.path}: HTTP {status}"), status)

    app = Starlette(routes=[Mount(api.PREFIX, routes=routes)], exception_handlers={HTTPException: http_error})
    return PeerCheck(app)


def _key(request: Request) -> NodeKey:
    return node_key(api.check_name(request.path_params["cluster"]), api.check_name(request.path_params["node"]))


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    return body


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _sha256_of(handle: Any) -> str:
    hasher = hashlib.sha256()
    while chunk := handle.read(files.CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


async def _chunks(handle: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, files.CHUNK):
            yield chunk
    finally:
        handle.close()


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
