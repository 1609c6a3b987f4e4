"""HAProxy as the replication groups' endpoint proxy: the config we render, and its admin socket.

One HAProxy process per host (master-worker, TCP mode, one thread) serves every group's endpoints
(``render_proxy``); each group has two stable ports, with its frontends and backends named after it
(``qualified``):

- the primary endpoint (``be_primary``): every member is listed, but only the node the control
  plane (or Sentinel's reconfig script) names as primary is out of maintenance, and it must also
  answer ``role:master`` to its health check. A node that comes back as a stray master never takes
  writes, and clients of a node that stops being primary are cut off so that they reconnect.
- the reader endpoint (``be_reader``): every member that answers ``role:slave`` with
  ``master_link_status:up``, round robin; when none is healthy, reads go to the primary.

Groups come and go by a seamless reload (``RELOAD_SIGNAL``): the master starts a new worker, which
takes over the listening sockets (``expose-fd listeners``), and the old worker keeps the sessions it
holds, running its own health checks for them, until they close or ``hard-stop-after`` ends them
(docs/decisions.md). ``render_config`` (one group, unqualified names) is what the engine tests use.

``render_proxy`` and ``render_config`` are pure. The admin socket helpers are small synchronous calls (one short
connection each). The socket's path is relative to the process's working directory (the node dir),
because an absolute node dir path may exceed AF_UNIX's 108-byte limit; ``admin`` reaches it through
``/proc/self/fd`` when its absolute path is too long, so the caller never has to ``chdir``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachefleet.engines import resp
from cachefleet.model.errors import Retry
from cachefleet.model.transit import TransitMode

CONFIG_FILE = "haproxy.cfg"
ADMIN_SOCKET = "admin.sock"  # the current worker's CLI
MASTER_SOCKET = "master.sock"  # the master's CLI, which reaches old workers too (``cut_old_sessions``)
PRIMARY_BACKEND = "be_primary"
READER_BACKEND = "be_reader"
# With TLS preferred, plain-text clients of the same endpoint ports go to these.
PLAIN_PRIMARY_BACKEND = "be_primary_plain"
PLAIN_READER_BACKEND = "be_reader_plain"
# Every backend that may follow the primary, whatever the TLS mode (a config has one or both).
ALL_PRIMARY_BACKENDS = (PRIMARY_BACKEND, PLAIN_PRIMARY_BACKEND)
# Health check periods (see ``_backend``): every server's in steady state, and the schedule of the
# servers in maintenance in a primary backend (they are never checked; see ``_backend``).
CHECK_INTER = "5s"
STANDBY_CHECK_INTER = "200ms"
# The master process of master-worker mode re-reads its config and starts a new worker on SIGUSR2.
RELOAD_SIGNAL = signal.SIGUSR2

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SOCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_SUN_PATH_MAX = 107  # sizeof(sun_path) is 108, including the terminating NUL
# srv_admin_state bits (include/haproxy/server-t.h): forced, inherited or resolution maintenance.
# The config's "disabled" sets CMAINT (0x04) together with FMAINT; "state ready" clears FMAINT only.
_ADMF_MAINT = 0x01 | 0x02 | 0x20
_OP_STATE_UP = 2  # srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping


@dataclass(frozen=True)
class EndpointConfig:
    bind: str
    primary_port: int
    reader_port: int
    nodes: tuple[tuple[str, int], ...]  # every member of the group, primary included
    primary: tuple[str, int]  # the only server of be_primary not in maintenance
    admin_user: str
    admin_password: str
    admin_socket: str = ADMIN_SOCKET  # relative to the process's working directory
    maxconn: int = 4096
    # After a reload the old worker keeps its client sessions, out of reach of the admin socket (which
    # the new worker owns); this bounds how long they can stay tied to a node that stopped being primary.
    hard_stop_after_s: int = 10
    tls: EndpointTls | None = None
    # The group the endpoint serves, which qualifies its frontend and backend names in a shared
    # proxy; "" keeps the plain names (one group per process).
    group: str = ""


@dataclass(frozen=True)
class ProxySettings:
    """The global section of a shared proxy: its admin socket, how many sessions it takes, and how
    long an old worker may keep its sessions after a reload (``hard_stop_after_s``) and through how
    many reloads (``max_reloads``: the master then stops it, cutting what it still holds)."""

    admin_socket: str = ADMIN_SOCKET
    maxconn: int = 4096
    hard_stop_after_s: int = 10
    max_reloads: int | None = None


@dataclass(frozen=True)
class EndpointTls:
    """TLS behind the endpoints. Client sessions pass through HAProxy untouched (TCP mode): TLS runs
    end to end between the client and the node, whose certificate must name the endpoint address.
    With ``required`` the nodes' ports in ``EndpointConfig.nodes`` are their TLS ports, and the
    health checks speak TLS too, verified against ``ca_file``. With ``preferred`` each endpoint
    port takes both: the first byte of a session (0x16 opens a TLS handshake; a Redis command never
    starts with it) sends it to the nodes' TLS ports or to their plain ones (``plain_ports``, by
    TLS port); each backend's checks speak as its clients do."""

    mode: TransitMode
    ca_file: Path
    plain_ports: tuple[tuple[int, int], ...] = ()  # (TLS port, plain-text port) of each node, preferred only


