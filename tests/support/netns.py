"""Network namespaces as hosts: N host namespaces, a client, optionally a control plane, on one bridge.

    <prefix>-br     a bridge namespace holding br0 and one veth end per member (v<role>)
    <prefix>-h1..hN hosts, eth0 = <subnet>.11, .12, ...
    <prefix>-c      the client, eth0 = <subnet>.2
    <prefix>-cp     the control plane (optional), eth0 = <subnet>.3

Everything is created inside namespaces this module names; nothing is added to the root namespace,
so the subnet exists only inside the topology. The names carry the creating process's pid
(``cfns<pid>x<n>-<role>``): a later run deletes the namespaces of runs whose process is dead, after
killing by PID whatever still runs inside them (``ip netns pids``).

The trap this guards against: a client in the root namespace that dials a topology address does not
fail, its packets leave by the root namespace's default route, off the machine. So every client
runs inside the topology (``run``/``popen`` always take a member), and ``preflight`` refuses a subnet
the root namespace has an address or a route in; without a ``subnet`` the topology takes the first of
``CANDIDATE_SUBNETS`` that passes.

In-process code (the DNAT driver, the follower) runs in a member's namespace through ``call`` or
``submit``: worker threads that joined the namespace with setns(2). Sockets, netlink contexts and
child processes created on such a thread belong to that namespace, whichever thread uses them later.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN). Tests built on it run as root in CI and must not skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

NAME_PREFIX = "cfns"
_NAME = re.compile(rf"^{NAME_PREFIX}(\d+)x\d+-")
_CLONE_NEWNET = 0x40000000
_RUN_TIMEOUT = 30.0
# Tried in order when no subnet is given: the first the root namespace has no address or route in.
CANDIDATE_SUBNETS = ("10.231.0.0/24", "172.31.231.0/24", "192.168.231.0/24", "10.252.17.0/24")
T = TypeVar("T")
_sequence = itertools.count(1)  # topologies made by this process


@dataclass(frozen=True)
class Member:
    role: str  # "h1", "c", "cp"
    namespace: str
    address: str
    interface: str = "eth0"

    @property
    def bridge_port(self) -> str:
        return f"v{self.role}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_RUN_TIMEOUT, check=check)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    listed = _ip("-j", "netns", "list", check=False).stdout.strip()
    return [entry["name"] for entry in json.loads(listed or "[]")]


def _kill_inside(namespace: str) -> None:
    """SIGKILL, by PID, every process still inside ``namespace``."""
    for line in _ip("netns", "pids", namespace, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line), signal.SIGKILL)


def _delete(namespaces: Sequence[str]) -> None:
    for name in namespaces:
        _kill_inside(name)
    for name in namespaces:
        _ip("netns", "del", name, check=False)


def sweep_dead_runs() -> list[str]:
    """Delete the namespaces left by runs whose creating process is dead; returns their names."""
    stale = [name for name in _namespaces() if (m := _NAME.match(name)) and not _alive(int(m.group(1)))]
    _delete(stale)
    return stale


def preflight(subnet: str, namespace: str | None = None) -> None:
    """Refuse a subnet that is not private, or that the root namespace (or ``namespace``) reaches
    by anything but its default route: an address or a route of its own in it."""
    network = ipaddress.IPv4Network(subnet)
    if not network.is_private or network.is_loopback or network.prefixlen > 24:
        raise ValueError(f"{subnet}: the topology needs a private /24 or larger, not loopback")
    where = ["-n", namespace] if namespace else []
    name = namespace or "the root namespace"
    for link in json.loads(_ip(*where, "-j", "-4", "addr", "show").stdout or "[]"):
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Address(info["local"]) in network:
                raise RuntimeError(f"{name} has {info['local']} on {link['ifname']}: choose another subnet")
    for route in json.loads(_ip(*where, "-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst, strict=False).overlaps(network):
                raise RuntimeError(f"{name} routes {dst} ({route.get('dev')}): choose another subnet")


def choose_subnet(candidates: Sequence[str] = CANDIDATE_SUBNETS) -> str:
    """The first of ``candidates`` that passes ``preflight``."""
    refused = []
    for candidate in candidates:
        try:
            preflight(candidate)
        except (RuntimeError, ValueError) as exc:
            refused.append(str(exc))
            continue
        return candidate
    raise RuntimeError("no candidate subnet is free of the root namespace: " + "; ".join(refused))


def _enter(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Topology:
    """A bridge, ``hosts`` hosts, a client and optionally a control plane. Use as a context manager
    (or call ``create`` and, in a ``finally``, ``cleanup``)."""

    def __init__(
        self, hosts: int, *, client: bool = True, control_plane: bool = False, subnet: str | None = None
    ) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("network-namespace tests need root (CI runs them as root)")
        if not 1 <= hosts <= 50:
            raise ValueError("1 to 50 hosts")
        self.prefix = f"{NAME_PREFIX}{os.getpid()}x{next(_sequence)}"
        self.network = ipaddress.IPv4Network(subnet or choose_subnet())
        base = self.network.network_address
        self.bridge = f"{self.prefix}-br"
        self.hosts = [Member(f"h{i}", f"{self.prefix}-h{i}", str(base + 10 + i)) for i in range(1, hosts + 1)]
        self.client = Member("c", f"{self.prefix}-c", str(base + 2)) if client else None
        self.control = Member("cp", f"{self.prefix}-cp", str(base + 3)) if control_plane else None
        self.processes: list[subprocess.Popen[bytes]] = []
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._created: list[str] = []

    @property
    def members(self) -> list[Member]:
        return [m for m in (*self.hosts, self.client, self.control) if m is not None]

    def vip(self, index: int) -> str:
        """The ``index``-th floating address of the subnet (.200 up): on no member until added."""
        return str(self.network.network_address + 200 + index)

    def __enter__(self) -> Topology:
        try:
            self.create()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- building and tearing down -----------------------------------------------------------------

    def create(self) -> None:
        sweep_dead_runs()
        preflight(str(self.network))
        prefix = self.network.prefixlen
        _ip("netns", "add", self.bridge)
        self._created.append(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        _ip("-n", self.bridge, "link", "set", "lo", "up")
        for member in self.members:
            _ip("netns", "add", member.namespace)
            self._created.append(member.namespace)
            # Both ends are created inside namespaces: the root namespace never holds one.
            _ip("-n", self.bridge, "link", "add", member.bridge_port, "type", "veth", "peer", "name",
                member.interface, "netns", member.namespace)  # fmt: skip
            _ip("-n", self.bridge, "link", "set", member.bridge_port, "master", "br0")
            _ip("-n", self.bridge, "link", "set", member.bridge_port, "up")
            _ip("-n", member.namespace, "addr", "add", f"{member.address}/{prefix}", "dev", member.interface)
            _ip("-n", member.namespace, "link", "set", member.interface, "up")
            _ip("-n", member.namespace, "link", "set", "lo", "up")

    def cleanup(self) -> None:
        """Kill every recorded process by PID, then anything left inside our namespaces, then delete
        them. Safe to call twice."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()
        _delete(self._created)
        self._created.clear()

    # -- running things inside ---------------------------------------------------------------------

    def run(self, member: Member, argv: Sequence[str], *, check: bool = True, timeout: float = _RUN_TIMEOUT,
            input: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``argv`` to completion inside ``member``'s namespace."""
        return subprocess.run(["ip", "netns", "exec", member.namespace, *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)  # fmt: skip

    def popen(self, member: Member, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``member``'s namespace in its own session; its PID is recorded and it
        is killed by ``cleanup``. ``ip netns exec`` execs, so the PID is the program's own."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        process = subprocess.Popen(["ip", "netns", "exec", member.namespace, *argv], start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def executor(self, member: Member) -> ThreadPoolExecutor:
        if member.namespace not in self._executors:
            self._executors[member.namespace] = ThreadPoolExecutor(
                max_workers=4, thread_name_prefix=member.namespace, initializer=_enter, initargs=(member.namespace,)
            )
        return self._executors[member.namespace]

    def submit(self, member: Member, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``fn(*args, **kwargs)`` on a thread inside ``member``'s namespace; returns at once."""
        return self.executor(member).submit(fn, *args, **kwargs)

    def call(self, member: Member, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a thread inside ``member``'s namespace; waits for the result."""
        return self.submit(member, fn, *args, **kwargs).result(timeout=_RUN_TIMEOUT)

    # -- faults ----------------------------------------------------------------------------------------

    def link_down(self, member: Member) -> None:
        """Cut ``member`` off the bridge (its eth0 loses carrier; addresses and processes stay), as a
        pulled cable would."""
        _ip("-n", self.bridge, "link", "set", member.bridge_port, "down")

    def link_up(self, member: Member) -> None:
        _ip("-n", self.bridge, "link", "set", member.bridge_port, "up")

    def wait_reachable(self, source: Member, target: str, port: int, timeout: float = 10.0) -> None:
        """Wait until a TCP connect from ``source`` to ``target:port`` succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.call(source, _can_connect, target, port)
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target}:{port} unreachable from {source.role} after {timeout:.0f} s")
            time.sleep(0.05)


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
