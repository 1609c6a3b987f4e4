"""Redis Sentinel: the config of one sentinel, the probes that observe it, and its reconfig script.

A cluster-mode-disabled group runs three sentinels (one per AZ, quorum 2) that watch the primary and
promote a replica when it fails. ``render_config`` is pure, as for Redis nodes; unlike a node, a
sentinel rewrites its own file (known replicas and peers, epochs, the current primary), so the file
must be writable and a re-rendered file should name the current primary. A fixed ``sentinel myid``
lets a restarted sentinel keep its identity, so its peers do not accumulate ghosts, and lets each
sentinel's config name its peers (``known-sentinel``) beside the group's replicas (``known-replica``):
it needs no discovery, only to connect, which the probe tells apart from merely listing them.

The probes use one short-lived connection each (raw RESP, ``engines.resp``), without retries. A
Sentinel may require a password (``SentinelConfig.password``: then nobody without it can ask for a
failover or reconfigure it) and may speak TLS only (``SentinelConfig.tls``: its links to the nodes
and to its peers use TLS too); the probes then AUTH first and verify its certificate.

``reconfig_script`` is the program every sentinel runs when the primary changes: it flips the group's
HAProxy primary endpoint (``engines.haproxy``) to the promoted node through the admin socket.

A shared Sentinel (one set per host watching many groups) starts on ``render_shared_config``, which
names no master; each group joins it at run time (``monitor_commands``, ``join``), is introduced to
its peers by hello messages the control plane publishes (``hello_message``), and leaves (``leave``).
Its one script (``shared_reconfig_script``) finds a group's endpoint from the master name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cachefleet.engines import resp
from cachefleet.engines.haproxy import PRIMARY_BACKEND
from cachefleet.engines.redis import NodeTls, process_lines, quote, tls_lines
from cachefleet.engines.resp import ClientTls
from cachefleet.model.errors import Retry
from cachefleet.model.transit import TransitMode

CONFIG_FILE = "sentinel.conf"
RECONFIG_SCRIPT = "reconfig.py"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MY_ID = re.compile(r"[0-9a-f]{40}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# Also how long an election may take and, doubled, when a Sentinel may try again. With one
# Sentinel of three gone (its AZ lost with the primary), the two left often start at once and
# each votes for itself: nobody is elected, and the failover waits out this twice over. 3 s
# still leaves a promotion (seen at Sentinel's INFO, once a second) room to complete.
FAILOVER_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class SentinelConfig:
    port: int
    bind: str
    data_dir: Path
    master_name: str
    primary: tuple[str, int]  # an IP address: hostnames are not resolved
    quorum: int
    admin_user: str  # the nodes' internal admin ACL user
    admin_password: str
    my_id: str  # 40 lowercase hex characters, fixed for the sentinel's life (see ``my_id``)
    down_after_ms: int = 1000
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    reconfig_script: Path | None = None
    # Clients (the control plane) and peer Sentinels must AUTH with it; None: no password (today's).
    password: str | None = None
    # TLS only: the Sentinel listens with TLS on ``port`` and reaches nodes and peers over TLS.
    tls: SentinelTls | None = None
    # What it knows from its first second instead of discovering it (``known-replica``: the
    # group's replicas; ``known-sentinel``: its peers, by address and fixed id).
    known_replicas: tuple[tuple[str, int], ...] = ()
    known_sentinels: tuple[KnownSentinel, ...] = ()


@dataclass(frozen=True)
class KnownSentinel:
    host: str  # an IP address, as for the primary
    port: int
    my_id: str  # the peer's ``sentinel myid``


@dataclass(frozen=True)
class SentinelTls:
    cert_file: Path  # one PEM: the Sentinel's key and certificate (serverAuth and clientAuth)
    ca_file: Path


def my_id(seed: str) -> str:
    """A stable sentinel id from a stable seed (e.g. the group and node ids)."""
    return hashlib.sha1(seed.encode()).hexdigest()


def render_config(cfg: SentinelConfig) -> str:
    """The complete ``sentinel.conf`` for one sentinel."""
    name = cfg.master_name
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid master name {name!r}")
    if not _MY_ID.fullmatch(cfg.my_id):
        raise ValueError(f"a sentinel id is 40 lowercase hex characters, not {cfg.my_id!r}")
    if not _NAME.fullmatch(cfg.admin_user) or cfg.admin_user == "default":
        raise ValueError(f"invalid admin user name {cfg.admin_user!r}")
    if not cfg.admin_password:
        raise ValueError("the admin user needs a password")
    host, port = cfg.primary
    if not (_IPV4.fullmatch(host) or ":" in host):
        raise ValueError(f"the primary must be an IP address (hostnames are not resolved): {host!r}")
    if cfg.quorum < 1:
        raise ValueError("the quorum is at least 1")
    if cfg.password is not None and not cfg.password:
        raise ValueError("a Sentinel password cannot be empty")
    for address in [*cfg.known_replicas, *((k.host, k.port) for k in cfg.known_sentinels)]:
        if not (_IPV4.fullmatch(address[0]) or ":" in address[0]):
            raise ValueError(f"a known replica or sentinel needs an IP address: {address[0]!r}")
    if any(not _MY_ID.fullmatch(k.my_id) or k.my_id == cfg.my_id for k in cfg.known_sentinels):
        raise ValueError("a known sentinel needs its own 40-hex id, not this sentinel's")
    listen = cfg.port
    secure: list[str] = []
    if cfg.tls is not None:
        # No plain-text port: only the control plane and peer Sentinels talk to a Sentinel.
        listen = 0
        secure = tls_lines(NodeTls(cfg.port, TransitMode.REQUIRED, cfg.tls.cert_file, cfg.tls.ca_file))
    auth: list[str] = []
    if cfg.password is not None:
        # requirepass protects this Sentinel (SENTINEL FAILOVER, SENTINEL SET...); sentinel-pass is
        # what it sends to its peers, which all share the password.
        auth = [f"requirepass {quote(cfg.password)}", f"sentinel sentinel-pass {quote(cfg.password)}"]
    lines = [
        "# Rendered by cachefleet. Sentinel rewrites this file as it learns; a restart renders it anew.",
        *process_lines(cfg.bind, listen, cfg.data_dir),
        *secure,
        *auth,
        f"sentinel myid {cfg.my_id}",
        "sentinel resolve-hostnames no",
        "sentinel announce-hostnames no",
        f"sentinel monitor {name} {host} {port} {cfg.quorum}",
        f"sentinel auth-user {name} {cfg.admin_user}",
        f"sentinel auth-pass {name} {quote(cfg.admin_password)}",
        f"sentinel down-after-milliseconds {name} {cfg.down_after_ms}",
        f"sentinel failover-timeout {name} {cfg.failover_timeout_ms}",
        f"sentinel parallel-syncs {name} 1",
        # After the monitor line, which they refer to. Listed at once, but flagged disconnected until
        # Sentinel has connected to each (``ready_replicas``, ``connected_peers``).
        *(f"sentinel known-replica {name} {h} {p}" for h, p in cfg.known_replicas),
        *(f"sentinel known-sentinel {name} {k.host} {k.port} {k.my_id}" for k in cfg.known_sentinels),
    ]
    if cfg.reconfig_script is not None:
        # One script, told apart by its arguments (``reconfig_script``): the endpoint follows the
        # promoted replica as soon as it answers as a primary, and again once Sentinel has seen it.
        lines.append(f"sentinel client-reconfig-script {name} {quote(str(cfg.reconfig_script))}")
        lines.append(f"sentinel notification-script {name} {quote(str(cfg.reconfig_script))}")
    # Nobody may point a sentinel at another script at run time (SENTINEL SET ... *-script).
    lines.append("sentinel deny-scripts-reconfig yes")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SharedSentinelConfig:
    """A Sentinel that watches many groups' primaries (one set per host): it starts watching none and
    each group joins it at run time (``join``), so its file names no master until Sentinel writes them."""

    port: int
    bind: str
    data_dir: Path
    my_id: str  # fixed for the Sentinel's life, so that its peers know it again after a restart
    password: str  # an installation secret only the control plane holds: nobody else may SET a script


def render_shared_config(cfg: SharedSentinelConfig) -> str:
    """The first ``sentinel.conf`` of a shared Sentinel. Written only when the file does not exist: the
    Sentinel rewrites it as groups join and leave, and a restart must find its monitors there."""
    if not _MY_ID.fullmatch(cfg.my_id):
        raise ValueError(f"a sentinel id is 40 lowercase hex characters, not {cfg.my_id!r}")
    if not cfg.password:
        raise ValueError("a shared Sentinel needs a password")
    lines = [
        "# Rendered by cachefleet once; Sentinel rewrites it as groups join (SENTINEL MONITOR) and leave.",
        *process_lines(cfg.bind, cfg.port, cfg.data_dir),
        f"requirepass {quote(cfg.password)}",
        f"sentinel sentinel-pass {quote(cfg.password)}",
        f"sentinel myid {cfg.my_id}",
        "sentinel resolve-hostnames no",
        "sentinel announce-hostnames no",
        # A group's scripts can only be given at run time (SENTINEL SET); the password above keeps
        # that to the control plane.
        "sentinel deny-scripts-reconfig no",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Monitor:
    """What a group sets on a shared Sentinel when it joins: its primary and the settings that a
    per-group Sentinel's file names (``SentinelConfig``)."""

    master_name: str
    primary: tuple[str, int]
    quorum: int
    admin_user: str
    admin_password: str
    down_after_ms: int = 1000
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    reconfig_script: Path | None = None