def server_name(port: int) -> str:
    """The name of a node's server line in both backends (nodes are told apart by port)."""
    return f"n{port}"


def qualified(name: str, group: str) -> str:
    """A frontend's or backend's name in a shared proxy: ``be_primary.<group id>``; group ids hold
    letters, digits and hyphens only, so the names of two groups never meet."""
    return f"{name}.{group}" if group else name


def group_primary_backends(group: str, mode: TransitMode | None) -> tuple[str, ...]:
    """The backends of ``group`` that follow its primary in a shared proxy (``primary_backends``)."""
    names = ALL_PRIMARY_BACKENDS if mode is TransitMode.PREFERRED else (PRIMARY_BACKEND,)
    return tuple(qualified(n, group) for n in names)


def render_config(cfg: EndpointConfig) -> str:
    """The complete ``haproxy.cfg`` for one group's endpoints, alone in its process."""
    settings = ProxySettings(cfg.admin_socket, cfg.maxconn, cfg.hard_stop_after_s)
    return render_proxy(settings, (cfg,))


def render_proxy(settings: ProxySettings, endpoints: Sequence[EndpointConfig]) -> str:
    """The complete ``haproxy.cfg`` of a proxy serving ``endpoints`` (at least one), each group's
    sections named after it."""
    if not _SOCKET_NAME.fullmatch(settings.admin_socket):
        raise ValueError(f"the admin socket must be a plain file name, not {settings.admin_socket!r}")
    if not endpoints:
        raise ValueError("a proxy needs at least one endpoint")
    groups = [e.group for e in endpoints]
    if len(set(groups)) != len(groups) or (len(groups) > 1 and not all(groups)):
        raise ValueError("every endpoint of a shared proxy needs its own group name")
    if any(g and not _GROUP_NAME.fullmatch(g) for g in groups):
        raise ValueError(f"invalid group names {groups!r}")
    ports = [p for e in endpoints for p in (e.primary_port, e.reader_port)]
    if len(set(ports)) != len(ports):
        raise ValueError("endpoint ports must be distinct")
    lines = [
        "# Rendered by cachefleet; rewritten on every start and reload, so edits here do not last.",
        "global",
        # HAProxy 2.6 otherwise loads every system CA certificate at start for its internal HTTP
        # client, which we never use: ~40 ms of CPU per start, more than the whole endpoint needs.
        "    httpclient.ssl.verify none",
        "    nbthread 1",
        f"    maxconn {settings.maxconn}",
        f"    hard-stop-after {settings.hard_stop_after_s}s",
        *([f"    mworker-max-reloads {settings.max_reloads}"] if settings.max_reloads is not None else []),
        # "unix@": a bare relative name would be read as host:port. "expose-fd listeners": a new
        # worker takes the listening sockets over from the old one, so no connection is refused.
        f"    stats socket unix@{settings.admin_socket} mode 600 level admin expose-fd listeners",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",
        # Cache clients keep idle connections open for hours.
        "    timeout client 24h",
        "    timeout server 24h",
        "    timeout check 1s",
    ]
    for cfg in endpoints:
        lines += _group_sections(cfg)
    return "\n".join(lines) + "\n"


