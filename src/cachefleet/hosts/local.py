"""The local host driver: engine processes on this machine, supervised through files in node dirs.

Layout (``root`` is ``<data_dir>/nodes``)::

    root/<cluster_id>/<node_id>/    mode 0700
        port        the node's port for life, chosen once by a bind test
        port-<slot> further ports of the node, one per named slot (an endpoint's "reader" port)
        pid         PID of the running process (written atomically after spawn)
        node.log    stdout + stderr of every run, appended
        <files>     whatever the ProcessSpec carries (redis.conf, ...), mode 0600
        <scripts>   programs the ProcessSpec carries (a Sentinel reconfig script), mode 0700

The files are the only state: a control plane that restarts builds a new ``LocalHost`` on the same
root and re-adopts running nodes from their pidfiles, so the data plane outlives the control plane.
Each process runs in its own session, so signals aimed at the control plane's process group (Ctrl-C,
``timeout``) never reach the caches.

A PID is only ever treated as a node's if the process is alive (not a zombie) and either this
instance spawned it and has not reaped it yet (so the PID cannot have been recycled), or it is tied
to the node dir: its command line names the dir (``redis.conf`` path; Redis keeps it in its process
title through ``{config-file}``) or its working directory lies inside it (we spawn in the node dir
and Redis ``chdir``s to its data dir). That keeps a pidfile left over from a crash, whose PID the
kernel handed to some unrelated process, from ever being signalled. Signals go through a pidfd
opened after that check, so the PID cannot be recycled between the check and the kill.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from cachefleet.hosts import files
from cachefleet.hosts.base import FileDigest, PortRequest, ProcessSpec
from cachefleet.model.errors import InsufficientCacheClusterCapacity
from cachefleet.model.nodes import NodeKey, node_key

PORT_FILE = "port"  # the default slot's file; slot "reader" lives in "port-reader"
PID_FILE = "pid"
LOG_FILE = "node.log"
DEFAULT_SLOT = "port"

# SIGKILL cannot be ignored, but a process in uninterruptible sleep (D state) may take a moment to go.
_KILL_WAIT = 5.0
# How often ``pid`` reaps every exited child, not only the node's own. Each poll is a waitpid per
# child: polling them all on every call was a third of an idle server's CPU at 200 groups (600
# children, a dozen calls a second). The sweep is for nodes nobody asks about any more.
REAP_INTERVAL = 5.0
_PF_EXITING = 0x4  # include/linux/sched.h
# Cluster ids, node ids and spec file names: one path component each, never "." or "..".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SLOT = re.compile(r"[a-z0-9][a-z0-9_]*")


class LocalHost:
    def __init__(self, root: Path, port_range: tuple[int, int], bind_host: str = "127.0.0.1") -> None:
        low, high = port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        # abspath, not resolve(): argv carries paths in this spelling, and /proc/<pid>/cmdline shows
        # exactly what was passed. The resolved spelling is what /proc/<pid>/cwd shows.
        self._root = Path(os.path.abspath(root))
        self._port_range = (low, high)
        self._bind_host = bind_host
        # Children this instance spawned, by PID with the node each runs, kept so they can be reaped
        # (no zombies) once they exit; and their PIDs by node, so a node's reaping looks at its own.
        self._children: dict[int, tuple[NodeKey, subprocess.Popen[bytes]]] = {}
        self._spawned: dict[NodeKey, set[int]] = {}
        self._reaped_at = float("-inf")
        self._guard = threading.Lock()
        self._node_locks: dict[NodeKey, threading.RLock] = {}
        self._alloc_lock = threading.Lock()
        # Every port persisted under root, read from disk once (on the first allocation) and kept up
        # to date by this instance, the only writer of port files: rescanning every node dir on each
        # allocation cost milliseconds per port, growing with the fleet.
        self._persisted: set[int] | None = None

    # -- paths and ports -----------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The directory that holds every node directory."""
        return self._root

    def node_dir(self, key: NodeKey) -> Path:
        for part in (key.cluster_id, key.node_id):
            if not _NAME.fullmatch(part):
                raise ValueError(f"invalid node key component {part!r}")
        return self._root / key.cluster_id / key.node_id

    def port_of(self, key: NodeKey, slot: str = DEFAULT_SLOT) -> int | None:
        return _read_int(self.node_dir(key) / _port_file(slot))

    def ports(self, key: NodeKey) -> dict[str, int]:
        """Every slot's persisted port of the node: slot -> port."""
        ports: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for path in self.node_dir(key).iterdir():
                slot = _slot_of(path.name)
                port = _read_int(path) if slot is not None else None
                if slot is not None and port is not None:
                    ports[slot] = port
        return ports

    def allocate_port(
        self, key: NodeKey, taken: Collection[int], slot: str = DEFAULT_SLOT, prefer: int | None = None
    ) -> int:
        (port,) = self.allocate_ports([PortRequest(key, slot, prefer)], taken)
        return port

    def allocate_ports(self, wanted: Sequence[PortRequest], taken: Collection[int] = ()) -> list[int]:
        with self._alloc_lock:
            chosen = [self._allocate(w.node, w.slot, taken, w.port) for w in wanted]
            for _, written in chosen:
                if written is not None:
                    _sync(written)
            return [port for port, _ in chosen]

    def _allocate(
        self, key: NodeKey, slot: str, taken: Collection[int], prefer: int | None
    ) -> tuple[int, Path | None]:
        """The node's port in ``slot`` and, when newly written, its port file (not yet synced).

        Call with ``_alloc_lock`` held: one allocation at a time in this process. Other installations
        are kept apart by the bind test and by starting at a random offset, so two of them rarely
        probe the same port first.
        """
        existing = self.port_of(key, slot)
        if existing is not None:
            return existing, None
        # Ports persisted for any slot of any node (this one's other slots included) are
        # reserved even while those nodes are stopped.
        persisted = self._persisted_ports()
        if prefer is not None and (prefer not in persisted or not self._held_by_another(prefer, key, slot)):
            # The port the node had (its directory was lost): it keeps it, listener or not. A
            # process that holds it now is waited out by the reconciler, never moved away from.
            path = self._ensure_node_dir(key) / _port_file(slot)
            _write_private(path, f"{prefer}\n")
            persisted.add(prefer)
            return prefer, path
        excluded = persisted | set(taken)
        low, high = self._port_range
        count = high - low + 1
        offset = random.randrange(count)
        for i in range(count):
            port = low + (offset + i) % count
            if port not in excluded and _bindable(self._bind_host, port):
                path = self._ensure_node_dir(key) / _port_file(slot)
                _write_private(path, f"{port}\n")
                persisted.add(port)
                return port, path
        raise InsufficientCacheClusterCapacity(
            f"no free port in {low}-{high} on {self._bind_host} for node {key.node_id}"
        )

    def port_taken(self, key: NodeKey, slot: str = DEFAULT_SLOT) -> bool:
        """Whether the node's persisted port is held by something else (the node itself not running).

        The node's own process, alive but without its pidfile (the control plane died between the
        spawn and the write), does not count: the next start adopts it.
        """
        port = self.port_of(key, slot)
        if port is None or self.pid(key) is not None or _bindable(self._bind_host, port, reuse=True):
            return False
        return self._orphan(key) is None

    def _held_by_another(self, port: int, key: NodeKey, slot: str) -> bool:
        """Whether a port file of another node (or another slot of this one) names ``port``: the
        in-memory set may remember a port whose node directory was deleted behind our back."""
        mine = self.node_dir(key) / _port_file(slot)
        for node in self.nodes():
            node_dir = self.node_dir(node)
            with contextlib.suppress(OSError):
                for path in node_dir.iterdir():
                    is_port_file = path.name == PORT_FILE or path.name.startswith(PORT_FILE + "-")
                    if is_port_file and path != mine and _read_int(path) == port:
                        return True
        return False

    # -- files -------------------------------------------------------------------------------

    def read_file(self, key: NodeKey, name: str) -> str | None:
        try:
            return self.file_path(key, name).read_text()
        except FileNotFoundError:
            return None

    def file_path(self, key: NodeKey, name: str, *, writable: bool = False) -> Path:
        """Where node file ``name`` lives. With ``writable``, the name must not be one the host keeps
        for itself (pidfile, log, port files), and the node directory is created."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid node file name {name!r}")
        if not writable:
            return self.node_dir(key) / name
        if _reserved(name):
            raise ValueError(f"{name} is kept by the host for itself")
        return self._ensure_node_dir(key) / name

    def fetch_file(self, key: NodeKey, name: str, dest: Path) -> FileDigest:
        # One open file throughout: a file replaced meanwhile by a rename (Redis's dump.rdb) is
        # copied whole as it was when opened.
        with self.file_path(key, name).open("rb") as handle:
            return files.write_chunks(dest, iter(lambda: handle.read(files.CHUNK), b""))

    def put_file(self, key: NodeKey, name: str, source: Path) -> FileDigest:
        return files.write_chunks(self.file_path(key, name, writable=True), files.chunks(source))

    def write_file(self, key: NodeKey, name: str, text: str) -> None:
        if not _NAME.fullmatch(name) or _reserved(name):
            raise ValueError(f"invalid node file name {name!r}")
        with self._node_lock(key):
            _write_private(self._ensure_node_dir(key) / name, text)

    # -- processes ---------------------------------------------------------------------------

    def pid(self, key: NodeKey) -> int | None:
        pid = _read_int(self.node_dir(key) / PID_FILE)
        alive = pid is not None and self._owns(pid, key)
        now = time.monotonic()
        if now - self._reaped_at >= REAP_INTERVAL:
            self._reaped_at = now
            self._reap_exited()
        else:
            self._reap_exited(key)
        return pid if alive else None

    def start(self, key: NodeKey, spec: ProcessSpec) -> int:
        if not spec.argv:
            raise ValueError("empty argv")
        with self._node_lock(key):
            running = self.pid(key)
            if running is not None:
                return running
            orphan = self._orphan(key)
            if orphan is not None:
                _write_private(self.node_dir(key) / PID_FILE, f"{orphan}\n")
                return orphan
            node_dir = self._write_spec_files(key, spec)
            log_fd = os.open(node_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(log_fd, "ab") as log:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                log.write(f"--- cachefleet {stamp}: starting {' '.join(spec.argv)}\n".encode())
                log.flush()
                # The child gets its own copy of the log fd; ours closes when this block ends.
                child = subprocess.Popen(
                    spec.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=node_dir,
                    start_new_session=True,
                    close_fds=True,
                )
            with self._guard:
                self._children[child.pid] = (key, child)
                self._spawned.setdefault(key, set()).add(child.pid)
            _write_private(node_dir / PID_FILE, f"{child.pid}\n")
            return child.pid

    def reload(self, key: NodeKey, spec: ProcessSpec, signum: int) -> None:
        with self._node_lock(key):
            self._write_spec_files(key, spec)
            pid = self.pid(key)
            if pid is None:
                return
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                return
            try:
                # As in stop(): the pidfd pins the process; check once more that it is ours.
                if self._owns(pid, key):
                    _signal(pidfd, signal.Signals(signum))
            finally:
                os.close(pidfd)

    def stop(self, key: NodeKey, timeout: float = 5.0) -> None:
        with self._node_lock(key):
            pid = self.pid(key)
            if pid is None:
                return
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._forget(key, pid)
                return
            try:
                # The pidfd pins this process: check once more that it is ours, then signal only it.
                # A process in the middle of exiting has already lost its cmdline; it needs no signal,
                # but waiting for it keeps "stopped" meaning "gone, sockets closed".
                if not self._owns(pid, key) and not _exiting(pid):
                    (self.node_dir(key) / PID_FILE).unlink(missing_ok=True)
                    return
                if not _signal(pidfd, signal.SIGTERM) or not _wait_exit(pidfd, timeout):
                    _signal(pidfd, signal.SIGKILL)
                    if not _wait_exit(pidfd, _KILL_WAIT):
                        raise RuntimeError(f"node {key} (pid {pid}) did not exit after SIGKILL")
            finally:
                os.close(pidfd)
            self._forget(key, pid)

    def remove(self, key: NodeKey) -> None:
        with self._node_lock(key):
            self.stop(key)
            node_dir = self.node_dir(key)
            ports = _ports_in(node_dir)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(node_dir)
            with self._alloc_lock:
                self._persisted_ports().difference_update(ports)
            # Only succeeds once the cluster has no node left; anything else means "keep it".
            with contextlib.suppress(OSError):
                node_dir.parent.rmdir()

    def nodes(self) -> list[NodeKey]:
        if not self._root.is_dir():
            return []
        found: list[NodeKey] = []
        for cluster in sorted(self._root.iterdir()):
            if not cluster.is_dir() or not _NAME.fullmatch(cluster.name):
                continue
            for node in sorted(cluster.iterdir()):
                if node.is_dir() and _NAME.fullmatch(node.name):
                    found.append(node_key(cluster.name, node.name))
        return found

    # -- internals ---------------------------------------------------------------------------

    def _persisted_ports(self) -> set[int]:
        """The ports of every slot of every node under root; call with ``_alloc_lock`` held."""
        if self._persisted is None:
            self._persisted = {port for node in self.nodes() for port in _ports_in(self.node_dir(node))}
        return self._persisted

    def _node_lock(self, key: NodeKey) -> threading.RLock:
        with self._guard:
            return self._node_locks.setdefault(key, threading.RLock())

    def _write_spec_files(self, key: NodeKey, spec: ProcessSpec) -> Path:
        """Check every name first, then write the spec's files (0600) and scripts (0700)."""
        names = [*spec.files, *spec.scripts]
        for name in names:
            if not _NAME.fullmatch(name) or _reserved(name):
                raise ValueError(f"invalid node file name {name!r}")
        if len(set(names)) != len(names):
            raise ValueError("a name is both a file and a script")
        node_dir = self._ensure_node_dir(key)
        for name, text in spec.files.items():
            _write_private(node_dir / name, text)
        for name, text in spec.scripts.items():
            _write_private(node_dir / name, text, mode=0o700)
        return node_dir

    def _ensure_node_dir(self, key: NodeKey) -> Path:
        node_dir = self.node_dir(key)
        for path in (self._root, node_dir.parent, node_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return node_dir

    def _owns(self, pid: int, key: NodeKey) -> bool:
        """Whether ``pid`` is the node's live process."""
        with self._guard:
            spawned = self._children.get(pid)
        if spawned is not None:
            child = spawned[1]
            # Spawned here and not reaped yet, so the PID cannot have been recycled; poll() also
            # reaps it if it has just exited. (/proc is no help here: an exiting process loses its
            # cmdline before it becomes a zombie.)
            return child.poll() is None
        return self._is_node_process(pid, key)

    def _orphan(self, key: NodeKey) -> int | None:
        """A live process of this node that has no pidfile: the control plane died between spawning
        it and recording it. Adopting it beats starting a second copy that cannot bind the port.

        A process whose parent is also the node's (HAProxy's worker) is not the node's own process.
        """
        port = self.port_of(key)
        # Scanning /proc is not free: only a node whose port something already holds can have one.
        if port is None or _bindable(self._bind_host, port, reuse=True):
            return None
        found = {
            int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and self._is_node_process(int(p.name), key)
        }
        tops = sorted(pid for pid in found if _parent(pid) not in found)
        return tops[0] if tops else None

    def _is_node_process(self, pid: int, key: NodeKey) -> bool:
        if not _alive(pid):
            return False
        node_dir = self.node_dir(key)
        spellings = {str(node_dir), os.path.realpath(node_dir)}
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="surrogateescape")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:  # gone meanwhile, or not ours to inspect
            return False
        return any(_mentions(cmdline, s) or _inside(cwd, s) for s in spellings)

    def _reap_exited(self, key: NodeKey | None = None) -> None:
        """Reap the exited children of ``key`` (None: of every node)."""
        with self._guard:
            pids = list(self._children) if key is None else list(self._spawned.get(key, ()))
            for pid in pids:
                spawned = self._children.get(pid)
                if spawned is not None and spawned[1].poll() is not None:
                    self._drop(pid)

    def _drop(self, pid: int) -> subprocess.Popen[bytes] | None:
        """Forget child ``pid``; under ``_guard``."""
        spawned = self._children.pop(pid, None)
        if spawned is None:
            return None
        key, child = spawned
        pids = self._spawned.get(key, set())
        pids.discard(pid)
        if not pids:
            self._spawned.pop(key, None)
        return child

    def _forget(self, key: NodeKey, pid: int) -> None:
        """Reap ``pid`` (the node's process, now exited) if we spawned it, and drop its pidfile.

        An adopted process is not our child: its parent (init, after a control-plane restart) reaps it.
        """
        with self._guard:
            child = self._drop(pid)
        if child is not None:
            child.wait()
        (self.node_dir(key) / PID_FILE).unlink(missing_ok=True)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (exited, waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    # Format: "pid (comm) state ..."; comm may itself contain ')' so split at the last one.
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state not in (b"Z", b"X", b"")


def _exiting(pid: int) -> bool:
    """True while ``pid`` is exiting (kernel flag PF_EXITING), zombies included."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2 :].split()
    return len(fields) > 6 and bool(int(fields[6]) & _PF_EXITING)


def _mentions(cmdline: str, directory: str) -> bool:
    """Whether ``directory`` (or a path below it) is one of the words of a NUL/space separated cmdline."""
    pattern = r"(?:^|[\0 =])" + re.escape(directory) + r"(?:$|[\0 /])"
    return re.search(pattern, cmdline) is not None


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def _signal(pidfd: int, signum: signal.Signals) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:  # already exited
        return False
    return True


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Wait until the pidfd's process has exited; a pidfd becomes readable at that moment."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def _bindable(host: str, port: int, *, reuse: bool = False) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR (choosing a new port), one with connections still in TIME_WAIT is
        # skipped too, which is harmless. With it (can a node bind its own port again?), the test
        # matches what the engines do, so only a real listener counts as taken.
        if reuse:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _port_file(slot: str) -> str:
    if not _SLOT.fullmatch(slot):
        raise ValueError(f"invalid port slot {slot!r}")
    return PORT_FILE if slot == DEFAULT_SLOT else f"{PORT_FILE}-{slot}"


def _slot_of(name: str) -> str | None:
    """The slot whose port file ``name`` is, or None when it is no port file."""
    if name == PORT_FILE:
        return DEFAULT_SLOT
    if name.startswith(PORT_FILE + "-"):
        return name[len(PORT_FILE) + 1 :]
    return None


def _ports_in(node_dir: Path) -> set[int]:
    """The ports of every slot persisted in ``node_dir``."""
    ports: set[int] = set()
    with contextlib.suppress(OSError):
        for path in node_dir.iterdir():
            if _slot_of(path.name) is not None:
                port = _read_int(path)
                if port is not None:
                    ports.add(port)
    return ports


def _reserved(name: str) -> bool:
    """Names the host keeps for itself: pidfile, log, and every port slot's file."""
    return name in (PID_FILE, LOG_FILE, PORT_FILE) or name.startswith(PORT_FILE + "-")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename), ``mode`` (0600 by default).

    The rename alone survives a crash of the control plane; ``_sync`` after it survives a power loss.
    Only port files are synced (a node keeps its port for life). Pidfiles and rendered configs
    describe processes that a power loss ends anyway, and every start renders them again; syncing
    them cost a dozen fsyncs on the path of every group creation.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), mode)  # a leftover temp file may have had another mode
        out.write(text)
    os.replace(tmp, path)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
