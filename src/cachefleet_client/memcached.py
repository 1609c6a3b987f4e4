"""Memcached clusters: auto discovery, consistent hashing and node loss, on pymemcache.

`MemcachedClient` is a blocking client for a whole cluster. Given a configuration endpoint (as
ElastiCache and cachefleet give one to every Memcached cluster) it asks it for the node list
(`config get cluster`), asks again every `poll_interval` seconds (on the first command after the
interval, in the caller's thread: no background thread), and moves to the new list when the
config version changes. Given `servers` instead it uses that fixed list.

Keys are spread over the nodes with a ketama ring (MD5 points on a 32-bit circle, as libmemcached
and spymemcached do, with 640 points per node rather than their 160, which keeps every node's share
within a few percent of 1/N): adding one node to N moves about 1/(N+1) of the keys, all of them to
the new node, and removing one moves only that node's keys.

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

import asyncio
import base64
import bisect
import functools
import hashlib
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pymemcache.client.base import Client, PooledClient
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

__all__ = [
    "ClusterConfig",
    "DiscoveryError",
    "KetamaRing",
    "MemcachedClient",
    "MemcachedStore",
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
    except MemcacheClientError as exc:  # the credentials were refused
        raise DiscoveryError(f"configuration endpoint {host}:{port} refused: {exc}") from exc
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
    """Consistent hashing as libmemcached's ketama does it (MD5 points on a 32-bit circle), with
    ``POINTS_PER_NODE`` points per node.

    A key belongs to the first point at or after the first four bytes of its MD5 (little-endian).
    Immutable: a change of membership builds a new ring, so readers never see one half-built.
    """

    # libmemcached's 160 let one node in 40 get 1.2x its share in our measurements; 640 kept it under 1.1x.
    POINTS_PER_NODE = 640

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


class MemcachedStore:
    """`CacheStore` on a `MemcachedClient`, for `Cache` (cache-aside, write-through, invalidation)
    and `SessionStore`, as they run on Redis.

    pymemcache blocks, so every call runs in a worker thread: several with a pooled client
    (`use_pooling=True`), one otherwise (a plain pymemcache client is not thread-safe). Build the
    client without a `serde`: the patterns store bytes of their own.

    What Memcached cannot do as Redis does, and what is done instead:

    * No multi-key atomicity (a value, its lock and its tags may live on different nodes). A load
      stores its result only after claiming its lock with `cas`, and takes the value back if an
      invalidation deleted the lock meanwhile; a reader may see the old value for that moment.
    * No sets: a tag's members are appended to one item (`append`, `add` for the first), and
      invalidation empties it with `gets`/`cas`, so a member appended meanwhile is never lost.
      A value whose membership cannot be recorded (the item reached the node's item size) is
      not stored at all, so a tag never misses a value.
    * Keys longer than 250 bytes, or with spaces, control or non-ASCII characters, are stored
      under `cf:<sha256>`; TTLs are whole seconds (rounded up).
    """

    errors: tuple[type[BaseException], ...] = (MemcacheError, OSError)

    _CLAIM_SECONDS = 5  # how long a load's claim on its lock lasts if the process dies mid-store
    _THIRTY_DAYS = 30 * 24 * 3600  # memcached reads a larger exptime as a unix time

    def __init__(self, client: MemcachedClient, *, max_workers: int | None = None) -> None:
        self.client = client
        workers = max_workers if max_workers is not None else (8 if client.use_pooling else 1)
        if workers > 1 and not client.use_pooling:
            raise ValueError("several workers need a pooled client (MemcachedClient(use_pooling=True))")
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="memcached-store")

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- CacheStore --------------------------------------------------------------------------

    async def read(self, key: str) -> bytes | None:
        return await self._call(self._get, key)

    async def get(self, key: str) -> bytes | None:
        return await self._call(self._get, key)

    async def get_and_touch(self, key: str, px: int) -> bytes | None:
        return await self._call(self._get_and_touch, key, px)

    async def set(self, key: str, value: bytes, px: int) -> None:
        await self._call(self._set, key, value, px)

    async def add(self, key: str, value: bytes, px: int) -> bool:
        return await self._call(self._add, key, value, px)

    async def delete(self, *keys: str) -> int:
        return await self._call(self._delete, keys)

    async def incr(self, key: str) -> int:
        return await self._call(self._incr, key)

    async def store_if_locked(
        self, key: str, lock: str, *, token: str, payload: bytes, px: int, tag_keys: Sequence[str]
    ) -> bool:
        return await self._call(
            self._store_if_locked, key, lock, token=token, payload=payload, px=px, tag_keys=tag_keys
        )

    async def store_and_unlock(self, key: str, lock: str, *, payload: bytes, px: int, tag_keys: Sequence[str]) -> bool:
        return await self._call(self._store_and_unlock, key, lock, payload, px, tag_keys)

    async def release(self, lock: str, token: str) -> None:
        await self._call(self._release, lock, token)

    async def pop_members(self, tag_key: str, count: int) -> list[str]:
        return await self._call(self._pop_members, tag_key, count)

    # -- blocking implementations (worker threads) ---------------------------------------------

    def _get(self, key: str) -> bytes | None:
        value = self.client.get(_key(key))
        return None if value is None else bytes(value)

    def _get_and_touch(self, key: str, px: int) -> bytes | None:
        value = self._get(key)
        if value is not None:
            self.client.touch(_key(key), self._expire(px), noreply=False)
        return value

    def _set(self, key: str, value: bytes, px: int) -> None:
        self.client.set(_key(key), value, self._expire(px), noreply=False)

    def _add(self, key: str, value: bytes, px: int) -> bool:
        return self.client.add(_key(key), value, self._expire(px), noreply=False)

    def _delete(self, keys: Sequence[str]) -> int:
        return sum(1 for key in keys if self.client.delete(_key(key), noreply=False))

    def _incr(self, key: str) -> int:
        name = _key(key)
        for _ in range(3):
            value = self.client.incr(name, 1)
            if value is not None:
                return value
            self.client.add(name, b"0", 0, noreply=False)  # first use; another caller may win the add
        raise MemcacheError(f"cannot increment {key!r}")

    def _store_if_locked(
        self, key: str, lock: str, *, token: str, payload: bytes, px: int, tag_keys: Sequence[str]
    ) -> bool:
        lock_name = _key(lock)
        held, cas_token = self.client.gets(lock_name)
        if held != token.encode():
            return False
        claim = b"storing:" + token.encode()
        if not self.client.cas(lock_name, claim, cas_token, self._CLAIM_SECONDS, noreply=False):
            return False  # an invalidation deleted (or another load re-took) the lock meanwhile
        if not self._record(tag_keys, key):
            self.client.delete(lock_name, noreply=False)
            return False
        self.client.set(_key(key), payload, self._expire(px), noreply=False)
        if self.client.get(lock_name) != claim:
            # Invalidated while we stored: the value may be older than the invalidation.
            self.client.delete(_key(key), noreply=False)
            return False
        self.client.delete(lock_name, noreply=False)
        return True

    def _store_and_unlock(self, key: str, lock: str, payload: bytes, px: int, tag_keys: Sequence[str]) -> bool:
        if not self._record(tag_keys, key):
            self.client.delete(_key(key), noreply=False)
            self.client.delete(_key(lock), noreply=False)
            return False
        self.client.set(_key(key), payload, self._expire(px), noreply=False)
        self.client.delete(_key(lock), noreply=False)
        return True

    def _release(self, lock: str, token: str) -> None:
        lock_name = _key(lock)
        if self.client.get(lock_name) == token.encode():
            self.client.delete(lock_name, noreply=False)

    def _record(self, tag_keys: Sequence[str], key: str) -> bool:
        """Append ``key`` to every tag's member list; False when one could not take it."""
        member = _member(key)
        for tag_key in tag_keys:
            name = _key(tag_key)
            try:
                if self.client.append(name, b" " + member, noreply=False):
                    continue
                if self.client.add(name, member, 0, noreply=False):
                    continue
                if self.client.append(name, b" " + member, noreply=False):  # lost the add to another writer
                    continue
            except MemcacheServerError:  # the list reached the item size limit
                pass
            return False
        return True

    def _pop_members(self, tag_key: str, count: int) -> list[str]:
        name = _key(tag_key)
        for _ in range(20):
            value, cas_token = self.client.gets(name)
            if not value:
                return []
            members = bytes(value).split()
            rest = b" ".join(members[count:])
            if self.client.cas(name, rest, cas_token, 0, noreply=False):
                return [_unmember(m) for m in members[:count]]
        raise MemcacheError(f"tag {tag_key!r} keeps changing; try again")

    def _expire(self, px: int) -> int:
        seconds = max(1, math.ceil(px / 1000))
        return seconds if seconds <= self._THIRTY_DAYS else int(time.time()) + seconds


def _key(key: str) -> str:
    """A valid memcached key for ``key``: itself when it is one, else ``cf:<sha256>``."""
    if len(key) <= 250 and key.isascii() and key.isprintable() and " " not in key:
        return key
    return "cf:" + hashlib.sha256(key.encode()).hexdigest()


def _member(key: str) -> bytes:
    """A key as one space-free word of a tag's member list."""
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=")


def _unmember(word: bytes) -> str:
    return base64.urlsafe_b64decode(word + b"=" * (-len(word) % 4)).decode()