def _group_sections(cfg: EndpointConfig) -> list[str]:
    if not _USER_NAME.fullmatch(cfg.admin_user):
        raise ValueError(f"invalid admin user name {cfg.admin_user!r}")
    if not cfg.admin_password:
        raise ValueError("the admin user needs a password")
    if not cfg.nodes:
        raise ValueError("an endpoint needs at least one node")
    if len({port for _, port in cfg.nodes}) != len(cfg.nodes):
        raise ValueError("node ports must be distinct (servers are named by port)")
    if cfg.primary not in cfg.nodes:
        raise ValueError(f"the primary {cfg.primary} is not one of the nodes")
    plain = _plain_ports(cfg)
    sniffing = plain is not None
    g = cfg.group
    primary_be, reader_be = qualified(PRIMARY_BACKEND, g), qualified(READER_BACKEND, g)
    plain_primary_be, plain_reader_be = qualified(PLAIN_PRIMARY_BACKEND, g), qualified(PLAIN_READER_BACKEND, g)
    lines = [
        "",
        f"frontend {qualified('fe_primary', g)}",
        f"    bind {_address(cfg.bind, cfg.primary_port)}",
        *(_sniffing() if sniffing else []),
    ]
    if sniffing:
        lines += [f"    use_backend {primary_be} if tls", f"    default_backend {plain_primary_be}"]
    else:
        lines.append(f"    default_backend {primary_be}")
    lines += ["", f"frontend {qualified('fe_reader', g)}", f"    bind {_address(cfg.bind, cfg.reader_port)}"]
    # With no healthy replica, reads go to the primary (which is never in a reader's rotation).
    if sniffing:
        lines += [
            *_sniffing(),
            f"    use_backend {reader_be} if tls {{ nbsrv({reader_be}) gt 0 }}",
            f"    use_backend {primary_be} if tls",
            f"    use_backend {plain_reader_be} if {{ nbsrv({plain_reader_be}) gt 0 }}",
            f"    default_backend {plain_primary_be}",
        ]
    else:
        lines += [
            f"    use_backend {reader_be} if {{ nbsrv({reader_be}) gt 0 }}",
            f"    default_backend {primary_be}",
        ]
    lines += _backend(cfg, primary_be, primary=True, plain=plain, serve_plain=False)
    if plain is not None:
        lines += _backend(cfg, plain_primary_be, primary=True, plain=plain, serve_plain=True)
    lines += _backend(cfg, reader_be, primary=False, plain=plain, serve_plain=False)
    if plain is not None:
        lines += _backend(cfg, plain_reader_be, primary=False, plain=plain, serve_plain=True)
    return lines


def primary_backends(cfg: EndpointConfig) -> tuple[str, ...]:
    """The backends whose servers follow the primary: what ``set_primary`` and Sentinel's reconfig
    script must flip together."""
    names = (PRIMARY_BACKEND,) if _plain_ports(cfg) is None else ALL_PRIMARY_BACKENDS
    return tuple(qualified(n, cfg.group) for n in names)


def _plain_ports(cfg: EndpointConfig) -> dict[int, int] | None:
    """TLS port -> plain-text port of every node with TLS preferred; None otherwise."""
    tls = cfg.tls
    if tls is None or tls.mode is TransitMode.REQUIRED:
        if tls is not None and tls.plain_ports:
            raise ValueError("plain-text ports go with TLS preferred only")
        return None
    plain = dict(tls.plain_ports)
    if sorted(plain) != sorted(port for _, port in cfg.nodes):
        raise ValueError("with TLS preferred every node needs its plain-text port")
    return plain


def _sniffing() -> list[str]:
    # Wait for the client's first byte, which a client always sends first (Redis clients speak first;
    # a TLS client opens with its handshake record, type 0x16).
    return [
        "    tcp-request inspect-delay 5s",
        "    tcp-request content accept if { req.len gt 0 }",
        "    acl tls req.payload(0,1) -m bin 16",
    ]


