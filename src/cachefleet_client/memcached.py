"""Memcached clusters: auto discovery, consistent hashing and node loss, on pymemcache.

`MemcachedClient` is a blocking client for a whole cluster. Given a configuration endpoint (as
ElastiCache and cachefleet give one to every Memcached cluster) it asks it for the node list
(`config get cluster`), asks again every `poll_interval` seconds (on the first command after the
interval, in the caller's thread: no background thread), and moves to the new list when the
config version changes. Given `servers` instead it uses that fixed list.

Keys are spread over the nodes with a ketama ring (MD5, 160 points per node, the layout of
libmemcached and spymemcached): adding one node to N moves about 1/(N+1) of the keys, all of them
to the new node, and removing one moves only that node's keys.

A node that fails (refused or dropped connection, timeout) leaves the ring for `dead_timeout`
seconds, so its keys go to the other nodes meanwhile (misses, then refills), and the command that
met the failure is tried once more on the key's new node. After `dead_timeout` the node is tried
again: a node replaced on the same address serves again without any change of configuration.

Every node client is a pymemcache `Client` (`PooledClient` with `use_pooling=True`, which the
async `MemcachedStore` needs). With `username`/`password` each new connection first
authenticates with memcached's ASCII authentication (a `set` whose data is "user password"), which
pymemcache alone does not repeat after a reconnect. `tls_context` turns on TLS for the endpoint
and every node.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymemcache.client.base import Client, PooledClient
from pymemcache.exceptions import MemcacheClientError, MemcacheError, MemcacheUnexpectedCloseError

__all__ = [
    "ClusterConfig",
    "DiscoveryError",
    "KetamaRing",
    "MemcachedClient",
    "NoNodeAvailable",
    "discover",
    "parse_cluster_config",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]
T = TypeVar("T")

# Failures that mean "this node cannot serve now", as opposed to a refused command.
NODE_FAILURES: tuple[type[BaseException], ...] = (OSError, MemcacheUnexpectedCloseError)


class DiscoveryError(MemcacheError):  # type: ignore[misc]  # pymemcache ships no type information
    """The configuration endpoint could not be asked, or did not answer as one."""


class NoNodeAvailable(MemcacheError):  # type: ignore[misc]
    """Every node of the cluster is down (or the cluster has none)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    version: int
    nodes: tuple[Address, ...]


def parse_cluster_config(data: bytes, *, use_ip: bool = True) -> ClusterConfig:
    """The answer to `config get cluster`: `CONFIG cluster 0 <n>`, the version, `host|ip|port` entries.

    Each node is addressed by its IP when the entry has one and `use_ip` is set, else by its name.
    """
    header, _, rest = data.partition(b"\r\n")
    words = header.split()
    if len(words) != 4 or words[:2] != [b"CONFIG", b"cluster"] or not words[3].isdigit():
        raise DiscoveryError(f"not a configuration endpoint answer: {header[:80]!r}")
    body = rest[: int(words[3])].decode()
    version_line, _, node_line = body.partition("\n")
    nodes: list[Address] = []
    for entry in node_line.split():
        host, ip, port = entry.split("|")
        nodes.append((ip if use_ip and ip else host, int(port)))
    return ClusterConfig(int(version_line), tuple(nodes))


def discover(
    endpoint: Address,
    *,
    tls_context: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
    timeout: float = 2.0,
    use_ip: bool = True,
) -> ClusterConfig:
    """Ask a configuration endpoint for the cluster's nodes (one short connection)."""
    host, port = endpoint
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            conn = tls_context.wrap_socket(raw, server_hostname=host) if tls_context is not None else raw
            try:
                if credentials is not None:
                    _authenticate(conn, credentials)
                conn.sendall(b"config get cluster\r\n")
                data = _read_until(conn, b"END\r\n")
            finally:
                if conn is not raw:
                    conn.close()
    except OSError as exc:
        raise DiscoveryError(f"configuration endpoint {host}:{port} unreachable: {exc}") from exc
    if data.startswith(_REFUSALS):
        raise DiscoveryError(f"configuration endpoint {host}:{port} refused: {data.strip().decode(errors='replace')}")
    return parse_cluster_config(data, use_ip=use_ip)