def monitor_commands(m: Monitor, *, monitored: bool) -> list[tuple[str, ...]]:
    """Pure: ``SENTINEL MONITOR`` (unless it is ``monitored`` already: a Sentinel that kept its
    monitors across a restart keeps the primary it has seen since) and ``SENTINEL SET`` of every
    setting, idempotent."""
    name = m.master_name
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid master name {name!r}")
    if not _NAME.fullmatch(m.admin_user) or m.admin_user == "default" or not m.admin_password:
        raise ValueError(f"invalid admin user {m.admin_user!r}")
    host, port = m.primary
    if not (_IPV4.fullmatch(host) or ":" in host):
        raise ValueError(f"the primary must be an IP address (hostnames are not resolved): {host!r}")
    settings = [
        ("auth-user", m.admin_user),
        ("auth-pass", m.admin_password),
        ("down-after-milliseconds", str(m.down_after_ms)),
        ("failover-timeout", str(m.failover_timeout_ms)),
        ("parallel-syncs", "1"),
    ]
    if m.reconfig_script is not None:
        settings += [
            ("client-reconfig-script", str(m.reconfig_script)),
            ("notification-script", str(m.reconfig_script)),
        ]
    commands: list[tuple[str, ...]] = []
    if not monitored:
        commands.append(("SENTINEL", "MONITOR", name, host, str(port), str(m.quorum)))
    commands.append(("SENTINEL", "SET", name, *(word for pair in settings for word in pair)))
    return commands


