"""``cachefleet agent``: one host's agent, built and served (the agent's composition root).

Data directory (``--data-dir``)::

    host-id                 this host's id, made on first start
    agent.lock              held while an agent runs on this directory (one at a time)
    agent.json              {"url", "host_id", "zone", "address", "pid"}, written once serving (0600)
    ca.pem                  the installation's CA certificate (put there when the host is added)
    tls/agent.pem           this agent's key and certificate (role agent, naming its address)
    nodes/<cluster>/<node>/ node directories, as the local host keeps them (``hosts.local``)
    supervised/             what the agent supervises (``agent.records``)

SIGTERM or Ctrl-C stops the agent; its nodes keep running in their own sessions, and the next start
adopts them.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import ipaddress
import json
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import uvicorn

from cachefleet import serving
from cachefleet.agent import sentinels
from cachefleet.agent.app import Identity, build_app
from cachefleet.agent.events import EventLog
from cachefleet.agent.records import Records
from cachefleet.agent.supervisor import Supervisor
from cachefleet.agent.trust import PeerCertProtocol, server_context
from cachefleet.engines.resp import ClientTls
from cachefleet.hosts.local import LocalHost
from cachefleet.settings import DEFAULT_PORT_RANGE
from cachefleet.tls.files import TLS_DIR, ca_path, write_atomic

log = logging.getLogger(__name__)

AGENT_JSON = "agent.json"
LOCK_FILE = "agent.lock"
HOST_ID_FILE = "host-id"
CERT_FILE = Path(TLS_DIR) / "agent.pem"


@dataclass(frozen=True)
class AgentSettings:
    data_dir: Path
    listen: str
    zone: str
    # The address nodes bind to and the control plane reaches this host at; the agent's certificate
    # names it. Defaults to the listen address unless that is a wildcard.
    address: str | None = None
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    ca_file: Path | None = None
    cert_file: Path | None = None

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def node_address(self) -> str:
        if self.address is not None:
            return self.address
        if ipaddress.ip_address(self.listen_host).is_unspecified:
            raise ValueError(f"--listen {self.listen} is a wildcard: give this host's --address")
        return self.listen_host

    @property
    def ca_path(self) -> Path:
        return self.ca_file or ca_path(self.data_dir)

    @property
    def cert_path(self) -> Path:
        return self.cert_file or self.data_dir / CERT_FILE


def host_id(data_dir: Path) -> str:
    """This host's id: made once, kept in ``DIR/host-id``."""
    path = data_dir / HOST_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = f"host-{secrets.token_hex(6)}"
        write_atomic(path, f"{value}\n".encode(), 0o600)
        return value


def lock(data_dir: Path) -> int:
    """Hold ``DIR/agent.lock`` for the agent's life: two agents supervising one directory would
    restart each other's nodes. The kernel drops the lock when the process dies, however it dies."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"cachefleet agent: another agent already runs on {data_dir}") from None
    return fd


async def serve(settings: AgentSettings) -> None:
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock(data_dir)
    address = settings.node_address
    context = server_context(settings.ca_path, settings.cert_path)
    local = LocalHost(data_dir / "nodes", settings.port_range, address)
    events = EventLog()
    # Sentinels that speak TLS only are asked with the agent's own certificate (it is a client too).
    ask = functools.partial(sentinels.ask, tls=ClientTls(settings.ca_path, settings.cert_path))
    supervisor = Supervisor(local, Records(data_dir / "supervised"), events, ask)
    identity = Identity(
        host_id=host_id(data_dir),
        zone=settings.zone,
        address=address,
        version=metadata.version("cachefleet"),
        port_range=settings.port_range,
    )
    listener = serving.listen(settings.listen_host, settings.listen_port)
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        build_app(supervisor, identity),
        http=PeerCertProtocol,
        ssl_context_factory=lambda _config, _default: context,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Long polls for events hold requests open; a stop does not wait for them.
        timeout_graceful_shutdown=1,
    )
    server = serving.Server(config)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        events.close()  # long polls answer now rather than be cut when uvicorn stops
        server.request_exit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    supervisor.boot()
    url_host = f"[{address}]" if ":" in address else address
    url = f"https://{url_host}:{port}"
    about = {"url": url, "host_id": identity.host_id, "zone": identity.zone, "address": address, "pid": os.getpid()}
    write_atomic(data_dir / AGENT_JSON, (json.dumps(about, indent=2) + "\n").encode(), 0o600)
    log.info("cachefleet agent %s (zone %s) serving %s (data in %s)", identity.host_id, settings.zone, url, data_dir)
    try:
        await server.serve(sockets=[listener])
    finally:
        await supervisor.close()
        listener.close()


def run_agent(settings: AgentSettings) -> None:
    serving.run(lambda: serve(settings))
