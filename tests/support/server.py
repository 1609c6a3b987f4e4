"""A real ``cachefleet server`` process for tests: started on a free loopback port, cleaned up by PID."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config

START_TIMEOUT = 30.0
ADMIN_USER = "cachefleet-admin"  # the control plane's ACL user on Redis nodes


class ServerProcess:
    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    # Process control

    def start(self) -> None:
        server_json = self.data_dir / "server.json"
        server_json.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cachefleet",
                "server",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                "127.0.0.1:0",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_tail()}")
            if server_json.exists():
                self.endpoint_url = json.loads(server_json.read_text())["endpoint_url"]
                if self._healthy():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy: {self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint_url + "/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """kill -9 of the control plane alone; its nodes run in their own sessions and live on."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(15)

    def cleanup(self) -> None:
        """Stop the server and every node process it recorded, by PID, even after a failure."""
        self.kill()
        for pid in self.node_pids().values():
            _kill_if_ours(pid, self.data_dir)
        # A node spawned just before the control plane died may have no pidfile yet; its command
        # line or working directory still names this data dir.
        for pid in self.processes_under_data_dir():
            _kill_if_ours(pid, self.data_dir)

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # Observing nodes

    def node_pids(self) -> dict[str, int]:
        """``cluster/node`` -> PID for every node directory with a live pidfile."""
        pids: dict[str, int] = {}
        for pidfile in sorted((self.data_dir / "nodes").glob("*/*/pid")):
            try:
                pid = int(pidfile.read_text().strip())
            except (ValueError, OSError):
                continue  # being written, or its node removed since the listing
            if _alive_and_ours(pid, self.data_dir):
                pids[f"{pidfile.parent.parent.name}/{pidfile.parent.name}"] = pid
        return pids

    def processes_under_data_dir(self) -> list[int]:
        """Every live top-level process of this data dir's nodes: a duplicate start would show here.

        A process whose parent is one of them (HAProxy's worker under its master) is not counted.
        """
        found = {
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _alive_and_ours(int(entry.name), self.data_dir)
        }
        if self.process is not None:
            found.discard(self.process.pid)
        return sorted(p for p in found if _parent(p) not in found)

    def member_pids(self) -> dict[str, int]:
        """Like ``node_pids``, for cache nodes only (not the Sentinels and endpoints of groups, nor the
        configuration endpoints of Memcached clusters, nor the host's endpoint proxy and shared Sentinels)."""
        return {k: v for k, v in self.node_pids().items() if not k.startswith(("rg.", "cfg.", "host.", "sentinels."))}

    def shared_sentinel_ports(self) -> list[int]:
        """The ports of the embedded host's shared Sentinels (``sentinels.shared/shared-N``)."""
        return [int(p.read_text()) for p in sorted((self.data_dir / "nodes/sentinels.shared").glob("shared-*/port"))]

    def monitored_by(self, group_id: str) -> int:
        """How many shared Sentinels monitor ``group_id`` now (one that does not answer counts as not)."""
        count = 0
        for port in self.shared_sentinel_ports():
            try:
                with redis.Redis(port=port, password=self.sentinel_password(), socket_timeout=1, retry=None) as s:
                    count += group_id in s.sentinel_masters()
            except redis.RedisError:
                continue
        return count

    # API access

    def credentials(self) -> tuple[str, str]:
        ini = configparser.ConfigParser()
        ini.read(self.data_dir / "credentials")
        section = ini["cachefleet"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    def admin_password(self) -> str:
        """The password of the control plane's own ACL user on every Redis node (``ADMIN_USER``)."""
        return self.internal_secret("node_admin_password")

    def sentinel_password(self) -> str:
        """What every Sentinel of the installation requires (``requirepass``)."""
        return self.internal_secret("sentinel_password")

    def internal_secret(self, name: str) -> str:
        """One of the installation's own secrets, as the server keeps them in its state database."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "state.db")) as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(row[0])

    def client(self, service: str = "elasticache", **overrides: Any) -> Any:
        key_id, secret = self.credentials()
        params: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "config": Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        }
        params.update(overrides)
        return boto3.client(service, **params)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """Running, and not a zombie: orphaned nodes are not always reaped in this sandbox."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _alive_and_ours(pid: int, data_dir: Path) -> bool:
    if not is_alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = ""
    # Redis names its config (inside the data dir) on its command line; memcached runs in its node dir.
    return str(data_dir) in _cmdline(pid) or cwd.startswith(str(data_dir.resolve()))


def _kill_if_ours(pid: int, data_dir: Path) -> None:
    if _alive_and_ours(pid, data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for(what: str, check: Any, timeout: float = 15.0) -> Any:
    """``wait_until`` with the description first, as the engine-level tests read best."""
    return wait_until(check, timeout, what=what)
