"""The endpoint proxies of a host: HAProxy processes that each serve the endpoints of up to ``size``
groups there.

Each group contributes its endpoint: its two ports, kept in its own endpoint directory
(``endpoint_key``), and ``ENDPOINT_FILE`` beside them, what its proxy serves for it (members, the
primary, TLS). ``PROXY_FILE`` there names that proxy, chosen at the group's first serve (the first
one serving fewer than ``size`` groups) and kept for the group's life: moving would cut its
clients. A proxy's config is rendered from its groups' contributions (``haproxy.render_proxy``,
pure). A group that gains, changes or loses its endpoint makes its proxy reload: the master starts a
new worker that takes the listening sockets over, and the old worker keeps the sessions it holds, so
no other group's client is cut (docs/decisions.md). A reload costs what the proxy serves (at 200
groups its new worker answered after 75-287 ms, at 50 after 23-32 ms), so proxies of a bounded size
bound it. Primary flips stay runtime calls on the group's proxy's admin socket
(``haproxy.set_primary``, Sentinel's reconfig script, which reads ``PROXY_FILE`` too).

A reload renders every other group with the primary its backend routes to now (read from the
running worker), not the one recorded in its contribution: Sentinel's script or the failover
follower may have moved it since. A flip that lands in the old worker during the reload itself is
lost in the new one; the new worker then routes to a node that its role check keeps out (it answers
``role:slave``), never to a replica, until the group's next pass moves it (``SetEndpointPrimary``).

A proxy's changes run one at a time (its lock): two groups changing at once must not render over
each other. Changes asked for while a reload runs wait for it and then go together, in one reload
per proxy: a reload is a creation's longest step, and eight groups created at once would otherwise
wait for eight in turn. ``serve_soon`` queues a change without
waiting for it: the reconciler's pass goes on (a group joins its Sentinels meanwhile), sees the
change ``pending``, and its group is woken once the proxy serves it (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cachefleet.control.actions import EndpointInputs
from cachefleet.engines import haproxy
from cachefleet.hosts.base import Host, Hosts, ProcessSpec
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Retry
from cachefleet.model.nodes import (
    PROXY_KEY,
    READER_SLOT,
    NodeKey,
    Placement,
    endpoint_group,
    endpoint_key,
    first_with_room,
    proxy_index,
    proxy_key,
)
from cachefleet.model.transit import TransitMode

log = logging.getLogger(__name__)

ENDPOINT_FILE = "endpoint.json"  # a group's contribution, in its endpoint directory
PROXY_FILE = "proxy"  # beside it: the node id of the proxy that serves the group (``proxy_of``)
# Groups one proxy serves before the next one starts (``cachefleet server --endpoint-proxy-size``).
GROUPS_PER_PROXY = 25
# A reload's new worker answered 23-32 ms after the signal at 50 groups and 75-287 ms at 200 on the
# shared 2-core machine (docs/benchmarks.md); this bounds a stuck one.
_RELOAD_WAIT = 5.0
# How long what the proxy serves is taken from memory before the host's files are read again. A
# change reads only its own group's; listing every endpoint directory and reading each group's file
# and ports on every change cost a creation ~0.1 s of CPU at 200 groups. The files stay the truth:
# they are read again after this long, after a change that failed, and whenever the proxy is not
# running (a restarted control plane has nothing in memory). The same holds for which proxy serves
# which group.
REREAD_INTERVAL = 60.0

# An idle old worker holds only the sessions it had at its reload; cache clients keep theirs for hours.
# It keeps them (and runs its own health checks for them, cutting those of a node that stops being
# primary) for an hour at most, through at most this many later reloads (docs/decisions.md).
SETTINGS = haproxy.ProxySettings(hard_stop_after_s=3600, max_reloads=10)
# After a queued change failed, its group waits this long before it is woken to ask again, as a
# ``Retry`` of a pass would (a reload that fails keeps failing until a port frees, say).
RETRY_PAUSE = 1.0


def entry_json(inputs: EndpointInputs) -> str:
    """A contribution's text: the node set and TLS (``EndpointInputs.to_json``) with the primary."""
    data = json.loads(inputs.to_json())
    data["primary"] = list(inputs.primary)
    return json.dumps(data, sort_keys=True)