def _backend(
    cfg: EndpointConfig, name: str, *, primary: bool, plain: dict[int, int] | None, serve_plain: bool
) -> list[str]:
    # One request: AUTH, INFO replication, QUIT, as RESP arrays in hex. Hex needs no quoting of the
    # password for haproxy's parser (which expands "$VAR" and backslashes) nor for Redis's inline
    # command splitter (spaces, quotes). QUIT makes Redis close the connection after answering, so an
    # answer without the expected role fails the check at once instead of after "timeout check".
    request = resp.encode("AUTH", cfg.admin_user, cfg.admin_password) + resp.encode("INFO", "replication")
    request += resp.encode("QUIT")
    # A TLS server's check is a TLS session on its TLS port, the node verified against the
    # installation's CA, in ``preferred`` too: on the way to ``required`` the nodes close their plain
    # ports while the worker of the old config still serves (a reload takes a moment, longer under
    # load), and checks on those ports took every TLS server down with them (clients saw EOF).
    tls_checks = cfg.tls is not None and not serve_plain
    connect = "    tcp-check connect ssl" if tls_checks else "    tcp-check connect"
    # A dead or demoted node's clients are cut off: they reconnect and find the new primary. In a
    # primary backend, a server out of maintenance but down is checked every 50 ms: the replica that
    # Sentinel's leader is promoting (its health forced down by ``sentinel.reconfig_script``) takes
    # writes within 50 ms of answering role:master. Servers in maintenance are not checked at all.
    # fastinter: a worker starts with every server up and its health one check from down, a state
    # checked at fastinter. A reader connection made right after a reload could be balanced to the
    # primary (in every reader backend) and then cut when its first check marked it down, up to an
    # inter later (seen in a move to TLS required: reader clients got EOF). At 20 ms that window is
    # a fiftieth of a second; the same state after one failed check is settled as fast.
    # inter: each check is a new connection, AUTH and INFO on the node; at 500 ms they cost 18% of a
    # core at 200 groups (docs/benchmarks.md, Scale). At 5 s they are a backstop: a reader connection
    # that a dead server refuses is sent to another one (redispatch). A primary backend has one
    # server to send to: the first connection its dead primary refuses marks it down (observe
    # layer4), so that the next ones are closed at once instead of waiting in HAProxy's retries (a
    # second each) while the promotion goes on: without it the failover outage was ~0.1 s longer.
    # A reader backend must not: marking down cut the very connection being redispatched (1 failure
    # in 20 right after a kill, 0 without; HAProxy 2.6). But a server taken out of maintenance is first
    # checked when its check was next due on its own schedule, which runs on in maintenance without
    # checking: a replica Sentinel's script readies must be looked at soon, so a primary backend's
    # servers in maintenance keep a 200 ms schedule (no check is sent while they stay there). At 5 s
    # the first look came after Sentinel's own switch (failover outage ~2.3 s instead of ~1.75 s).
    interval = f"inter {CHECK_INTER} fastinter 20ms" + (" downinter 50ms" if primary else "")
    observe = " observe layer4 error-limit 1 on-error mark-down" if primary else ""
    servers = f"    default-server check {interval} fall 2 rise 1{observe} on-marked-down shutdown-sessions"
    if tls_checks and cfg.tls is not None:
        servers += f" verify required ca-file {_quoted_path(cfg.tls.ca_file)}"
    lines = [
        "",
        f"backend {name}",
        *([] if primary else ["    balance roundrobin", "    option redispatch"]),
        "    option tcp-check",
        connect,
        f"    tcp-check send-binary {request.hex()}  # AUTH {cfg.admin_user} <password>; INFO replication; QUIT",
        *(
            ["    tcp-check expect string role:master"]
            if primary
            else ["    tcp-check expect string role:slave", "    tcp-check expect string master_link_status:up"]
        ),
        servers,
    ]
    for host, port in cfg.nodes:
        address = _address(host, plain[port] if plain is not None and serve_plain else port)
        # "disabled" = administrative maintenance: only Sentinel's script or the control plane (admin
        # socket, or a reload naming another primary) lets another node take writes.
        suffix = f" disabled inter {STANDBY_CHECK_INTER}" if primary and (host, port) != cfg.primary else ""
        lines.append(f"    server {server_name(port)} {address}{suffix}")
    return lines


def _quoted_path(path: Path) -> str:
    text = str(path)
    if not path.is_absolute() or any(c in text for c in " \t\n\"'\\$#"):
        raise ValueError(f"the CA file must be an absolute path without spaces, quotes, $ or #: {text!r}")
    return text


