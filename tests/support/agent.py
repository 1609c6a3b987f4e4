"""A real ``cachefleet agent`` process for tests, the certificates it needs, and a RemoteHost on it.

``Certificates`` makes an installation CA and the leaves the tests use: the agent's (role agent,
naming 127.0.0.1), the control plane's, and the ones that must be refused (another CA's control
plane, and a certificate of this CA with another role). ``AgentProcess`` runs the agent on a free
loopback port and cleans up by PID: the agent first, then every node process under its data dir.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cachefleet.agent.trust import CONTROL_PLANE_NAME
from cachefleet.hosts.remote import RemoteHost, client_context
from tests.support.server import _alive_and_ours, _kill_if_ours

START_TIMEOUT = 20.0
_SERVER = ExtendedKeyUsageOID.SERVER_AUTH
_CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, private = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private, serialization.NoEncryption())


@dataclass
class _Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls, name: str) -> _Authority:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue(self, name: str, usages: list[x509.ObjectIdentifier], ips: tuple[str, ...] = ()) -> bytes:
        key = _key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if ips:
            names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        return _pem(key) + certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


class Certificates:
    """The files of one test installation, in ``directory``."""

    def __init__(self, directory: Path, agent_ips: tuple[str, ...] = ("127.0.0.1",)) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        authority, stranger = _Authority.new("test installation CA"), _Authority.new("another CA")
        self.ca = self._write(directory / "ca.pem", authority.certificate_pem())
        self.agent = self._write(directory / "agent.pem", authority.issue("agent", [_SERVER, _CLIENT], agent_ips))
        control_plane = authority.issue(CONTROL_PLANE_NAME, [_CLIENT])
        self.control_plane = self._write(directory / "control-plane.pem", control_plane)
        # Refused: the control plane's name from another CA; this CA's certificate of another role
        # (an agent's: it also serves); this CA's client-only certificate with another name.
        self.foreign = self._write(directory / "foreign.pem", stranger.issue(CONTROL_PLANE_NAME, [_CLIENT]))
        self.other_role = self._write(
            directory / "other-role.pem", authority.issue(CONTROL_PLANE_NAME, [_SERVER, _CLIENT], ("127.0.0.1",))
        )
        self.other_name = self._write(directory / "other-name.pem", authority.issue("someone else", [_CLIENT]))

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