async def join(
    host: str,
    port: int,
    m: Monitor,
    timeout: float = 1.0,  # noqa: ASYNC109
    *,
    password: str | None,
    tls: ClientTls | None = None,
    again: bool = False,
) -> None:
    """A group joins a shared Sentinel: monitored (if it is not yet) and its settings set. ``again``:
    forgotten first (``SENTINEL REMOVE``) and monitored anew, in the same exchange, so that it lists
    only the replicas and peers that are there now. Raises ``Retry`` when the Sentinel cannot be
    reached or refuses."""
    try:
        if again:
            commands = [("SENTINEL", "REMOVE", m.master_name), *monitor_commands(m, monitored=False)]
        else:
            asked = [("SENTINEL", "MASTER", m.master_name)]
            (known,) = await _ask_all(host, port, asked, timeout, password=password, tls=tls)
            commands = monitor_commands(m, monitored=isinstance(known, list))
        replies = await _ask_all(host, port, commands, timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"sentinel {host}:{port} unreachable to monitor {m.master_name}: {exc}") from exc
    refused = [r for r in replies if isinstance(r, resp.ReplyError)]
    if refused:
        raise Retry(f"sentinel {host}:{port} refused to monitor {m.master_name}: {refused[0]}")


async def leave(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109
    *,
    password: str | None,
    tls: ClientTls | None = None,
) -> None:
    """``SENTINEL REMOVE``: the Sentinel forgets the group (already forgotten is fine)."""
    try:
        reply = await _ask(host, port, ("SENTINEL", "REMOVE", master_name), timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"sentinel {host}:{port} unreachable to forget {master_name}: {exc}") from exc
    if isinstance(reply, resp.ReplyError) and "No such master" not in str(reply):
        raise Retry(f"sentinel {host}:{port} refused to forget {master_name}: {reply}")