def argv(binary: str, conf_path: Path) -> tuple[str, ...]:
    """Master-worker mode in the foreground; the config path stays on the master's command line
    (the host recognises the process by it) and the master re-reads it on ``RELOAD_SIGNAL``. The
    master's CLI listens on ``MASTER_SOCKET`` in the working directory."""
    return (binary, "-W", "-db", "-S", f"unix@{MASTER_SOCKET}", "-f", str(conf_path))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- admin socket ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerState:
    name: str
    address: str
    port: int
    up: bool  # operational state: health checks pass (op state 2, "running")
    maint: bool  # administrative maintenance (config "disabled", or "set server ... state maint")


def admin(socket_path: Path, command: str, timeout: float = 1.0) -> str:
    """One command (or several joined by ``;``) on the admin socket; returns HAProxy's answer.

    Works for paths longer than AF_UNIX allows without ``chdir``: the directory is opened and the
    socket reached as ``/proc/self/fd/<fd>/<name>``. Raises ``Retry`` when the socket cannot be used.
    """
    if "\n" in command:
        raise ValueError("one line only; join commands with ';'")
    return _ask(socket_path, command, timeout)


def master(socket_path: Path, commands: Sequence[str], timeout: float = 1.0) -> str:
    """Commands on the master's CLI, one a line (its ``@!<pid>`` prefix sends a line to that worker
    only, ``;`` would not carry it), then ``quit``: the master keeps a session open otherwise."""
    if any("\n" in c for c in commands):
        raise ValueError("one command a line")
    return _ask(socket_path, "\n".join([*commands, "quit"]), timeout)


