"""The remote host driver: the ``Host`` protocol against a ``cachefleet agent`` over HTTPS.

Every call is an HTTPS request with the control plane's client certificate (mutual TLS; the agent
accepts no other, docs/architecture.md "Host agents"). The lookups a reconcile pass makes for every
node (``port_of``, ``pid``, ``nodes``, ``read_file`` of the control plane's own small files) are
answered from a ``NodeCache`` instead of one request each:

- ``GET /v1/nodes`` fills it (ports and PIDs of every node, with the agent's event number ``seq``);
- a follower thread long-polls ``GET /v1/events?after=seq`` and applies each event (a node started,
  exited, restarted, its ports or files written, removed), so an exit on the agent reaches the cache
  (and ``listeners``: the reconciler can wake at once) within milliseconds;
- this driver's own calls write their results through, stamped with the ``seq`` of their answer, so
  an older event that arrives later never undoes them.

While the follower is cut off (or the agent restarted: another ``epoch``, or events were dropped) the
cache is not fresh, and a lookup reads ``GET /v1/nodes`` again first: refreshed on demand, and a
``Retry`` when the agent cannot be reached, never an answer from stale state.

Only files named in ``cached_files`` are cached: files the control plane writes itself (through
this driver) and no process rewrites. A file that its process rewrites (Sentinel's config) is read
from the agent every time.

Errors map to the reconciler's families (``model.errors``): an agent that cannot be reached, answers
with a server error, or returns a corrupted transfer is ``Retry``; an agent that refuses the control
plane (TLS refused, 403, an API version it does not speak) is ``Fatal``; a bad argument is
``ValueError`` and a full port range ``InsufficientCacheClusterCapacity``, as from ``LocalHost``.

Shaped for the async seam to come: every request is a ``_Call`` (method, path, body, how to read the
answer) that a synchronous or an asynchronous httpx client sends alike; only ``_send`` and the
follower's loop know which.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from cachefleet.hosts import agent_api as api
from cachefleet.hosts import files
from cachefleet.hosts.agent_api import ErrorCode, Event, EventKind
from cachefleet.hosts.base import FileDigest, PortRequest, ProcessSpec
from cachefleet.model.errors import Fatal, InsufficientCacheClusterCapacity, Retry
from cachefleet.model.nodes import PORT_SLOT, NodeKey, node_key

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[Event], None]

CONNECT_TIMEOUT = 3.0
# A call's answer: a spawn or an allocation takes milliseconds; a stop adds its own grace period.
CALL_TIMEOUT = 10.0
POLL_WAIT = 10.0  # seconds a long poll waits for the next event: also how stale a silent cut leaves the cache
_FOLLOW_BACKOFF = (0.2, 5.0)


def client_context(ca_file: Path, cert_file: Path) -> ssl.SSLContext:
    """TLS for calls to agents: the agent's certificate verified against the installation's CA
    alone (and against the address dialled), the control plane's certificate (key and certificate
    in one PEM) presented."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file)
    return context


# -- the cache ------------------------------------------------------------------------------------


@dataclass
class _Entry:
    ports: dict[str, int] = field(default_factory=dict)
    pid: int | None = None
    files: dict[str, str | None] = field(default_factory=dict)
    seq: int = 0  # the agent's event number this entry is current with


class NodeCache:
    """What the control plane knows of an agent's nodes, kept current by its events. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[NodeKey, _Entry] = {}
        self._gone: dict[NodeKey, int] = {}  # removed nodes: events up to this seq are old news
        self.epoch: str | None = None
        self.seq = 0
        self.fresh = False

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace everything with a ``GET /v1/nodes`` answer."""
        seq = int(snapshot["seq"])
        entries = {}
        for item in snapshot["nodes"]:
            pid = item.get("pid")
            ports = {str(slot): int(port) for slot, port in item.get("ports", {}).items()}
            key = node_key(str(item["cluster"]), str(item["node"]))
            entries[key] = _Entry(ports=ports, pid=None if pid is None else int(pid), seq=seq)
        with self._lock:
            self._entries = entries
            self._gone = {}
            self.epoch, self.seq, self.fresh = str(snapshot["epoch"]), seq, True

    def invalidate(self) -> None:
        with self._lock:
            self.fresh = False

    def position(self) -> tuple[str | None, int]:
        with self._lock:
            return self.epoch, self.seq

    def get(self, key: NodeKey) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else _Entry(dict(entry.ports), entry.pid, dict(entry.files), entry.seq)

    def keys(self) -> list[NodeKey]:
        with self._lock:
            return sorted(self._entries, key=str)

    def apply(self, event: Event) -> None:
        with self._lock:
            self.seq = max(self.seq, event.seq)
            if event.seq <= self._gone.get(event.node, 0):
                return
            entry = self._entries.setdefault(event.node, _Entry())
            if event.seq <= entry.seq:
                return  # this driver's own call, answered later, already accounts for it
            entry.seq = event.seq
            kind, fields = event.kind, event.fields
            if kind in (EventKind.STARTED, EventKind.RESTARTED):
                entry.pid = int(fields["pid"])
            elif kind == EventKind.EXITED:
                if entry.pid == fields.get("pid") or entry.pid is None:
                    entry.pid = None
            elif kind == EventKind.PORTS:
                entry.ports.update({str(k): int(v) for k, v in fields.get("ports", {}).items()})
            elif kind == EventKind.FILES:
                for name in fields.get("names", []):
                    entry.files.pop(str(name), None)
            elif kind == EventKind.REMOVED:
                del self._entries[event.node]
                self._gone[event.node] = event.seq

    def note(self, key: NodeKey, seq: int, change: Callable[[_Entry], None]) -> None:
        """Record the outcome of this driver's own call, current as of event ``seq``."""
        with self._lock:
            self._gone.pop(key, None)
            entry = self._entries.setdefault(key, _Entry())
            change(entry)
            entry.seq = max(entry.seq, seq)

    def remember_file(self, key: NodeKey, name: str, text: str | None) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.files[name] = text

    def forget(self, key: NodeKey, seq: int) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._gone[key] = seq


