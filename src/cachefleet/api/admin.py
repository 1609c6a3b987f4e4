"""The installation's own admin API: hosts added, listed, drained and removed (docs/architecture.md
"Hosts and placement"; why not ElastiCache actions: docs/decisions.md).

JSON over HTTP under ``/admin/v1/``, signed with SigV4 like every other call (credential scope
service ``cachefleet``), and allowed to the account's root identity only (the admin key of
``DIR/credentials``). ``cachefleet host ...`` is its client.

- ``GET /admin/v1/hosts``: ``hosts``; ``GET /admin/v1/hosts/ID``: ``host``.
- ``POST /admin/v1/hosts`` with ``id``, ``address``, ``zone``, ``agent_port``, ``csr`` (PEM) and
  optionally ``subnet``, ``max_nodes``, ``memory_bytes``: ``host``, ``certificate``, ``ca``.
- ``POST /admin/v1/hosts/ID/drain`` and ``.../undrain``: ``host``.
- ``DELETE /admin/v1/hosts/ID``: ``host``, now ``removing``; the record goes once it holds no node.

Adding a host answers the agent's certificate, issued by the installation's CA for the key whose
request (``csr``) the client sent, and the CA certificate: the client writes them where the agent
reads them (``ca.pem``, ``tls/agent.pem``) beside the key it made, which never crosses the wire.

Errors are ``{"error": {"code", "message"}}`` with the fault's HTTP status, as the agent's API
answers (``hosts/agent_api.py``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cachefleet.api import sigv4
from cachefleet.api.context import Context
from cachefleet.model.errors import (
    AuthFailure,
    CacheFleetError,
    HostAlreadyExists,
    InvalidHostState,
    InvalidParameterValue,
    InvalidSubnet,
    MethodNotAllowed,
    PathNotFound,
)
from cachefleet.model.hosts import HOST, LOCAL_HOST, LOCAL_SUBNET_PREFIX, HostSpec, HostState, HostStatus, Subnet
from cachefleet.model.lifecycle import Event
from cachefleet.store import statuses
from cachefleet.store.hosts import Host, all_hosts, find_host, nodes_on, subnets
from cachefleet.store.kinds import HOSTS

log = logging.getLogger(__name__)

SERVICE = "cachefleet"  # the SigV4 credential scope's service for this API
PREFIX = "/admin/v1/"
MAX_BODY = 64 << 10
_HOST_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SUBNET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,254}")


class Forbidden(AuthFailure):
    code = "AccessDenied"


# -- views ---------------------------------------------------------------------------------------


def host_view(store_host: Host, nodes: int) -> dict[str, Any]:
    spec, status = store_host.spec, store_host.status
    view: dict[str, Any] = {
        "id": spec.id,
        "address": spec.address,
        "subnets": [{"id": s.id, "zone": s.zone} for s in spec.subnets],
        "zones": list(spec.zones),
        "agent_port": spec.agent_port,
        "embedded": spec.embedded,
        "max_nodes": spec.max_nodes,
        "memory_bytes": spec.memory_bytes,
        "draining": spec.draining,
        "status": status.status.value,
        "nodes": nodes,
        "unreachable_since": status.unreachable_since,
        "message": status.message,
        "agent_version": status.agent_version,
        "reported_memory_bytes": status.reported_memory_bytes,
    }
    return view


def _view(ctx: Context, host_id: str) -> dict[str, Any]:
    found = find_host(ctx.store, ctx.local_host, host_id)
    if found is None:
        raise HOSTS.not_found(host_id)
    return host_view(found, nodes_on(ctx.store, found.spec.id))


# -- operations ----------------------------------------------------------------------------------


def list_hosts(ctx: Context) -> dict[str, Any]:
    return {"hosts": [host_view(h, nodes_on(ctx.store, h.spec.id)) for h in all_hosts(ctx.store, ctx.local_host)]}


def add_host(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    host_id = _text(body, "id").lower()
    if not _HOST_ID.fullmatch(host_id):
        raise InvalidParameterValue(
            "A host id has 1-63 lowercase letters, digits and hyphens, and starts and ends with a letter or digit."
        )
    address = _address(_text(body, "address"))
    zone = _text(body, "zone")
    if zone not in ctx.settings.azs:
        raise InvalidParameterValue(f"Invalid zone {zone}. Zones of this installation: {', '.join(ctx.settings.azs)}.")
    subnet = _subnet(ctx, body.get("subnet", f"subnet-{zone}"), zone)
    port = _integer(body, "agent_port", 1, 65535)
    max_nodes = _integer(body, "max_nodes", 1, 10_000, required=False)
    memory = _integer(body, "memory_bytes", 1, 1 << 60, required=False)
    csr = _text(body, "csr")
    existing = all_hosts(ctx.store, ctx.local_host)
    if any(h.spec.id == host_id for h in existing):
        raise HostAlreadyExists(f"Host {host_id} already exists.")
    for other in existing:
        if other.spec.address == address and not other.spec.embedded:
            raise InvalidParameterValue(f"Host {other.spec.id} already has the address {address}.")
    if ctx.issue_agent_certificate is None:
        raise InvalidParameterValue("This server has no installation CA to issue the agent's certificate with.")
    try:
        certificate, ca = ctx.issue_agent_certificate(csr, host_id, address)
    except ValueError as exc:
        raise InvalidParameterValue(f"The field csr is not a usable certificate signing request: {exc}") from None
    spec = HostSpec(
        id=host_id,
        address=address,
        subnets=(Subnet(subnet, zone),),
        created_at=ctx.clock(),
        agent_port=port,
        max_nodes=max_nodes,
        memory_bytes=memory,
    )
    with ctx.store.transaction():
        if not statuses.create(ctx.store, HOSTS, host_id, spec):
            raise HostAlreadyExists(f"Host {host_id} already exists.")
        ctx.store.add_event(host_id, HOSTS.name, f"Host {host_id} added in {zone} ({address})", ctx.clock())
    log.info("host %s added: %s in %s, subnet %s", host_id, address, zone, subnet)
    return {"host": _view(ctx, host_id), "certificate": certificate, "ca": ca}


def drain_host(ctx: Context, host_id: str, *, draining: bool) -> dict[str, Any]:
    """Drain (or undrain) a host: its nodes move off it; it takes no new node meanwhile."""
    host = _stored(ctx, host_id)
    if host.spec.removing:
        raise InvalidHostState(f"Host {host.spec.id} is being removed.")
    event = Event.DRAIN if draining else Event.UNDRAIN
    with ctx.store.transaction():
        if host.spec.draining != draining:
            HOSTS.put_spec(ctx.store, host.spec.id, host.spec.with_drain(draining))
        if HOST.allows(host.status.status, event):
            statuses.change(ctx.store, HOSTS, host.spec.id, event)
        verb = "draining" if draining else "taking new nodes again"
        ctx.store.add_event(host.spec.id, HOSTS.name, f"Host {host.spec.id} {verb}", ctx.clock())
    return {"host": _view(ctx, host.spec.id)}


def remove_host(ctx: Context, host_id: str) -> dict[str, Any]:
    if host_id.lower() == LOCAL_HOST:
        raise InvalidParameterValue("The embedded host cannot be removed (drain it to keep nodes off it).")
    host = _stored(ctx, host_id)
    with ctx.store.transaction():
        placed = nodes_on(ctx.store, host.spec.id)
        if placed:
            raise InvalidHostState(
                f"Host {host.spec.id} runs {placed} node(s): drain it first (a lost host's nodes are replaced first)."
            )
        HOSTS.put_spec(ctx.store, host.spec.id, replace(host.spec, removing=True))
        if host.status.status is not HostState.REMOVING:
            statuses.change(ctx.store, HOSTS, host.spec.id, Event.DELETE)
        ctx.store.add_event(host.spec.id, HOSTS.name, f"Host {host.spec.id} being removed", ctx.clock())
    return {"host": _view(ctx, host.spec.id)}


def _stored(ctx: Context, host_id: str) -> Host:
    """The host's record; the embedded host's is made the first time an operator changes it."""
    lowered = host_id.lower()
    if lowered == LOCAL_HOST and HOSTS.find(ctx.store, LOCAL_HOST) is None:
        with ctx.store.transaction():
            statuses.create(ctx.store, HOSTS, LOCAL_HOST, ctx.local_host, HostStatus(HostState.ACTIVE))
    found = HOSTS.find(ctx.store, lowered)
    if found is None:
        raise HOSTS.not_found(host_id)
    return found


# -- checks --------------------------------------------------------------------------------------


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(f"The field {name} must be a non-empty string.")
    return value


def _integer(body: dict[str, Any], name: str, low: int, high: int, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidParameterValue(f"The field {name} must be an integer from {low} to {high}.")
    return value


def _address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameterValue(f"{text} is not an IP address.") from None
    if address.version != 4 or address.is_unspecified or address.is_multicast:
        raise InvalidParameterValue(f"{text} cannot be a host's address: an IPv4 unicast address is needed.")
    return str(address)


def _subnet(ctx: Context, value: Any, zone: str) -> str:
    if not isinstance(value, str) or not _SUBNET_ID.fullmatch(value) or value.startswith(LOCAL_SUBNET_PREFIX):
        raise InvalidSubnet(
            f"Invalid subnet {value!r}: letters, digits and hyphens, not starting with {LOCAL_SUBNET_PREFIX}."
        )
    other = subnets(ctx.store, ctx.local_host).get(value)
    if other is not None and other != zone:
        raise InvalidSubnet(f"Subnet {value} is in {other}: a subnet's hosts are all in one zone.")
    return value


# -- the route -----------------------------------------------------------------------------------

Operation = Callable[[Context, dict[str, Any]], dict[str, Any]]


def _route(method: str, path: str) -> Operation:
    parts = path.removeprefix(PREFIX).strip("/").split("/")
    if parts == ["hosts"]:
        if method == "GET":
            return lambda ctx, _: list_hosts(ctx)
        if method == "POST":
            return add_host
        raise MethodNotAllowed(f"The method {method} is not allowed on {path}.")
    if len(parts) == 2 and parts[0] == "hosts":
        host_id = parts[1]
        if method == "GET":
            return lambda ctx, _: {"host": _view(ctx, host_id)}
        if method == "DELETE":
            return lambda ctx, _: remove_host(ctx, host_id)
        raise MethodNotAllowed(f"The method {method} is not allowed on {path}.")
    if len(parts) == 3 and parts[0] == "hosts" and parts[2] in ("drain", "undrain") and method == "POST":
        host_id, draining = parts[1], parts[2] == "drain"
        return lambda ctx, _: drain_host(ctx, host_id, draining=draining)
    raise PathNotFound(f"There is nothing at {path[:64]!r} in the admin API.")


def endpoint(ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    """The ASGI endpoint of ``/admin/v1/...``."""

    async def admin(request: Request) -> Response:
        try:
            path = request.scope.get("path", "")
            body = await request.body()
            if len(body) > MAX_BODY:
                raise InvalidParameterValue("The request body is too large.")
            caller = sigv4.verify(
                method=request.method,
                path=request.scope.get("raw_path", b"/").decode("latin-1"),
                query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=request.headers.items(),
                body=body,
                secret_for=ctx.gatekeeper.secret_for if ctx.gatekeeper is not None else ctx.store.secret_for,
                now=ctx.clock(),
                services=(SERVICE,),
            )
            if ctx.root_key_id is None or caller.access_key_id != ctx.root_key_id:
                raise Forbidden("Only the account's root identity may manage hosts.")
            operation = _route(request.method, path)
            result = operation(ctx, _json(body))
            log.info("admin %s %s %s ok", caller.access_key_id, request.method, path)
            return JSONResponse(result)
        except CacheFleetError as exc:
            log.info("admin %s %s: %s %r", request.method, request.scope.get("path", ""), exc.code, exc.message)
            return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.http_status)
        except Exception:
            log.exception("admin %s internal failure", request.method)
            error = {"code": "InternalFailure", "message": "An internal error occurred."}
            return JSONResponse({"error": error}, status_code=500)

    return admin


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidParameterValue("The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise InvalidParameterValue("The request body must be a JSON object.")
    return data
