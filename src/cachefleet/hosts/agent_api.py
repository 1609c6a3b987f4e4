"""The agent's HTTP API, as both ends see it: paths, JSON shapes, error codes, event kinds.

``cachefleet agent`` serves it (``cachefleet.agent.app``) and ``RemoteHost`` speaks it
(``hosts.remote``); both build and read the wire format only through this module, so the two
cannot drift apart. The routes are described in docs/architecture.md (section "Host agents").

Versioning: every path starts with ``/v1``. Within a version, changes are additive only (a new
field, a new route, a new event kind); readers ignore what they do not know. A change that would
break a reader gets a new version, served beside the old one until no control plane speaks it.
An unknown version answers 404 with error code ``UnknownVersion`` and the versions spoken.
"""

from __future__ import annotations

import base64
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachefleet.hosts.base import PortRequest, ProcessSpec, RestartPolicy
from cachefleet.model.nodes import PORT_SLOT, NodeKey, node_key

VERSION = "v1"
VERSIONS = (VERSION,)
PREFIX = f"/{VERSION}"
# Cluster ids, node ids and file names: one path component each (as the local host requires).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# RFC 9530: the digest of the whole file a transfer carries, ``sha-256=:<base64>:``.
DIGEST_HEADER = "Repr-Digest"
# A long poll for events waits at most this long (seconds) before answering with nothing.
MAX_WAIT = 30.0


class ErrorCode:
    """The ``code`` of an error answer; RemoteHost maps each to the control plane's errors."""

    NOT_FOUND = "NotFound"  # no such route, node or file
    UNKNOWN_VERSION = "UnknownVersion"
    INVALID = "InvalidArgument"  # a bad name, slot, signal or body: the caller's bug
    CAPACITY = "InsufficientCapacity"  # no free port left on the host
    DIGEST_MISMATCH = "DigestMismatch"  # an upload's bytes do not match its size or digest
    FORBIDDEN = "Forbidden"  # the client certificate is not the control plane's
    FAILED = "OperationFailed"  # the host could not do it (a process that will not die, a full disk)


class EventKind:
    STARTED = "started"  # by a request, or adopted at the agent's start (``adopted``: true)
    EXITED = "exited"  # ``expected``: stopped by a request, or died
    RESTARTED = "restarted"  # by the agent itself after an exit (``replicaof`` when as a replica)
    WAITING = "waiting"  # a restart waits (``reason``: for the Sentinels' verdict, for a backoff)
    RESTART_FAILED = "restart-failed"  # ``reason``
    FILES = "files"  # ``names`` were written into the node directory
    PORTS = "ports"  # ``ports``: slot -> port, newly persisted
    REMOVED = "removed"


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str
    node: NodeKey
    at: float  # seconds since the epoch, on the agent's clock
    fields: Mapping[str, Any] = field(default_factory=dict)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def node_path(key: NodeKey, *rest: str) -> str:
    return "/".join((PREFIX, "nodes", key.cluster_id, key.node_id, *rest))


def check_name(part: str) -> str:
    if not NAME.fullmatch(part):
        raise ValueError(f"invalid name {part!r}")
    return part


# -- JSON codecs --------------------------------------------------------------------------------


def policy_to_json(policy: RestartPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "master_name": policy.master_name,
        "sentinels": [[host, port] for host, port in policy.sentinels],
        "address": policy.address,
        "down_after_ms": policy.down_after_ms,
        "password": policy.password,
        "tls": policy.tls,
    }


def policy_from_json(data: Any) -> RestartPolicy | None:
    if data is None:
        return None
    sentinels = tuple((str(host), _port(port)) for host, port in _list(data["sentinels"]))
    down_after = data.get("down_after_ms", 1000)
    if not isinstance(down_after, int) or isinstance(down_after, bool) or not 1 <= down_after <= 3_600_000:
        raise ValueError(f"invalid down_after_ms {down_after!r}")
    return RestartPolicy(
        master_name=_text(data["master_name"]),
        sentinels=sentinels,
        address=_text(data["address"]),
        down_after_ms=down_after,
        password=None if data.get("password") is None else _text(data["password"]),
        tls=data.get("tls", False) is True,
    )


def spec_to_json(spec: ProcessSpec) -> dict[str, Any]:
    return {
        "argv": list(spec.argv),
        "files": dict(spec.files),
        "scripts": dict(spec.scripts),
        "restart": policy_to_json(spec.restart),
    }


def spec_from_json(data: Any) -> ProcessSpec:
    """A spec from a request body; raises ``ValueError`` (or ``KeyError``/``TypeError``) when malformed."""
    argv = tuple(_text(arg) for arg in _list(data["argv"]))
    return ProcessSpec(
        argv=argv,
        files=_texts(data.get("files", {})),
        scripts=_texts(data.get("scripts", {})),
        restart=policy_from_json(data.get("restart")),
    )


def port_requests_to_json(wanted: Sequence[PortRequest]) -> list[dict[str, Any]]:
    return [{"cluster": w.node.cluster_id, "node": w.node.node_id, "slot": w.slot, "port": w.port} for w in wanted]


def port_requests_from_json(data: Any) -> list[PortRequest]:
    requests = []
    for item in _list(data):
        port = item.get("port")
        requests.append(
            PortRequest(
                node=node_key(check_name(_text(item["cluster"])), check_name(_text(item["node"]))),
                slot=_text(item.get("slot", PORT_SLOT)),
                port=None if port is None else _port(port),
            )
        )
    return requests


def event_to_json(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "cluster": event.node.cluster_id,
        "node": event.node.node_id,
        "at": event.at,
        **event.fields,
    }


_EVENT_KEYS = frozenset({"seq", "kind", "cluster", "node", "at"})


def event_from_json(data: Mapping[str, Any]) -> Event:
    return Event(
        seq=int(data["seq"]),
        kind=str(data["kind"]),
        node=node_key(str(data["cluster"]), str(data["node"])),
        at=float(data["at"]),
        fields={k: v for k, v in data.items() if k not in _EVENT_KEYS},
    )


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def signal_from_name(name: Any) -> int:
    try:
        return int(signal.Signals[_text(name)])
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def digest_header(sha256_hex: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def digest_from_header(value: str | None) -> str | None:
    """The hex SHA-256 in a ``Repr-Digest`` header, or None when it carries none."""
    if not value:
        return None
    for item in value.split(","):
        name, _, encoded = item.strip().partition("=")
        if name.strip().lower() == "sha-256" and encoded.startswith(":") and encoded.endswith(":"):
            try:
                raw = base64.b64decode(encoded[1:-1], validate=True)
            except ValueError:
                return None
            return raw.hex() if len(raw) == 32 else None
    return None


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _texts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return {_text(k): _text(v) for k, v in value.items()}


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"invalid port {value!r}")
    return value
