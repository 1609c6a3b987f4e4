"""A real ``cachefleet agent`` process for tests, the certificates it needs, and a RemoteHost on it.

``Certificates`` makes an installation CA and the leaves the tests use: the agent's (role agent,
naming 127.0.0.1), the control plane's, and the ones that must be refused (another CA's control
plane, and a certificate of this CA with another role). ``AgentProcess`` runs the agent on a free
loopback port and cleans up by PID: the agent first, then every node process under its data dir.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cachefleet.hosts.remote import RemoteHost, client_context
from cachefleet.tls.certs import CONTROL_PLANE, Authority, Identity, Role, issue, new_authority
from tests.support.server import _alive_and_ours, _kill_if_ours

START_TIMEOUT = 20.0
VALIDITY = dt.timedelta(days=1)


class Certificates:
    """The files of one test installation, in ``directory``, issued as the product issues them
    (``cachefleet.tls.certs``)."""

    def __init__(self, directory: Path, agent_ips: tuple[str, ...] = ("127.0.0.1",)) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        authority = new_authority("test installation CA", now, VALIDITY)
        stranger = new_authority("another CA", now, VALIDITY)

        def issued(name: str, by: Authority, identity: Identity) -> Path:
            return self._write(directory / name, issue(by, identity, now, VALIDITY))

        self.ca = self._write(directory / "ca.pem", authority.certificate_pem())
        self.ca_key = self._write(directory / "ca.key", authority.key_pem())
        self.agent = issued("agent.pem", authority, Identity("agent", Role.AGENT, ips=agent_ips))
        self.control_plane = issued("control-plane.pem", authority, CONTROL_PLANE)
        # Refused: the control plane's name from another CA; this CA's certificate with the control
        # plane's name but another role (an agent's: it also serves); this CA's control-plane role
        # with another name.
        self.foreign = issued("foreign.pem", stranger, CONTROL_PLANE)
        other_role = Identity(CONTROL_PLANE.common_name, Role.AGENT, ips=("127.0.0.1",))
        self.other_role = issued("other-role.pem", authority, other_role)
        self.other_name = issued("other-name.pem", authority, Identity("someone else", Role.CONTROL_PLANE))

    @staticmethod
    def _write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        path.chmod(0o600)
        return path


Launch = Callable[..., "subprocess.Popen[bytes]"]


def _launch(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """In its own session, so that signals aimed at the tests never reach the agent."""
    process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
    )
    return process


class AgentProcess:
    """``launch`` starts the agent's argv (``subprocess.Popen`` by default; a namespace's ``popen``
    to run it on a host of a ``tests.support.netns`` topology)."""

    def __init__(
        self,
        data_dir: Path,
        certs: Certificates,
        zone: str = "us-east-1a",
        *,
        listen: str = "127.0.0.1:0",
        launch: Launch = _launch,
    ) -> None:
        self.data_dir = data_dir
        self.certs = certs
        self.zone = zone
        self.listen = listen
        self.launch = launch
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        about = self.data_dir / "agent.json"
        about.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "agent.log").open("ab")
        # As on a real host, the installation's CA and the agent's certificate sit in its data dir.
        (self.data_dir / "ca.pem").write_bytes(self.certs.ca.read_bytes())
        (self.data_dir / "tls").mkdir(mode=0o700, exist_ok=True)
        (self.data_dir / "tls" / "agent.pem").write_bytes(self.certs.agent.read_bytes())
        self.process = self.launch(
            [
                sys.executable,
                "-m",
                "cachefleet",
                "agent",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.listen,
                "--zone",
                self.zone,
                "--port-range",
                "31000-39999",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}: {self.log_tail()}")
            if about.exists():
                self.url = json.loads(about.read_text())["url"]
                return
            time.sleep(0.02)
        raise RuntimeError(f"agent did not start: {self.log_tail()}")

    def host(self, cert: Path | None = None, cached_files: tuple[str, ...] = ()) -> RemoteHost:
        context = client_context(self.certs.ca, cert or self.certs.control_plane)
        return RemoteHost(self.url, context, cached_files=cached_files)

    def stop(self) -> int:
        """SIGTERM: the agent exits, its nodes keep running."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(15)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in self.node_processes():
            _kill_if_ours(pid, self.data_dir)

    def node_processes(self) -> list[int]:
        """Every live process of a node under this agent's data dir (a duplicate would show here)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _alive_and_ours(int(entry.name), self.data_dir / "nodes"):
                found.append(int(entry.name))
        return sorted(found)

    def kill_node(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / "agent.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