_REFUSALS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


def _read_until(conn: socket.socket, end: bytes) -> bytes:
    """Read until the answer ends with ``end``, or is a one-line refusal."""
    data = b""
    while not (data.endswith(end) or (data.startswith(_REFUSALS) and data.endswith(b"\r\n"))):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-answer")
        data += chunk
    return data


def _authenticate(conn: socket.socket, credentials: tuple[str, str]) -> None:
    """memcached's ASCII authentication: a first `set` carrying "user password"."""
    user, password = credentials
    data = f"{user} {password}".encode()
    conn.sendall(b"set auth 0 0 %d\r\n%s\r\n" % (len(data), data))
    answer = b""
    while not answer.endswith(b"\r\n"):
        chunk = conn.recv(256)
        if not chunk:
            raise ConnectionError("connection closed during authentication")
        answer += chunk
    if answer != b"STORED\r\n":
        raise MemcacheClientError(f"authentication refused: {answer.strip().decode(errors='replace')}")


class _AuthenticatingClient(Client):  # type: ignore[misc]  # pymemcache ships no type information
    """A pymemcache `Client` that authenticates every connection it opens."""

    credentials: tuple[str, str] | None = None

    def _connect(self) -> None:
        super()._connect()
        if self.credentials is not None:
            try:
                _authenticate(self.sock, self.credentials)
            except BaseException:
                self.close()
                raise


