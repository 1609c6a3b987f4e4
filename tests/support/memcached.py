"""Real memcached nodes and configuration endpoint processes for tests, each stopped by its PID.

``Processes`` starts them on loopback ports chosen at run time and, on ``stop_all``, SIGKILLs
every one it started (by the Popen handle, never by name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cachefleet.engines import config_endpoint as ce
from cachefleet.engines import memcached
from cachefleet.engines.installed import require_binaries
from tests.support.server import wait_until

BIND = "127.0.0.1"
MEMCACHED = require_binaries("memcached")["memcached"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((BIND, 0))
        return int(sock.getsockname()[1])


def accepting(port: int) -> bool:
    try:
        with socket.create_connection((BIND, port), timeout=0.5):
            return True
    except OSError:
        return False


def exchange(port: int, request: bytes, until: bytes = b"END\r\n", *, timeout: float = 2.0) -> bytes:
    """Send ``request`` on a new connection and read until the answer ends with ``until``."""
    with socket.create_connection((BIND, port), timeout=timeout) as conn:
        conn.sendall(request)
        data = b""
        while not data.endswith(until):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


class Processes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
        directory = cwd or self.root
        directory.mkdir(parents=True, exist_ok=True)
        log = open(directory / "process.log", "ab")  # noqa: SIM115  # the child keeps its own copy
        with log:
            child = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True, env=env
            )
        self.children.append(child)
        return child.pid

    def memcached(self, *extra: str, port: int | None = None, threads: int = 2, memory_mb: int = 32) -> int:
        """A memcached node on a new port (returned once it accepts connections)."""
        port = port or free_port()
        return self.node(memcached.NodeConfig(port=port, bind=BIND, memory_mb=memory_mb, threads=threads), extra)

    def node(
        self, config: memcached.NodeConfig, extra: Sequence[str] = (), users: Sequence[tuple[str, str]] = ()
    ) -> int:
        """A node as the control plane starts one: its files in its dir, SASL through the start script."""
        directory = self.root / f"mc-{config.port}"
        directory.mkdir(parents=True, exist_ok=True)
        argv = [*memcached.node_argv(MEMCACHED, config), *extra]
        if config.auth == memcached.ASCII_AUTH:
            (directory / memcached.AUTH_FILE).write_text(memcached.auth_lines(users))
        if config.auth == memcached.SASL_AUTH:
            (directory / memcached.SASL_USERS).write_text(memcached.auth_lines(users))
            (directory / memcached.SASL_CONF).write_text(memcached.sasl_conf(str(directory)))
            (directory / memcached.START_SCRIPT).write_text(memcached.sasl_start_script(argv))
            argv = ["/bin/sh", str(directory / memcached.START_SCRIPT)]
        self.spawn(argv, cwd=directory)
        wait_until(lambda: accepting(config.port), 10, what=f"memcached on {config.port}")
        return config.port

    def endpoint(self, config: ce.ServerConfig, name: str = "endpoint") -> tuple[Path, int]:
        """A configuration endpoint process serving ``config``; returns its file and its PID."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ce.CONFIG_FILE
        path.write_text(config.to_json())
        pid = self.spawn(ce.argv(sys.executable, path), cwd=directory)
        for endpoint in config.endpoints:
            wait_until(lambda e=endpoint: accepting(e.port), 10, what=f"endpoint {endpoint.name}")
        return path, pid

    def kill(self, pid: int, signum: int = signal.SIGKILL) -> None:
        for child in self.children:
            if child.pid == pid and child.poll() is None:
                child.send_signal(signum)
                child.wait(5)

    def signal(self, pid: int, signum: int) -> None:
        for child in self.children:
            if child.pid == pid and child.poll() is None:
                child.send_signal(signum)

    def pid_on(self, port: int) -> int:
        """The PID of the memcached this object started on ``port``."""
        for child in self.children:
            if child.poll() is None and f"-p\0{port}\0" in _cmdline(child.pid):
                return child.pid
        raise LookupError(port)

    def stop_all(self) -> None:
        """SIGKILL every child still running (memcached takes ~0.7 s to honour SIGTERM; nothing
        here keeps data worth a clean stop), and reap them."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def reload(path: Path, config: ce.ServerConfig, pid: int) -> None:
    """What the control plane does: write the file, then the reload signal."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(config.to_json())
    os.replace(tmp, path)
    os.kill(pid, ce.RELOAD_SIGNAL)