HELLO_CHANNEL = "__sentinel__:hello"


@dataclass(frozen=True)
class Hello:
    """One Sentinel as its hello message names it: its address and fixed id."""

    host: str
    port: int
    my_id: str


def hello_message(sentinel: Hello, master_name: str, primary: tuple[str, int]) -> str:
    """Pure: the hello a Sentinel publishes on a watched instance every 2 s (Redis 7.0 sentinel.c,
    ``sentinelSendHello``): ``ip,port,runid,current_epoch,master,master_ip,master_port,config_epoch``.
    Epochs 0: a receiver takes a higher epoch from it but never a lower one, so this hello only
    introduces the Sentinel; the real ones carry the epochs."""
    host, port = primary
    return f"{sentinel.host},{sentinel.port},{sentinel.my_id},0,{master_name},{host},{port},0"


def argv(binary: str, conf_path: Path) -> tuple[str, ...]:
    """``redis-sentinel <conf>``; for a ``redis-server`` binary, ``redis-server <conf> --sentinel``.

    Redis runs as a sentinel when the name it was started by contains ``redis-sentinel`` (Debian's
    is a symlink, so a resolved path would lose that) or when ``--sentinel`` is given; the flag is
    added unless the name already says so, so either binary works.
    """
    if "sentinel" in Path(binary).name:
        return (binary, str(conf_path))
    return (binary, str(conf_path), "--sentinel")


# -- observation -------------------------------------------------------------------------------


# Sentinel's own default (``SENTINEL DEBUG ping-period``): how often it pings, and how long it waits
# before it tries again to connect to an instance it could not reach.
PING_PERIOD_MS = 1000
# While it cannot reach a peer that runs (a peer started after it refused its first connection), it
# tries every 100 ms instead of every second; the control plane sets it back once linked.
FAST_PING_PERIOD_MS = 100
# ``ask-period``: how often a Sentinel that sees the primary down asks its peers whether they agree
# (Sentinel's default is 1000 ms). A peer's "down" answer counts toward the quorum for five ask
# periods, and it is kept across a failover: with the default, the answers about the old primary
# still counted for seconds after the switch, so a single Sentinel's brief false ``+sdown`` of the
# new primary (it reconnects up to a ping period after the switch while counting the outage from the
# switch) reached the quorum alone and started a second failover, losing the writes the first
# promoted primary had acknowledged. At 100 ms those answers expire half a second after the switch,
# and peers that do see a primary down agree within a tenth of a second instead of a second. The
# asks only happen while a primary looks down, so this costs nothing in steady state.
ASK_PERIOD_MS = 100


@dataclass(frozen=True)
class Timings:
    """A Sentinel's runtime-only periods (``SENTINEL DEBUG``), in milliseconds: a restarted Sentinel
    has its defaults again until they are set."""

    ping_period_ms: int
    ask_period_ms: int


@dataclass(frozen=True)
class SentinelView:
    master_host: str
    master_port: int
    flags: frozenset[str]  # e.g. {'master'}, {'master', 's_down'}, {'master', 'failover_in_progress'}
    num_replicas: int  # listed, connected or not (known replicas are listed at once)
    num_other_sentinels: int  # likewise
    quorum: int
    # Replicas it is connected to that report their link to the master it watches up; peers it is
    # connected to that it does not consider down: what a failover needs, not merely what is listed.
    ready_replicas: int = 0
    connected_peers: int = 0
    timings: Timings | None = None  # from ``SENTINEL DEBUG``; None when not read