def _ask(socket_path: Path, command: str, timeout: float) -> str:
    with contextlib.ExitStack() as stack:
        address = str(socket_path)
        if len(os.fsencode(address)) > _SUN_PATH_MAX:
            try:
                dir_fd = os.open(socket_path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise Retry(f"haproxy admin socket {socket_path}: {exc}") from exc
            stack.callback(os.close, dir_fd)
            address = f"/proc/self/fd/{dir_fd}/{socket_path.name}"
        sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            sock.sendall(command.encode() + b"\n")
            return _read_all(sock).decode(errors="replace")
        except OSError as exc:  # TimeoutError included
            raise Retry(f"haproxy admin socket {socket_path}: {exc}") from exc


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def endpoint_states(socket_path: Path, group: str = "") -> tuple[dict[str, ServerState], dict[str, ServerState]]:
    """The servers of ``group``'s primary and reader backends, from one connection that asks for
    those two backends only (the cost does not grow with the proxy's other groups); raises ``Retry``."""
    primary, reader = qualified(PRIMARY_BACKEND, group), qualified(READER_BACKEND, group)
    text = admin(socket_path, f"show servers state {primary}; show servers state {reader}")
    return parse_server_states(text, primary), parse_server_states(text, reader)


def server_states(socket_path: Path, backend: str) -> dict[str, ServerState]:
    """Every server of ``backend`` by name, from ``show servers state``; raises ``Retry``."""
    return parse_server_states(admin(socket_path, f"show servers state {backend}"), backend)


def parse_server_states(text: str, backend: str) -> dict[str, ServerState]:
    """Pure: the servers of ``backend`` in a ``show servers state`` answer."""
    return parse_all_server_states(text).get(backend, {})


def parse_all_server_states(text: str) -> dict[str, dict[str, ServerState]]:
    """Pure: every backend's servers in a ``show servers state`` answer (of one or more backends).

    Format (version 1): a version line, a ``#`` header naming the fields, then one line per server:
    be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srv_port ...
    """
    lines = text.splitlines()
    header = next((line for line in lines if line.startswith("# be_id")), None)
    if header is None:
        if text.strip().startswith("Can't find backend"):
            raise Retry(f"haproxy has no such backend: {text.strip()[:200]}")
        raise Retry(f"unexpected answer to show servers state: {text[:200]!r}")
    fields = header[1:].split()
    column = {name: i for i, name in enumerate(fields)}
    backends: dict[str, dict[str, ServerState]] = {}
    for line in lines:
        if not line.strip() or line.startswith("#") or line.strip() == "1":
            continue
        values = line.split()
        if len(values) < len(fields):
            continue
        admin_state = int(values[column["srv_admin_state"]])
        name = values[column["srv_name"]]
        backends.setdefault(values[column["be_name"]], {})[name] = ServerState(
            name=name,
            address=values[column["srv_addr"]],
            port=int(values[column["srv_port"]]),
            up=int(values[column["srv_op_state"]]) == _OP_STATE_UP,
            maint=bool(admin_state & _ADMF_MAINT),
        )
    return backends


WORKER_PID = "show info"  # the command whose answer ``worker_pid`` reads


def worker_pid(info: str) -> int:
    """Pure: the PID of the worker that answered ``show info`` (a reload replaces it); ``Retry``
    when the answer has none."""
    for line in info.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Pid" and value.strip().isdigit():
            return int(value.strip())
    raise Retry(f"haproxy did not say its pid: {info[:200]!r}")


def old_workers(show_proc: str) -> list[int]:
    """Pure: the PIDs under ``# old workers`` in the master's ``show proc`` answer: workers that
    predate a reload and still hold sessions."""
    return _workers(show_proc, "old workers")


def current_workers(show_proc: str) -> list[int]:
    """Pure: the PIDs under ``# workers`` in the master's ``show proc`` answer (one, ours)."""
    return _workers(show_proc, "workers")


def _workers(show_proc: str, wanted: str) -> list[int]:
    pids: list[int] = []
    section = ""
    for line in show_proc.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").strip()
            continue
        fields = line.split()
        if section == wanted and fields and fields[0].isdigit():
            pids.append(int(fields[0]))
    return pids


def stale_sessions(show_sess: str, backends: Collection[str], primary: str) -> list[str]:
    """Pure: the ids of the sessions in a worker's ``show sess`` answer that run through one of
    ``backends`` to a server other than ``primary``."""
    found: list[str] = []
    for line in show_sess.splitlines():
        session, _, rest = line.partition(": ")
        fields = dict(f.split("=", 1) for f in rest.split() if "=" in f)
        if session.startswith("0x") and fields.get("be") in backends and fields.get("srv") != primary:
            found.append(session)
    return found


def cut_old_sessions(master_socket: Path, backends: Collection[str], primary: str) -> int:
    """Cut, in every old worker, the sessions through ``backends`` to a server other than
    ``primary``; how many. An old worker (one that predates a reload) keeps its sessions but runs
    no health checks and takes no ``set server`` (its proxies are stopped): without this, its
    sessions to a demoted primary would stay there. Raises ``Retry`` (the socket gone)."""
    cut = 0
    for pid in old_workers(master(master_socket, ["show proc"])):
        sessions = stale_sessions(master(master_socket, [f"@!{pid} show sess"]), backends, primary)
        if sessions:
            master(master_socket, [f"@!{pid} shutdown session {s}" for s in sessions])
            cut += len(sessions)
    return cut


def primary_commands(server_names: Iterable[str], primary: str, backend: str = PRIMARY_BACKEND) -> str:
    """Pure: the admin commands (one ``;``-joined line) that leave only ``primary`` ready.

    The others go to maintenance first and their sessions are cut, and only then is the primary
    readied, so two servers are never ready at once (during a planned failover the old primary is
    still a master for a moment).
    """
    commands: list[str] = []
    for name in sorted(server_names):
        if name != primary:
            commands.append(f"set server {backend}/{name} state maint")
            commands.append(f"shutdown sessions server {backend}/{name}")
    commands.append(f"set server {backend}/{primary} state ready")
    # The caller has just seen the primary answer as a master; waiting for HAProxy's own first check
    # (up to one check interval after a start or a reload) would only delay the endpoint.
    commands.append(f"set server {backend}/{primary} health up")
    return "; ".join(commands)


def set_primary(
    socket_path: Path,
    primary_server_name: str,
    backends: Sequence[str] = (PRIMARY_BACKEND,),
    master_socket: Path | None = None,
) -> None:
    """Make ``primary_server_name`` the only server out of maintenance in each of ``backends``
    (``primary_backends``), cutting the sessions of every other, also those of old workers when
    ``master_socket`` is given (``cut_old_sessions``); idempotent. Raises ``Retry`` (the server
    unknown, the socket gone)."""
    for backend in backends:
        states = server_states(socket_path, backend)
        if primary_server_name not in states:
            raise Retry(f"{backend} has no server {primary_server_name}")
        answer = admin(socket_path, primary_commands(states, primary_server_name, backend))
        if answer.strip():
            raise Retry(f"haproxy refused to set the primary: {answer.strip()[:200]}")
    if master_socket is not None:
        cut_old_sessions(master_socket, backends, primary_server_name)