class KetamaRing:
    """Consistent hashing as libmemcached's ketama does it: 160 points per node on a 32-bit circle.

    A key belongs to the first point at or after the first four bytes of its MD5 (little-endian).
    Immutable: a change of membership builds a new ring, so readers never see one half-built.
    """

    POINTS_PER_NODE = 160

    def __init__(self, nodes: Iterable[str]) -> None:
        points: list[tuple[int, str]] = []
        for node in sorted(set(nodes)):
            for i in range(self.POINTS_PER_NODE // 4):
                digest = hashlib.md5(f"{node}-{i}".encode(), usedforsecurity=False).digest()
                points += [(int.from_bytes(digest[4 * h : 4 * h + 4], "little"), node) for h in range(4)]
        points.sort()
        self._hashes = [h for h, _ in points]
        self._owners = [n for _, n in points]

    def __len__(self) -> int:
        return len(set(self._owners))

    def get_node(self, key: str | bytes) -> str | None:
        if not self._hashes:
            return None
        data = key.encode() if isinstance(key, str) else key
        point = int.from_bytes(hashlib.md5(data, usedforsecurity=False).digest()[:4], "little")
        index = bisect.bisect_left(self._hashes, point)
        return self._owners[index if index < len(self._hashes) else 0]


def _node_name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


class MemcachedClient:
    """A blocking client for a Memcached cluster (see the module's docstring).

    Pass `configuration_endpoint` (`"host:port"` or a tuple) for auto discovery, or `servers` for
    a fixed node list. `client_options` go to every pymemcache client (`serde`, `key_prefix`,
    `default_noreply`, `allow_unicode_keys`, ...).
    """

    def __init__(
        self,
        configuration_endpoint: str | Address | None = None,
        *,
        servers: Sequence[str | Address] | None = None,
        poll_interval: float = 60.0,
        dead_timeout: float = 10.0,
        use_ip: bool = True,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float | None = 2.0,
        connect_timeout: float | None = 2.0,
        use_pooling: bool = False,
        max_pool_size: int | None = None,
        **client_options: Any,
    ) -> None:
        if (configuration_endpoint is None) == (servers is None):
            raise ValueError("give either configuration_endpoint or servers")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.endpoint = None if configuration_endpoint is None else _address(configuration_endpoint)
        self.poll_interval = poll_interval
        self.dead_timeout = dead_timeout
        self.use_ip = use_ip
        self.tls_context = tls_context
        self.credentials = None if username is None or password is None else (username, password)
        self.use_pooling = use_pooling
        self._timeout = timeout
        self._client_options: dict[str, Any] = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "tls_context": tls_context,
            **client_options,
        }
        if use_pooling:
            self._client_options["max_pool_size"] = max_pool_size
        self._lock = threading.Lock()  # one topology change at a time
        self._clients: dict[Address, Any] = {}
        self._dead: dict[Address, float] = {}
        self._ring = KetamaRing(())
        self._by_name: dict[str, Address] = {}
        self.config = ClusterConfig(0, ())
        self._next_poll = float("inf")
        self._next_revive = float("inf")
        if self.endpoint is not None:
            self._apply(self._discover())
            self._next_poll = time.monotonic() + poll_interval
        else:
            assert servers is not None
            self._apply(ClusterConfig(0, tuple(_address(s) for s in servers)))

    # -- topology ----------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[Address, ...]:
        """The cluster's nodes as last discovered (or given), dead ones included."""
        return self.config.nodes

    def node_for(self, key: str | bytes) -> Address | None:
        """The node that serves ``key`` now."""
        name = self._ring.get_node(key)
        return None if name is None else self._by_name[name]

    def refresh(self) -> bool:
        """Ask the configuration endpoint now; True when the node list changed."""
        if self.endpoint is None:
            return False
        with self._lock:
            self._next_poll = time.monotonic() + self.poll_interval
            config = self._discover()
            if config.version == self.config.version and config.nodes == self.config.nodes:
                return False
            log.info("memcached cluster config %d -> %d: %s", self.config.version, config.version, config.nodes)
            self._apply(config)
            return True

    def _discover(self) -> ClusterConfig:
        assert self.endpoint is not None
        return discover(
            self.endpoint,
            tls_context=self.tls_context,
            credentials=self.credentials,
            timeout=self._timeout or 2.0,
            use_ip=self.use_ip,
        )

    def _apply(self, config: ClusterConfig) -> None:
        """Switch to ``config``: clients for new nodes first, then the ring, then close the old ones."""
        for address in config.nodes:
            if address not in self._clients:
                self._clients[address] = self._new_client(address)
        gone = [a for a in self._clients if a not in config.nodes]
        self._dead = {a: t for a, t in self._dead.items() if a in config.nodes}
        self.config = config
        self._rebuild()
        for address in gone:
            self._clients.pop(address).close()

    def _rebuild(self) -> None:
        live = [a for a in self.config.nodes if a not in self._dead]
        self._by_name = {_node_name(a): a for a in self.config.nodes}
        self._ring = KetamaRing(_node_name(a) for a in live)
        self._next_revive = min(self._dead.values(), default=float("inf"))

    def _new_client(self, address: Address) -> Any:
        if self.use_pooling:
            pooled = PooledClient(address, **self._client_options)
            pooled.client_class = self._client_class()
            return pooled
        client = self._client_class()(address, **self._client_options)
        return client

    def _client_class(self) -> Any:
        if self.credentials is None:
            return Client
        credentials = self.credentials
        return type("AuthenticatingClient", (_AuthenticatingClient,), {"credentials": credentials})

    def _node_failed(self, address: Address, exc: BaseException) -> None:
        with self._lock:
            if address in self._dead or address not in self._clients:
                return
            log.warning("memcached node %s:%d failed (%r); out of the ring for %.0fs", *address, exc, self.dead_timeout)
            self._dead[address] = time.monotonic() + self.dead_timeout
            self._rebuild()

    def _housekeeping(self, now: float) -> None:
        if now >= self._next_revive:
            with self._lock:
                self._dead = {a: t for a, t in self._dead.items() if t > now}
                self._rebuild()
        if now >= self._next_poll:
            try:
                self.refresh()
            except MemcacheError as exc:
                log.warning("memcached discovery failed, keeping %d nodes: %s", len(self.config.nodes), exc)

    # -- commands ----------------------------------------------------------------------------

    def _run(self, key: str | bytes, call: Callable[[Any], T]) -> T:
        """``call`` on the client of ``key``'s node; once more on its next node if that one fails."""
        now = time.monotonic()
        if now >= self._next_poll or now >= self._next_revive:
            self._housekeeping(now)
        for attempt in (0, 1):
            name = self._ring.get_node(key)
            if name is None:
                raise NoNodeAvailable("no memcached node is available")
            address = self._by_name[name]
            try:
                return call(self._clients[address])
            except NODE_FAILURES as exc:
                self._node_failed(address, exc)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _by_node(self, keys: Iterable[Any]) -> dict[Address, list[Any]]:
        now = time.monotonic()
        if now >= self._next_poll or now >= self._next_revive:
            self._housekeeping(now)
        batches: dict[Address, list[Any]] = {}
        for key in keys:
            name = self._ring.get_node(key)
            if name is None:
                raise NoNodeAvailable("no memcached node is available")
            batches.setdefault(self._by_name[name], []).append(key)
        return batches

    def get(self, key: str | bytes, default: Any = None) -> Any:
        return self._run(key, lambda c: c.get(key, default))

    def gets(self, key: str | bytes) -> tuple[Any, Any]:
        """(value, cas token), or (None, None) when the key does not exist."""
        value, token = self._run(key, lambda c: c.gets(key))
        return value, token

    def set(self, key: str | bytes, value: Any, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.set(key, value, expire, noreply)))

    def add(self, key: str | bytes, value: Any, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.add(key, value, expire, noreply)))

    def replace(self, key: str | bytes, value: Any, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.replace(key, value, expire, noreply)))

    def append(self, key: str | bytes, value: Any, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.append(key, value, expire, noreply)))

    def prepend(self, key: str | bytes, value: Any, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.prepend(key, value, expire, noreply)))

    def cas(self, key: str | bytes, value: Any, cas: Any, expire: int = 0, noreply: bool | None = False) -> Any:
        return self._run(key, lambda c: c.cas(key, value, cas, expire, noreply))

    def delete(self, key: str | bytes, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.delete(key, noreply)))

    def incr(self, key: str | bytes, value: int = 1, noreply: bool | None = False) -> int | None:
        """The new value, or None when the key does not exist."""
        result = self._run(key, lambda c: c.incr(key, value, noreply))
        return None if result is None else int(result)

    def decr(self, key: str | bytes, value: int = 1, noreply: bool | None = False) -> int | None:
        result = self._run(key, lambda c: c.decr(key, value, noreply))
        return None if result is None else int(result)

    def touch(self, key: str | bytes, expire: int = 0, noreply: bool | None = None) -> bool:
        return bool(self._run(key, lambda c: c.touch(key, expire, noreply)))

    def get_many(self, keys: Iterable[str | bytes]) -> dict[Any, Any]:
        """Values of the keys found; a node that fails meanwhile counts as misses."""
        found: dict[Any, Any] = {}
        for address, batch in self._by_node(keys).items():
            try:
                found.update(self._clients[address].get_many(batch))
            except NODE_FAILURES as exc:
                self._node_failed(address, exc)
        return found

    def set_many(self, values: Mapping[Any, Any], expire: int = 0, noreply: bool | None = None) -> list[Any]:
        """Store every value; returns the keys that were not stored."""
        failed: list[Any] = []
        for address, batch in self._by_node(values).items():
            try:
                failed += self._clients[address].set_many({k: values[k] for k in batch}, expire, noreply)
            except NODE_FAILURES as exc:
                self._node_failed(address, exc)
                failed += batch
        return failed

    def delete_many(self, keys: Iterable[str | bytes], noreply: bool | None = None) -> bool:
        for address, batch in self._by_node(keys).items():
            try:
                self._clients[address].delete_many(batch, noreply)
            except NODE_FAILURES as exc:
                self._node_failed(address, exc)
        return True

    def stats(self, *args: str) -> dict[Address, dict[bytes, Any]]:
        """Every live node's ``stats``, by address."""
        result: dict[Address, dict[bytes, Any]] = {}
        for address in self.config.nodes:
            if address in self._dead:
                continue
            try:
                result[address] = self._clients[address].stats(*args)
            except NODE_FAILURES as exc:
                self._node_failed(address, exc)
        return result

    def flush_all(self, delay: int = 0, noreply: bool | None = None) -> bool:
        for address in self.config.nodes:
            self._clients[address].flush_all(delay, noreply)
        return True

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> MemcachedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _address(spec: str | Address) -> Address:
    if isinstance(spec, tuple):
        return spec[0], int(spec[1])
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a host:port address: {spec!r}")
    return host.strip("[]"), int(port)
