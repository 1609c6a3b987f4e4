"""Child processes of the demo: started in their own sessions, stopped by PID, never by name.

Every process the demo starts is a `Child`: its own session (so a Ctrl-C at the terminal reaches
only the demo, which then stops the children in order), its output in a log file, and a `stop`
that sends SIGTERM, waits, then SIGKILLs the same PID. `LocalServer` is the demo's own
``cachefleet server`` in a fresh data dir; since its nodes (redis-server, redis-sentinel, haproxy)
outlive the control plane by design, its `stop` also kills, by PID, every live process whose
command line or working directory is inside that data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Child", "LocalServer", "StartFailed", "processes_under"]

STOP_WAIT = 5.0


class StartFailed(RuntimeError):
    """A child exited or did not become ready in time; the message ends with its log's tail."""


class Child:
    def __init__(self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failed(self, what: str) -> StartFailed:
        return StartFailed(f"{what}\n--- {self.log} ---\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """SIGTERM, then SIGKILL after `timeout`; Popen has not reaped the PID, so it is still ours."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _endpoint_url(server_json: Path) -> str:
    """The URL the server wrote once it listens; "" until then (or while the file is half written)."""
    try:
        return str(json.loads(server_json.read_text())["endpoint_url"])
    except (FileNotFoundError, ValueError, KeyError):
        return ""


class LocalServer:
    """``python -m cachefleet server --data-dir D --listen 127.0.0.1:0``, as tests' ServerProcess does."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.child: Child | None = None
        self.endpoint_url = ""

    async def start(self, within: float = 30.0) -> None:
        server_json = self.data_dir / "server.json"
        argv = [sys.executable, "-m", "cachefleet", "server", "--data-dir", str(self.data_dir)]
        self.child = Child([*argv, "--listen", "127.0.0.1:0"], log=self.data_dir / "server.log")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise self.child.failed(f"cachefleet server exited with {self.child.process.returncode}")
            self.endpoint_url = self.endpoint_url or _endpoint_url(server_json)
            if self.endpoint_url:
                healthy: bool = await asyncio.to_thread(_http_ok, self.endpoint_url + "/healthz")
                if healthy:
                    return
            await asyncio.sleep(0.05)
        raise self.child.failed(f"cachefleet server did not answer /healthz within {within:.0f} s")

    def stop(self) -> None:
        """The control plane, then every process left under the data dir (nodes), by PID."""
        if self.child is not None:
            self.child.stop()
        for pid in processes_under(self.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_under(directory: Path) -> list[int]:
    """Live processes (not ours) whose command line names `directory` or that run inside it."""
    root = str(directory.resolve())
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not _alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if root in cmdline or str(directory) in cmdline or cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry.name))
    return sorted(found)