async def probe(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109 (also the socket timeout)
    *,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> SentinelView | None:
    """What the sentinel believes about ``master_name`` now; None when it cannot be reached, refuses
    us, or does not monitor that name."""
    try:
        return await master_view(host, port, master_name, timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError):
        return None


async def master_view(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109 (also the socket timeout)
    *,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> SentinelView | None:
    """``probe`` that raises when the sentinel cannot be reached (``OSError``, ``TimeoutError``,
    ``resp.ProtocolError``), so a caller can tell a wrong transport from an answer; None when it
    answered with an error (it refuses us, or does not monitor the name yet).

    One connection and one round trip: the master, its replicas, the peers and the debug periods."""
    commands = [
        ("SENTINEL", "MASTER", master_name),
        ("SENTINEL", "REPLICAS", master_name),
        ("SENTINEL", "SENTINELS", master_name),
        ("SENTINEL", "DEBUG"),
    ]
    replies = await _ask_all(host, port, commands, timeout, password=password, tls=tls)
    master, replicas, peers, debug = replies
    if not isinstance(master, list):
        return None
    view = view_from_reply(reply_fields(master))
    return replace(
        view,
        ready_replicas=ready_replicas(_entries(replicas), (view.master_host, view.master_port)),
        connected_peers=connected_peers(_entries(peers)),
        timings=_timings(debug),
    )


def _entries(reply: resp.Reply) -> list[dict[str, str]]:
    return [reply_fields(entry) for entry in reply] if isinstance(reply, list) else []


def ready_replicas(replicas: Sequence[Mapping[str, str]], master: tuple[str, int]) -> int:
    """Pure: the replicas a failover could promote now. A ``known-replica`` is listed before Sentinel
    has reached it (flagged ``disconnected``) and before it has its data (link ``err``)."""
    return sum(
        1
        for r in replicas
        if set(r.get("flags", "").split(",")) == {"slave"}
        and r.get("master-link-status") == "ok"
        and (r.get("master-host"), r.get("master-port")) == (master[0], str(master[1]))
    )


def connected_peers(peers: Sequence[Mapping[str, str]]) -> int:
    """Pure: the peers it can ask to agree on a failure and to vote (a ``known-sentinel`` is listed
    before Sentinel has connected to it, flagged ``disconnected``)."""
    return sum(1 for p in peers if not set(p.get("flags", "").split(",")) & {"disconnected", "s_down", "o_down"})


def _timings(reply: resp.Reply) -> Timings | None:
    """``SENTINEL DEBUG`` without arguments: name/value pairs (RESP2) or a map."""
    fields = reply_fields(reply) if isinstance(reply, list | dict) else {}
    values = {str(k).upper(): str(v) for k, v in fields.items()}
    ping, ask = values.get("PING-PERIOD", ""), values.get("ASK-PERIOD", "")
    return Timings(int(ping), int(ask)) if ping.isdigit() and ask.isdigit() else None


async def set_timings(
    host: str,
    port: int,
    timings: Timings,
    timeout: float = 1.0,  # noqa: ASYNC109
    *,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> None:
    """``SENTINEL DEBUG ping-period .. ask-period ..``: runtime only (a restarted Sentinel has its
    defaults again). Raises ``Retry`` when the sentinel cannot be reached or refuses."""
    command = (
        "SENTINEL",
        "DEBUG",
        "ping-period",
        str(timings.ping_period_ms),
        "ask-period",
        str(timings.ask_period_ms),
    )
    try:
        reply = await _ask(host, port, command, timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"sentinel {host}:{port} unreachable to set its periods: {exc}") from exc
    if isinstance(reply, resp.ReplyError):
        raise Retry(f"sentinel {host}:{port} refused its periods: {reply}")


def view_from_reply(fields: Mapping[str, Any]) -> SentinelView:
    """Pure: a view from the fields of ``SENTINEL MASTER``."""
    return SentinelView(
        master_host=str(fields["ip"]),
        master_port=int(fields["port"]),
        flags=frozenset(flag for flag in str(fields.get("flags", "")).split(",") if flag),
        num_replicas=int(fields.get("num-slaves", 0)),
        num_other_sentinels=int(fields.get("num-other-sentinels", 0)),
        quorum=int(fields.get("quorum", 0)),
    )


async def _ask(
    host: str,
    port: int,
    command: tuple[str, ...],
    timeout: float,  # noqa: ASYNC109 (also the socket timeout)
    *,
    password: str | None,
    tls: ClientTls | None,
) -> resp.Reply:
    """One command to a Sentinel, after AUTH when it has a password: its reply (an error reply as a
    ``ReplyError``, a refused AUTH included)."""
    return (await _ask_all(host, port, [command], timeout, password=password, tls=tls))[0]


async def _ask_all(
    host: str,
    port: int,
    commands: Sequence[tuple[str, ...]],
    timeout: float,  # noqa: ASYNC109 (also the socket timeout)
    *,
    password: str | None,
    tls: ClientTls | None,
) -> list[resp.Reply]:
    """Commands pipelined on one connection, after AUTH when it has a password: one reply each (a
    refused AUTH is every command's reply)."""
    sent = [("AUTH", password), *commands] if password is not None else list(commands)
    replies = await resp.exchange(host, port, sent, timeout=timeout, tls=tls)
    if password is not None:
        if isinstance(replies[0], resp.ReplyError):
            return [replies[0]] * len(commands)
        return replies[1:]
    return replies


async def failover(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109
    *,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> None:
    """Ask the sentinel for a failover now (without agreement from the others).

    Returns once the sentinel has started it. Raises ``Retry`` when no replica can be promoted
    (``NOGOODSLAVE``), one is already in progress (``INPROG``), the sentinel refuses us, or it
    cannot be reached.
    """
    try:
        reply = await _ask(host, port, ("SENTINEL", "FAILOVER", master_name), timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError) as exc:
        raise Retry(f"sentinel {host}:{port} unreachable for a failover of {master_name}: {exc}") from exc
    if isinstance(reply, resp.ReplyError):
        raise Retry(f"sentinel {host}:{port} refused a failover of {master_name}: {reply}")


async def replicas(
    host: str,
    port: int,
    master_name: str,
    timeout: float = 1.0,  # noqa: ASYNC109
    *,
    password: str | None = None,
    tls: ClientTls | None = None,
) -> list[dict[str, str]] | None:
    """``SENTINEL REPLICAS``: one dict of fields per replica the sentinel knows (``ip``, ``port``,
    ``flags``, ``master-link-status``, ``slave-repl-offset``...); None when unreachable."""
    try:
        reply = await _ask(host, port, ("SENTINEL", "REPLICAS", master_name), timeout, password=password, tls=tls)
    except (OSError, TimeoutError, resp.ProtocolError):
        return None
    if not isinstance(reply, list):
        return None
    return [reply_fields(entry) for entry in reply]


def reply_fields(reply: Any) -> dict[str, str]:
    """Field name -> text, from a SENTINEL reply: redis-py parses SENTINEL MASTER into a dict (flags
    as a set under RESP3); other replies arrive as flat name/value lists."""
    if isinstance(reply, Mapping):
        if "flags" in reply and not isinstance(reply["flags"], str):  # redis-py's parsed form
            return {str(k): ",".join(sorted(v)) if k == "flags" else str(v) for k, v in reply.items()}
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


# -- the client-reconfig-script ----------------------------------------------------------------

# The script starts as a shell script that hands over to Python only for the calls it acts on:
# Sentinel runs its notification-script for every warning event (each ``+set``, ``+monitor``,
# ``+sdown``...), a shared Sentinel for every group it watches, and a Python start costs ~12 ms of
# CPU where this sh part costs under 1 ms (measured on the 2-core machine of docs/benchmarks.md).
# To Python the shell part is a string, opened by the quotes before ``true`` and closed by the line
# after ``exec``.
_SCRIPT = """#!/bin/sh
''''true
case "$#:$1" in
    2:+selected-slave|2:-failover-abort-slave-timeout) ;;
    2:*) exit 0 ;;
esac
exec {python} -I "$0" "$@"
'''
# Rendered by cachefleet: Sentinel's client-reconfig-script and notification-script for one
# replication group. In each HAProxy backend of BACKENDS that the endpoint has, it leaves one server
# the only one out of maintenance and cuts the sessions of every other (a group in TLS preferred mode
# has a second, plain-text primary backend). Idempotent. It never exits 1, which would make Sentinel
# run it again much later, possibly after a newer failover; the control plane enforces the same state.
#
# As the client-reconfig-script, Sentinel runs it (leader and observers alike) once the primary has
# changed, with <master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>: n<to-port>.
#
# As the notification-script, Sentinel runs it for every warning event, with <event> <description>:
# - "+selected-slave" (the leader chose the replica it is about to promote): n<its port>, with its
#   health forced down, so HAProxy sends it nothing until its own check sees it answer role:master,
#   checking a down server every DOWN_INTERVAL. Sentinel only notices the promotion at its next INFO
#   to the replica, up to a second later: the endpoint follows the promotion itself instead.
# - "-failover-abort-slave-timeout" (that promotion was given up): the master Sentinel still names.
# Every other event is ignored, by the shell part above, before Python starts.
import os
import socket
import sys

SOCKET = {socket!r}
BACKENDS = {backends!r}
GROUP = {group!r}  # in BACKENDS and PROXY_FILE, stands for the master's name (a shared Sentinel's script)
MASTER = {master!r}  # the proxy's master CLI, beside the admin socket (None: no old workers to reach)
# The group's file naming the proxy that serves it, whose directory lies beside SOCKET's; SOCKET's
# proxy when the file is absent or when this is None.
PROXY_FILE = {proxy_file!r}
TIMEOUT = 1.0


def ask(command, path=None):
    # Relative to the socket's directory: its absolute path may exceed AF_UNIX's 108 bytes.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path or os.path.basename(SOCKET))
        sock.sendall(command.encode() + b"\\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def cut_old(primary):
    # Workers that predate the proxy's last reload keep their sessions, but run no health checks and
    # take no "set server": their sessions to any other server of BACKENDS are cut one by one. The
    # master's CLI sends a line prefixed "@!<pid>" to that worker only, and keeps a session until "quit".
    if MASTER is None:
        return
    section = ""
    for line in ask("show proc\\nquit", MASTER).splitlines():
        if line.startswith("#"):
            section = line.strip("# ").strip()
            continue
        fields = line.split()
        if section != "old workers" or not fields or not fields[0].isdigit():
            continue
        stale = []
        for entry in ask("@!%s show sess\\nquit" % fields[0], MASTER).splitlines():
            session, _, rest = entry.partition(": ")
            values = dict(f.split("=", 1) for f in rest.split() if "=" in f)
            if session.startswith("0x") and values.get("be") in BACKENDS and values.get("srv") != primary:
                stale.append("@!%s shutdown session %s" % (fields[0], session))
        if stale:
            ask("\\n".join(stale + ["quit"]), MASTER)


def proxy_dir(name):
    directory = os.path.dirname(SOCKET)
    if PROXY_FILE is None:
        return directory
    path = PROXY_FILE
    if GROUP is not None:  # its last occurrence: the directories above may spell it too
        head, _, tail = path.rpartition(GROUP)
        path = head + name + tail
    try:
        with open(path) as named:
            proxy = named.read().strip()
    except FileNotFoundError:
        return directory
    if not proxy:
        return directory
    if proxy.strip("abcdefghijklmnopqrstuvwxyz0123456789-"):
        raise OSError("unexpected proxy name %r" % (proxy,))
    return os.path.join(os.path.dirname(directory), proxy)


def target(argv):
    # (server name, whether HAProxy must see it answer role:master first, master name), or None to
    # do nothing.
    if len(argv) == 8 and argv[7].isdigit():
        return "n" + argv[7], False, argv[1]
    if len(argv) == 3:
        words = argv[2].split()
        # "slave <ip>:<port> <ip> <port> @ <master> <ip> <port>"
        if argv[1] == "+selected-slave" and len(words) == 8 and words[3].isdigit():
            return "n" + words[3], True, words[5]
        # "master <name> <ip> <port>"
        if argv[1] == "-failover-abort-slave-timeout" and len(words) == 4 and words[3].isdigit():
            return "n" + words[3], False, words[1]
        return None
    print("reconfig: unexpected arguments %r" % (argv[1:],), file=sys.stderr)
    return None


def main(argv):
    global BACKENDS
    chosen = target(argv)
    if chosen is None:
        return 0 if len(argv) == 3 else 2
    primary, checked, name = chosen
    if GROUP is not None:
        # A shared Sentinel runs one script for every group it watches: the group's backends are
        # named after the master (a group id: lowercase letters, digits, hyphens).
        if not name or name.strip("abcdefghijklmnopqrstuvwxyz0123456789-") or name.startswith("-"):
            print("reconfig: unexpected master name %r" % (name,), file=sys.stderr)
            return 2
        BACKENDS = tuple(b.replace(GROUP, name) for b in BACKENDS)
    try:
        os.chdir(proxy_dir(name))
        commands = []
        for backend in BACKENDS:
            names = []
            answer = ask("show servers state " + backend)
            if answer.startswith("Can't find backend"):
                continue
            for line in answer.splitlines():
                fields = line.split()
                if len(fields) > 3 and not line.startswith("#") and fields[1] == backend:
                    names.append(fields[3])
            if primary not in names:
                print("reconfig: %s has no server %s" % (backend, primary), file=sys.stderr)
                return 2
            for name in sorted(names):
                if name != primary:
                    commands.append("set server %s/%s state maint" % (backend, name))
                    commands.append("shutdown sessions server %s/%s" % (backend, name))
            commands.append("set server %s/%s state ready" % (backend, primary))
            if checked:
                # After "ready", which counts it up (before, "ready" undoes it). A connection that
                # HAProxy routes in between reaches a replica: READONLY, never a lost write.
                commands.append("set server %s/%s health down" % (backend, primary))
        if not commands:
            print("reconfig: haproxy has none of %s" % (", ".join(BACKENDS),), file=sys.stderr)
            return 2
        answer = ask("; ".join(commands))
    except OSError as exc:
        print("reconfig: haproxy admin socket: %s" % (exc,), file=sys.stderr)
        return 2
    if answer.strip():
        print("reconfig: haproxy said %r" % (answer.strip(),), file=sys.stderr)
        return 2
    try:
        cut_old(primary)
    except OSError as exc:
        print("reconfig: haproxy master socket: %s" % (exc,), file=sys.stderr)
        return 2
    print("reconfig: %s is the primary in %s" % (primary, ", ".join(BACKENDS)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
"""


def reconfig_script(
    python: str,
    admin_socket: Path,
    backends: Sequence[str] = (PRIMARY_BACKEND,),
    master_socket: Path | None = None,
    proxy_file: Path | None = None,
) -> str:
    """The text of the client-reconfig-script that points ``admin_socket``'s HAProxy at the new
    primary in every backend of ``backends`` (``haproxy.primary_backends``: with TLS ``preferred``,
    the plain-text one too), and through ``master_socket`` (in the same directory), when given,
    cuts its old workers' sessions to any other server. With ``proxy_file`` (``control.proxy``'s
    ``PROXY_FILE`` of the group), the HAProxy is the one that file names, its directory beside
    ``admin_socket``'s, and sockets of the same names. Stdlib only; ``python`` is its interpreter,
    an absolute path, run isolated with ``-I`` so that PYTHON* variables Sentinel inherited from the
    control plane do not reach it."""
    if not python.startswith("/") or any(c.isspace() for c in python):
        raise ValueError(f"the interpreter must be an absolute path without spaces: {python!r}")
    if not admin_socket.is_absolute():
        raise ValueError(f"the admin socket path must be absolute: {admin_socket}")
    if not backends or any(not _NAME.fullmatch(b) for b in backends):
        raise ValueError(f"invalid backend names {backends!r}")
    if master_socket is not None and master_socket.parent != admin_socket.parent:
        raise ValueError(f"the master socket must be beside the admin socket: {master_socket}")
    if proxy_file is not None and not proxy_file.is_absolute():
        raise ValueError(f"the proxy file's path must be absolute: {proxy_file}")
    master = master_socket.name if master_socket is not None else None
    group = SCRIPT_GROUP if any(SCRIPT_GROUP in b for b in backends) else None
    return _SCRIPT.format(
        python=python,
        socket=str(admin_socket),
        backends=tuple(backends),
        master=master,
        group=group,
        proxy_file=None if proxy_file is None else str(proxy_file),
    )


# Where a shared Sentinel's script puts the master's name in its backends' names: upper case, which
# no group id has (they are lower case).
SCRIPT_GROUP = "GROUPID"


def shared_reconfig_script(
    python: str,
    admin_socket: Path,
    backends: Sequence[str],
    master_socket: Path | None = None,
    proxy_file: Path | None = None,
) -> str:
    """``reconfig_script`` for a shared Sentinel: ``backends`` (and ``proxy_file``, when given) name
    ``SCRIPT_GROUP`` where the group id goes (the master name Sentinel passes the script)."""
    if not backends or not all(SCRIPT_GROUP in b for b in backends):
        raise ValueError(f"every backend name must contain {SCRIPT_GROUP}: {backends!r}")
    if proxy_file is not None and SCRIPT_GROUP not in str(proxy_file):
        raise ValueError(f"the proxy file's path must contain {SCRIPT_GROUP}: {proxy_file}")
    return reconfig_script(python, admin_socket, backends, master_socket, proxy_file)