def parse_entry(text: str | None) -> EndpointInputs | None:
    """Pure: a contribution back; None when absent or unreadable (then the group is not served)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        nodes = tuple((str(h), int(p)) for h, p in data["nodes"])
        host, port = data["primary"]
        plain = tuple((int(t), int(p)) for t, p in data.get("plain", ()))
        return EndpointInputs(nodes, (str(host), int(port)), tls=str(data.get("tls", "")), plain_ports=plain)
    except (ValueError, KeyError, TypeError):
        return None


async def proxy_of(host: Host, group_id: str) -> NodeKey:
    """The proxy that serves the group, or will: the one its endpoint directory names, the first one
    when it names none (a group served before a host ran several proxies)."""
    return _named(group_id, await host.read_file(endpoint_key(group_id), PROXY_FILE))


def _named(group_id: str, text: str | None) -> NodeKey:
    name = (text or "").strip()
    key = NodeKey(PROXY_KEY.cluster_id, name) if name else PROXY_KEY
    if proxy_index(key) is None:
        log.warning("%s: its endpoint names no proxy of the host (%r); taken as the first", group_id, name)
        return PROXY_KEY
    return key


def running_primaries(states_text: str) -> dict[str, tuple[str, int]]:
    """Pure: from a ``show servers state`` of the whole proxy, each group's primary as its
    ``be_primary`` routes to it now: the one server there out of maintenance, when exactly one is."""
    found: dict[str, tuple[str, int]] = {}
    prefix = haproxy.PRIMARY_BACKEND + "."
    for backend, servers in haproxy.parse_all_server_states(states_text).items():
        ready = [(s.address, s.port) for s in servers.values() if not s.maint]
        if backend.startswith(prefix) and len(ready) == 1:
            found[backend.removeprefix(prefix)] = ready[0]
    return found


@dataclass(frozen=True)
class _Change:
    at: Placement
    inputs: EndpointInputs
    waiters: list[asyncio.Future[None]]  # ``serve`` callers, resolved once the change is applied


def _fail(batch: Mapping[str, _Change], failure: Exception) -> None:
    for change in batch.values():
        for waiter in change.waiters:
            if not waiter.done():
                waiter.set_exception(failure)


def _reason(failure: BaseException) -> str:
    return failure.reason if isinstance(failure, Retry) else repr(failure)


_Proxy = tuple[str, NodeKey]  # a proxy: its host's id and its key there


@dataclass
class EndpointProxy:
    """Serves and withdraws groups' endpoints on a host's proxies (only the embedded host runs them:
    their admin sockets are local files, as ``HostMap.endpoint`` places every endpoint there)."""

    hosts: Hosts
    binary: str
    check: Credentials  # what the health checks log in as (the check user, never the admin)
    ca_file: Path  # the installation's CA, which TLS checks verify the nodes against
    settings: haproxy.ProxySettings = SETTINGS
    size: int = GROUPS_PER_PROXY  # groups a proxy serves before the next one starts
    # One command on the admin socket (``haproxy.admin``), lines on the master's CLI
    # (``haproxy.master``); unit tests answer for both.
    admin: Callable[[Path, str], str] = haproxy.admin
    master: Callable[[Path, Sequence[str]], str] = haproxy.master
    _locks: dict[tuple[str, NodeKey | None], asyncio.Lock] = field(default_factory=dict)
    # Per host, the proxy of each group that has one (group -> proxy key), as last read, and when.
    _homes: dict[str, tuple[float, dict[str, NodeKey]]] = field(default_factory=dict)
    # What each proxy serves (group -> its config), as last read or applied, and when read.
    _served: dict[_Proxy, tuple[float, dict[str, haproxy.EndpointConfig]]] = field(default_factory=dict)
    # Changes waiting for the next reload, per host (a group's newer change replaces its older one),
    # and the task that applies them.
    _queued: dict[str, dict[str, _Change]] = field(default_factory=dict)
    _draining: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Each group with a change queued by ``serve_soon``, in flight, or pausing after it failed: the
    # node set it asks for (``EndpointInputs.to_json``).
    _pending: dict[str, str] = field(default_factory=dict)
    # Per proxy, the worker its last reload started, until its master lists it (``_settled``).
    _unsettled: dict[_Proxy, tuple[Path, int]] = field(default_factory=dict)

    async def admin_socket(self, at: Placement, group_id: str) -> Path:
        """The admin socket of the proxy that serves ``group_id``."""
        host = self.hosts.get(at.host)
        return await host.node_dir(await proxy_of(host, group_id)) / self.settings.admin_socket

    async def script_paths(self, at: Placement, group_id: str) -> tuple[Path, Path]:
        """What a Sentinel's reconfig script finds the group's proxy by: the first proxy's admin
        socket (every other proxy's directory lies beside that one's) and the group's ``PROXY_FILE``
        (``group_id`` may be ``sentinel.SCRIPT_GROUP``, which the script replaces)."""
        host = self.hosts.get(at.host)
        first = await host.node_dir(PROXY_KEY) / self.settings.admin_socket
        return first, await host.node_dir(endpoint_key(group_id)) / PROXY_FILE

    async def serve(self, at: Placement, group_id: str, inputs: EndpointInputs) -> None:
        """Serve (or serve anew) ``group_id``'s endpoint with ``inputs``, and return once the proxy
        serves it; its ports must be allocated. Raises what the reload raised (``Retry``).

        A group that still runs its own HAProxy (an older version's) holds its ports: that process is
        stopped first, then the proxy binds them. Its clients see one short gap (their sessions are
        cut, and new connections are refused until the reload, ~0.1 s); no other group notices."""
        await self._enqueue(at, group_id, inputs)

    def serve_soon(self, at: Placement, group_id: str, inputs: EndpointInputs, done: Callable[[str], None]) -> None:
        """``serve`` without waiting: ``pending(group_id)`` tells the change until it is applied,
        then ``done(group_id)`` is called; after a failure (logged), only ``RETRY_PAUSE`` later."""
        text = inputs.to_json()
        self._pending[group_id] = text
        loop = asyncio.get_running_loop()

        def finished(future: asyncio.Future[None]) -> None:
            if future.cancelled():
                return  # the server stops
            failure = future.exception()
            if self._pending.get(group_id) != text:
                return  # withdrawn, or a newer change took its place: that one's callback tells
            if failure is None:
                self._pending.pop(group_id)
                done(group_id)
                return
            log.warning("%s: the endpoint proxy did not apply its change: %s", group_id, _reason(failure))
            loop.call_later(RETRY_PAUSE, self._pause_over, group_id, text, done)

        self._enqueue(at, group_id, inputs).add_done_callback(finished)

    def pending(self, group_id: str) -> str | None:
        """The node set of the change ``serve_soon`` queued for the group, until the proxy serves it."""
        return self._pending.get(group_id)

    def _pause_over(self, group_id: str, text: str, done: Callable[[str], None]) -> None:
        if self._pending.get(group_id) == text:
            del self._pending[group_id]
            done(group_id)

    def _enqueue(self, at: Placement, group_id: str, inputs: EndpointInputs) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._queued.setdefault(at.host, {})
        earlier = queued.get(group_id)
        # Whoever waited for the group's earlier change learns how its newer one went.
        queued[group_id] = _Change(at, inputs, [*(earlier.waiters if earlier else []), future])
        if at.host not in self._draining:
            self._draining[at.host] = asyncio.create_task(self._drain(at.host))
        return future

    async def _drain(self, host_id: str) -> None:
        """Apply the host's queued changes, all that are queued in one reload per proxy (the
        proxies' at once), until none are left."""
        try:
            while batch := self._queued.pop(host_id, None):
                async with contextlib.AsyncExitStack() as held:
                    try:
                        async with self._lock((host_id, None)):
                            routed = await self._route(host_id, batch)
                            # Each proxy's lock is taken before a withdrawal may look up where its group
                            # went (``withdraw``): it then waits for the change it would overtake.
                            for proxy in sorted(routed, key=str):
                                await held.enter_async_context(self._lock((host_id, proxy)))
                    except Exception as exc:  # the host does not answer: each waiter gets it
                        _fail(batch, exc)
                        continue
                    await asyncio.gather(*(self._apply_batch((host_id, p), part) for p, part in routed.items()))
        finally:
            del self._draining[host_id]

    async def _route(self, host_id: str, batch: dict[str, _Change]) -> dict[NodeKey, dict[str, _Change]]:
        """The batch's changes by the proxy that serves each group; a group served for the first
        time is given the first proxy serving fewer than ``size`` groups, recorded in its endpoint
        directory before it is served there."""
        host = self.hosts.get(host_id)
        homes = await self._homes_of(host, host_id)
        routed: dict[NodeKey, dict[str, _Change]] = {}
        for group_id, change in batch.items():
            home = homes.get(group_id)
            if home is None:
                loads = Counter(proxy_index(key) or 1 for key in homes.values())
                home = proxy_key(first_with_room(loads, self.size))
                await host.write_file(endpoint_key(group_id), PROXY_FILE, home.node_id)
                homes[group_id] = home
            routed.setdefault(home, {})[group_id] = change
        return routed

    async def _homes_of(self, host: Host, host_id: str) -> dict[str, NodeKey]:
        """Which proxy serves each group on the host that has one (from memory, read again from
        the groups' files after ``REREAD_INTERVAL``): one naming it, or served by the first."""
        read_at, homes = self._homes.get(host_id, (0.0, {}))
        if time.monotonic() - read_at >= REREAD_INTERVAL:
            await self._scan(host, host_id)
            read_at, homes = self._homes[host_id]
        return homes

    async def _scan(self, host: Host, host_id: str) -> dict[str, tuple[NodeKey, EndpointInputs | None]]:
        """Every group on the host that has a proxy or a contribution, with both, from their files;
        which proxy serves which group is then known from it (``_homes``)."""
        found: dict[str, tuple[NodeKey, EndpointInputs | None]] = {}
        for key in await host.nodes():
            group = endpoint_group(key)
            if group is None:
                continue
            named = await host.read_file(key, PROXY_FILE)
            inputs = parse_entry(await host.read_file(key, ENDPOINT_FILE))
            if named or inputs is not None:
                found[group] = (_named(group, named), inputs)
        self._homes[host_id] = (time.monotonic(), {group: home for group, (home, _) in found.items()})
        return found

    def _lock(self, proxy: tuple[str, NodeKey | None]) -> asyncio.Lock:
        """The lock of a proxy's changes, or with None the host's lock of choosing proxies."""
        return self._locks.setdefault(proxy, asyncio.Lock())

    async def _apply_batch(self, proxy: _Proxy, batch: dict[str, _Change]) -> None:
        """Apply one proxy's changes (its lock held by the caller)."""
        waiters = [w for change in batch.values() for w in change.waiters]
        try:
            at = next(iter(batch.values())).at
            host = self.hosts.get(at.host)
            for group_id in batch:
                own = endpoint_key(group_id)
                if await host.pid(own) is not None:
                    log.warning("%s: handing its endpoint over from its own HAProxy to the host's proxy", group_id)
                    await host.stop(own)
            await self._apply(host, at, proxy[1], {group: change.inputs for group, change in batch.items()})
            # Written once the proxy serves it: a failed reload leaves the group unserved, and its
            # next pass tries again.
            for group_id, change in batch.items():
                await host.write_file(endpoint_key(group_id), ENDPOINT_FILE, entry_json(change.inputs))
        except Exception as exc:  # each waiter gets it (a ``Retry``, or a fault of the host)
            _fail(batch, exc)
            return
        except BaseException:
            for waiter in waiters:
                waiter.cancel()
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def withdraw(self, at: Placement, group_id: str) -> None:
        """Stop serving ``group_id`` (its endpoint directory is removed next); a proxy stops with
        its last group."""
        self._pending.pop(group_id, None)
        queued = self._queued.get(at.host, {}).pop(group_id, None)
        for waiter in queued.waiters if queued else []:
            waiter.set_exception(Retry(f"{group_id}: its endpoint was withdrawn before it was served"))
        host = self.hosts.get(at.host)
        async with contextlib.AsyncExitStack() as held:
            # A change of the group being routed has then written where it went, and holds that
            # proxy's lock until it is applied: the withdrawal comes after it, never before.
            async with self._lock((at.host, None)):
                home = await proxy_of(host, group_id)
                await held.enter_async_context(self._lock((at.host, home)))
            own = endpoint_key(group_id)
            # First, so that no other group's change serves it again before its directory goes.
            await host.write_file(own, ENDPOINT_FILE, "")
            await host.stop(own)  # an older version's own HAProxy, if still there
            await self._apply(host, at, home, {group_id: None})
        self._homes.get(at.host, (0.0, {}))[1].pop(group_id, None)

    async def _apply(
        self, host: Host, at: Placement, proxy: NodeKey, changes: Mapping[str, EndpointInputs | None]
    ) -> None:
        try:
            await self._change(host, at, proxy, changes)
        except BaseException:
            # Whatever the proxy serves now, the files say it next time.
            self._served.pop((at.host, proxy), None)
            raise

    async def _change(
        self, host: Host, at: Placement, proxy: NodeKey, changes: Mapping[str, EndpointInputs | None]
    ) -> None:
        admin_socket = await host.node_dir(proxy) / self.settings.admin_socket
        running = await host.pid(proxy)
        read_at, served = self._served.get((at.host, proxy), (0.0, {}))
        if running is None or time.monotonic() - read_at >= REREAD_INTERVAL:
            read_at, served = time.monotonic(), await self._read_served(host, at, proxy)
        wanted = dict(served)
        if running is not None:
            # Every other group keeps the primary its backend routes to now.
            try:
                text = await asyncio.to_thread(self.admin, admin_socket, "show servers state")
            except Retry as exc:
                raise Retry(f"the endpoint proxy does not answer: {exc.reason}") from exc
            for group, primary in running_primaries(text).items():
                current = wanted.get(group)
                if current is not None and primary in current.nodes:
                    wanted[group] = replace(current, primary=primary)
        for group, inputs in changes.items():
            config = None if inputs is None else await self._config(host, at, group, inputs)
            if config is None:
                wanted.pop(group, None)
            else:
                wanted[group] = config
        configs = [config for _, config in sorted(wanted.items())]
        self._served[(at.host, proxy)] = (read_at, wanted)
        if not configs:
            self._unsettled.pop((at.host, proxy), None)
            await host.stop(proxy)
            return
        conf = await host.node_dir(proxy) / haproxy.CONFIG_FILE
        spec = ProcessSpec(
            argv=haproxy.argv(self.binary, conf),
            files={haproxy.CONFIG_FILE: haproxy.render_proxy(self.settings, configs)},
        )
        if running is None:
            self._unsettled.pop((at.host, proxy), None)
            await host.start(proxy, spec)
            await self._settled(admin_socket, await self._serving(admin_socket, None))
            return
        # One signal, and only once the master lists the last reload's worker: it re-executes itself
        # on a reload and handles signals again only after its new worker is up, and a second reload
        # before then would hand the listeners over twice at once. A reload not done in time is the
        # next pass's to ask again.
        unsettled = self._unsettled.pop((at.host, proxy), None)
        if unsettled is not None:
            await self._settled(*unsettled)
        before = await self._worker(admin_socket)
        await host.reload(proxy, spec, haproxy.RELOAD_SIGNAL)
        # Served once the new worker answers: its listeners are bound and its config is the new one.
        # At 200 groups its master listed it 60-160 ms later still (docs/benchmarks.md), which only
        # the next reload has to wait for.
        self._unsettled[(at.host, proxy)] = (admin_socket, await self._serving(admin_socket, before))

    async def _serving(self, admin_socket: Path, before: int | None) -> int:
        """Wait until a worker other than ``before`` answers the admin socket, and return its PID.
        ``Retry`` when none does in time (after a failed reload, such as a port held by another
        process, the master keeps the old worker)."""
        deadline = time.monotonic() + _RELOAD_WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(Retry):
                worker = await self._worker(admin_socket)
                if worker != before:
                    return worker
            await asyncio.sleep(0.01)
        raise Retry("the endpoint proxy did not load its new config (see its log)")

    async def _settled(self, admin_socket: Path, worker: int) -> None:
        """Wait until the master's CLI lists ``worker`` as its current one: the master handles
        signals again (a reload asked before then would be lost). ``Retry`` when it does not."""
        master_socket = admin_socket.parent / haproxy.MASTER_SOCKET
        deadline = time.monotonic() + _RELOAD_WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(Retry):
                show_proc = await asyncio.to_thread(self.master, master_socket, ["show proc"])
                if haproxy.current_workers(show_proc)[:1] == [worker]:
                    return
            await asyncio.sleep(0.01)
        raise Retry("the endpoint proxy's master did not take its new worker (see its log)")

    async def _worker(self, admin_socket: Path) -> int:
        """The PID of the worker that answers the admin socket (a reload replaces it)."""
        return haproxy.worker_pid(await asyncio.to_thread(self.admin, admin_socket, haproxy.WORKER_PID))

    async def _read_served(self, host: Host, at: Placement, proxy: NodeKey) -> dict[str, haproxy.EndpointConfig]:
        """The contribution of every group that ``proxy`` serves on the host, from their files."""
        found: dict[str, haproxy.EndpointConfig] = {}
        for group, (home, inputs) in (await self._scan(host, at.host)).items():
            if home != proxy:
                continue
            config = None if inputs is None else await self._config(host, at, group, inputs)
            if config is not None:
                found[group] = config
        return found

    async def _config(
        self, host: Host, at: Placement, group: str, inputs: EndpointInputs
    ) -> haproxy.EndpointConfig | None:
        key = endpoint_key(group)
        port, reader = await host.port_of(key), await host.port_of(key, READER_SLOT)
        if port is None or reader is None:
            return None  # its directory is gone (the group was deleted meanwhile)
        tls = None
        if inputs.tls:
            tls = haproxy.EndpointTls(TransitMode(inputs.tls), self.ca_file, plain_ports=inputs.plain_ports)
        return haproxy.EndpointConfig(
            bind=at.address,
            primary_port=port,
            reader_port=reader,
            nodes=inputs.nodes,
            primary=inputs.primary,
            admin_user=self.check.user,
            admin_password=self.check.password,
            tls=tls,
            group=group,
        )