# -- calls ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    read: Callable[[dict[str, Any]], T]
    body: Any = None
    params: Mapping[str, str] | None = None
    timeout: float = CALL_TIMEOUT


def _raw(body: dict[str, Any]) -> dict[str, Any]:
    return body


def _error(response: httpx.Response, where: str) -> Exception:
    """The control plane's error for an agent's error answer."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", response.text[:200]
    status = response.status_code
    if code == ErrorCode.INVALID:
        return ValueError(message)
    if code == ErrorCode.CAPACITY:
        return InsufficientCacheClusterCapacity(message)
    if code in (ErrorCode.FORBIDDEN, ErrorCode.UNKNOWN_VERSION) or status in (401, 403):
        return Fatal(f"agent {where} refused the control plane: {message}")
    if code == ErrorCode.NOT_FOUND or status == 404:
        return Fatal(f"agent {where} does not know the request: {message}")
    return Retry(f"agent {where} failed: {message or f'HTTP {status}'}")


def _unreachable(exc: httpx.HTTPError, where: str) -> Exception:
    """A request that got no answer. An agent that does not accept the control plane's certificate
    (none, or another CA's) ends the TLS handshake by closing the connection without an alert
    (Python's TLS servers send none), which looks like any connection cut short: that one is said
    in the message, and retried, since a cut connection is the likelier cause."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Fatal(f"agent {where} has a certificate the installation's CA did not issue: {cause}")
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return Fatal(f"agent {where} refused TLS: {cause}")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return Retry(
            f"agent {where} closed the connection without answering: cut off, or it does not accept this "
            f"control plane's certificate ({exc})"
        )
    return Retry(f"agent {where} unreachable: {exc!r}")


class RemoteHost:
    """The ``Host`` protocol on an agent at ``base_url`` (``https://ADDR:PORT``)."""

    def __init__(
        self,
        base_url: str,
        tls: ssl.SSLContext,
        *,
        cached_files: Collection[str] = (),
        follow_events: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._cached_files = frozenset(cached_files)
        timeout = httpx.Timeout(CALL_TIMEOUT, connect=CONNECT_TIMEOUT)
        self._client = httpx.Client(base_url=self.base_url, verify=tls, timeout=timeout, transport=transport)
        # The follower's long polls get a client of their own, so that close() can cut one short.
        self._poll_client = httpx.Client(base_url=self.base_url, verify=tls, timeout=timeout, transport=transport)
        self.cache = NodeCache()
        self._info: dict[str, Any] | None = None
        self._listeners: list[Listener] = []
        self._closing = threading.Event()
        # Set while the follower cannot reach the agent: lookups then fail at once instead of each
        # waiting out a connect timeout (a lost host must not hold a reconcile pass for seconds).
        self._cut = threading.Event()
        self._follower: threading.Thread | None = None
        self._auto_follow = follow_events

    # -- the agent itself ------------------------------------------------------------------------

    def info(self, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /v1/info``: host id, zone, address, versions, capacity and usage."""
        if self._info is None or refresh:
            self._info = self._send(_Call("GET", "/info", _raw))
        return self._info

    @property
    def address(self) -> str:
        """The host's address: nodes bind to it, clients are given it (with each node's port)."""
        return str(self.info()["address"])

    @property
    def zone(self) -> str:
        return str(self.info()["zone"])

    @property
    def host_id(self) -> str:
        return str(self.info()["host_id"])

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` (on the follower's thread) with each event the agent reports."""
        self._listeners.append(listener)

    def follow(self) -> None:
        """Start following the agent's events (a daemon thread) until ``close``."""
        if self._follower is None:
            self._follower = threading.Thread(target=self._follow, name=f"agent-events {self.base_url}", daemon=True)
            self._follower.start()

    def close(self) -> None:
        """Stop following and close the connections. Returns at once: a follower blocked in a long
        poll (a blocking read that closing its socket does not wake) ends when the poll does, within
        ``POLL_WAIT`` seconds, and reports nothing more."""
        self._closing.set()
        self._poll_client.close()
        self._client.close()

    def refresh(self) -> None:
        """Read every node's ports and PID again (``GET /v1/nodes``)."""
        self.cache.load(self._send(_Call("GET", "/nodes", _raw)))

    # -- the Host protocol -----------------------------------------------------------------------

    def node_dir(self, key: NodeKey) -> Path:
        """The node's directory on the agent's host (for paths inside the configs rendered for it)."""
        return Path(self.info()["nodes_root"]) / api.check_name(key.cluster_id) / api.check_name(key.node_id)

    def port_of(self, key: NodeKey, slot: str = PORT_SLOT) -> int | None:
        entry = self._entry(key)
        return entry.ports.get(slot) if entry is not None else None

    def allocate_port(
        self, key: NodeKey, taken: Collection[int], slot: str = PORT_SLOT, prefer: int | None = None
    ) -> int:
        (port,) = self.allocate_ports([PortRequest(key, slot, prefer)], taken)
        return port

    def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        body = {"requests": api.port_requests_to_json(wanted), "taken": sorted(taken)}
        answer = self._send(_Call("POST", "/ports", _raw, body))
        ports = [int(port) for port in answer["ports"]]
        for request, port in zip(wanted, ports, strict=True):
            self._note(answer, request.node, _set_port(request.slot, port))
        return ports

    def port_taken(self, key: NodeKey, slot: str = PORT_SLOT) -> bool:
        call = _Call("GET", api.node_path(key, "port-taken"), lambda b: bool(b["taken"]), params={"slot": slot})
        return self._send(call)

    def pid(self, key: NodeKey) -> int | None:
        entry = self._entry(key)
        return entry.pid if entry is not None else None

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        answer = self._send(_Call("POST", api.node_path(key, "start"), _raw, api.spec_to_json(spec)))
        pid = int(answer["pid"])

        def started(entry: _Entry) -> None:
            entry.pid = pid
            self._write_through(entry, spec)

        self._note(answer, key, started)
        return pid

    def read_file(self, key: NodeKey, name: str) -> str | None:
        api.check_name(name)
        cached = name in self._cached_files
        if cached:
            entry = self._entry(key)
            if entry is not None and name in entry.files:
                return entry.files[name]
        elif self._cut.is_set():
            raise Retry(f"agent {self.base_url} unreachable: its event stream is cut (reconnecting)")
        text = self._read_text(key, name)
        if cached:
            self.cache.remember_file(key, name, text)
        return text

    def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        body = {"spec": api.spec_to_json(spec), "signal": api.signal_name(signum)}
        answer = self._send(_Call("POST", api.node_path(key, "reload"), _raw, body))
        self._note(answer, key, lambda e: self._write_through(e, spec))

    def stop(self, key: NodeKey, timeout: float = 5.0) -> None:
        call = _Call("POST", api.node_path(key, "stop"), _raw, {"timeout": timeout}, timeout=timeout + CALL_TIMEOUT)
        answer = self._send(call)
        self._note(answer, key, lambda e: setattr(e, "pid", None))

    def remove(self, key: NodeKey) -> None:
        answer = self._send(_Call("DELETE", api.node_path(key), _raw, timeout=2 * CALL_TIMEOUT))
        self.cache.forget(key, int(answer["seq"]))

    def nodes(self) -> list[NodeKey]:
        self._ensure_fresh()
        return self.cache.keys()

    # -- node files, streamed --------------------------------------------------------------------

    def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        """Copy node file ``name`` to ``dest`` (written atomically, 0600), checked against the size
        and SHA-256 the agent announced. ``FileNotFoundError`` when the node has no such file."""
        api.check_name(name)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._client.stream("GET", api.node_path(key, "files", name)) as response:
                if response.status_code == 404:
                    raise FileNotFoundError(f"node {key} on {self.base_url} has no file {name}")
                if response.status_code != 200:
                    response.read()
                    raise _error(response, self.base_url)
                size = int(response.headers["content-length"])
                digest = api.digest_from_header(response.headers.get(api.DIGEST_HEADER))
                hasher, written = hashlib.sha256(), 0
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_bytes(files.CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        written += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise _unreachable(exc, self.base_url) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if written != size or hasher.hexdigest() != digest:
            tmp.unlink(missing_ok=True)
            raise Retry(f"file {name} of node {key} from {self.base_url} arrived corrupted ({written} of {size} bytes)")
        os.replace(tmp, dest)
        return FileDigest(size, hasher.hexdigest())

    def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        """Copy local file ``source`` into the node directory as ``name`` (0600, atomically on the
        agent, which checks its size and SHA-256 before it replaces anything)."""
        api.check_name(name)
        digest = files.digest_of(source)
        headers = {"content-length": str(digest.size), api.DIGEST_HEADER: api.digest_header(digest.sha256)}
        try:
            response = self._client.put(
                api.node_path(key, "files", name),
                content=files.chunks(source),
                headers=headers,
                timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self.base_url) from exc
        if response.status_code != 200:
            raise _error(response, self.base_url)
        answer = response.json()
        self._note(answer, key, _drop_file(name))
        return FileDigest(int(answer["size"]), str(answer["sha256"]))

    # -- internals -------------------------------------------------------------------------------

    def _send(self, call: _Call[T], client: httpx.Client | None = None) -> T:
        client = client or self._client
        try:
            response = client.request(
                call.method,
                api.PREFIX + call.path if not call.path.startswith(api.PREFIX) else call.path,
                json=call.body,
                params=call.params,
                timeout=httpx.Timeout(call.timeout, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self.base_url) from exc
        if response.status_code != 200:
            raise _error(response, self.base_url)
        try:
            body = response.json()
        except ValueError as exc:
            raise Retry(f"agent {self.base_url} answered with something that is not JSON") from exc
        return call.read(body)

    def _read_text(self, key: NodeKey, name: str) -> str | None:
        try:
            response = self._client.get(api.node_path(key, "files", name))
        except httpx.HTTPError as exc:
            raise _unreachable(exc, self.base_url) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error(response, self.base_url)
        return response.text

    def _entry(self, key: NodeKey) -> _Entry | None:
        self._ensure_fresh()
        return self.cache.get(key)

    def _ensure_fresh(self) -> None:
        # A cache nobody keeps current would answer from the past: the first lookup starts the follower.
        if self._auto_follow and self._follower is None and not self._closing.is_set():
            self.follow()
        if not self.cache.fresh:
            if self._cut.is_set():
                raise Retry(f"agent {self.base_url} unreachable: its event stream is cut (reconnecting)")
            self.refresh()

    def _note(self, answer: Mapping[str, Any], key: NodeKey, change: Callable[[_Entry], None]) -> None:
        if answer.get("epoch") not in (None, self.cache.epoch):
            self.cache.invalidate()  # the agent restarted since the cache was read
        self.cache.note(key, int(answer.get("seq", 0)), change)

    def _write_through(self, entry: _Entry, spec: ProcessSpec) -> None:
        for name, text in [*spec.files.items(), *spec.scripts.items()]:
            if name in self._cached_files:
                entry.files[name] = text

    def _follow(self) -> None:
        delay = _FOLLOW_BACKOFF[0]
        while not self._closing.is_set():
            try:
                if not self.cache.fresh:
                    self.cache.load(self._send(_Call("GET", "/nodes", _raw), self._poll_client))
                    self._cut.clear()
                epoch, after = self.cache.position()
                params = {"after": str(after), "wait": str(POLL_WAIT)}
                poll = _Call("GET", "/events", _raw, params=params, timeout=POLL_WAIT + 5)
                answer = self._send(poll, self._poll_client)
                if answer["epoch"] != epoch or answer.get("reset"):
                    self.cache.invalidate()
                    continue
                self._cut.clear()
                for item in answer["events"]:
                    event = api.event_from_json(item)
                    self.cache.apply(event)
                    for listener in self._listeners:
                        if not self._closing.is_set():
                            listener(event)
                delay = _FOLLOW_BACKOFF[0]
            except Exception as exc:  # the follower must outlive anything an agent sends
                self._cut.set()  # first: a lookup that finds the cache stale must find the cut too
                self.cache.invalidate()
                if self._closing.is_set():
                    return
                log.warning("following agent %s: %s; again in %.1f s", self.base_url, exc, delay)
                self._closing.wait(delay)
                delay = min(delay * 2, _FOLLOW_BACKOFF[1])


def _set_port(slot: str, port: int) -> Callable[[_Entry], None]:
    def change(entry: _Entry) -> None:
        entry.ports[slot] = port

    return change


def _drop_file(name: str) -> Callable[[_Entry], None]:
    def change(entry: _Entry) -> None:
        entry.files.pop(name, None)

    return change
