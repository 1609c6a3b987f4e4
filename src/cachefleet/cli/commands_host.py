"""``cachefleet host ...``: the machines that run nodes, added, listed, drained and removed.

ElastiCache has no such operations (AWS owns its hosts), so these speak the installation's own admin
API (``/admin/v1/hosts``, ``api/admin.py``), signed like every other call, allowed to the root
identity only (docs/decisions.md). ``host add`` makes the agent's key here, sends only its signing
request, and writes the bundle the agent reads (``ca.pem``, ``tls/agent.pem``) into ``--bundle-dir``:
copy that directory to the host as the agent's ``--data-dir`` (or into it).
"""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cachefleet.cli.context import CliState, emit, pass_state, print_result, stderr
from cachefleet.cli.errors import WaitTimedOut
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options, timeout_option

AGENT_PORT = 7080  # the agent's default port in the README's commands
CA_FILE = "ca.pem"
CERT_FILE = Path("tls") / "agent.pem"


@noun("host")
def host() -> None:
    """Hosts: the machines that run nodes (each runs `cachefleet agent`), with their AZ and capacity."""


@host.command("list")
@client_options
@pass_state
def list_hosts(state: CliState) -> None:
    """List the hosts: the embedded one (this machine) and those added."""
    result = state.admin().call("GET", "hosts")
    emit(state, result, lambda: hosts_table(result["hosts"]))


@host.command("describe")
@click.argument("host_id", metavar="HOST")
@client_options
@pass_state
def describe(state: CliState, host_id: str) -> None:
    """Show a host: its address, AZ and subnet, capacity, status and the nodes placed on it."""
    result = state.admin().call("GET", f"hosts/{host_id}")
    emit(state, result, lambda: hosts_table([result["host"]]))


@host.command("add")
@click.argument("host_id", metavar="HOST")
@click.option("--address", required=True, help="The host's IPv4 address: nodes bind to it, clients dial it.")
@click.option("--zone", required=True, help="Its availability zone (one of the server's --azs).")
@click.option("--subnet", help="Its subnet, a set of hosts in one AZ [default: subnet-ZONE].")
@click.option("--agent-port", type=click.IntRange(1, 65535), default=AGENT_PORT, show_default=True,
              help="Where its agent listens (cachefleet agent --listen ADDRESS:PORT).")  # fmt: skip
@click.option("--max-nodes", type=click.IntRange(min=1), help="At most this many cache nodes [default: no limit].")
@click.option("--memory", "memory_gib", type=click.FloatRange(min=0.1), metavar="GIB",
              help="Node-type memory it may carry, in GiB [default: what its agent reports].")  # fmt: skip
@click.option(
    "--bundle-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the agent's certificate bundle (ca.pem, tls/agent.pem); the key is made here.",
)
@client_options
@pass_state
def add(
    state: CliState,
    *,
    host_id: str,
    address: str,
    zone: str,
    subnet: str | None,
    agent_port: int,
    max_nodes: int | None,
    memory_gib: float | None,
    bundle_dir: Path,
) -> None:
    """Add a host, and write the certificate bundle its agent needs to be trusted.

    \b
    Then, on the host:  cachefleet agent --data-dir DIR --listen ADDRESS:PORT --zone ZONE
    with DIR holding the bundle (copy --bundle-dir there).
    """
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise click.BadParameter(f"expected an IPv4 address, got {address!r}", param_hint="--address") from None
    key_pem, csr_pem = agent_key_and_request(host_id, address)
    body: dict[str, Any] = {"id": host_id, "address": address, "zone": zone, "agent_port": agent_port,
                            "csr": csr_pem.decode()}  # fmt: skip
    if subnet is not None:
        body["subnet"] = subnet
    if max_nodes is not None:
        body["max_nodes"] = max_nodes
    if memory_gib is not None:
        body["memory_bytes"] = int(memory_gib * (1 << 30))
    result = state.admin().call("POST", "hosts", body)
    write_bundle(bundle_dir, key_pem, result["certificate"].encode(), result["ca"].encode())
    shown = {"host": result["host"], "bundle_dir": str(bundle_dir)}
    print_result(
        state,
        shown,
        f"Host {host_id} is added in {zone}. Its agent's bundle is in {bundle_dir}; on the host run:\n"
        f"  cachefleet agent --data-dir DIR --listen {address}:{agent_port} --zone {zone}\n"
        f"with DIR holding {CA_FILE} and {CERT_FILE} from the bundle.",
    )


@host.command("drain")
@click.argument("host_id", metavar="HOST")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until no node runs on it.")
@timeout_option
@client_options
@pass_state
def drain(state: CliState, host_id: str, wait: bool, timeout: float) -> None:
    """Move every node off a host (replicas first, the primary by a switchover that loses no write)."""
    result = state.admin().call("POST", f"hosts/{host_id}/drain")
    if wait:
        result = _wait(state, host_id, {"drained"}, timeout)
    print_result(state, result, f"Host {host_id} is {result['host']['status']}.")


@host.command("undrain")
@click.argument("host_id", metavar="HOST")
@client_options
@pass_state
def undrain(state: CliState, host_id: str) -> None:
    """Let a drained host take new nodes again."""
    result = state.admin().call("POST", f"hosts/{host_id}/undrain")
    print_result(state, result, f"Host {host_id} is {result['host']['status']}.")


@host.command("remove")
@click.argument("host_id", metavar="HOST")
@client_options
@pass_state
def remove(state: CliState, host_id: str) -> None:
    """Remove a host that runs no node (drain it first)."""
    result = state.admin().call("DELETE", f"hosts/{host_id}")
    print_result(state, result, f"Host {host_id} is being removed.")


def _wait(state: CliState, host_id: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        result = state.admin().call("GET", f"hosts/{host_id}")
        status = result["host"]["status"]
        if status != shown and not state.json:
            stderr().print(f"{host_id}: {status} ({result['host']['nodes']} nodes)")
            shown = status
        if status in statuses:
            return result
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"Host {host_id} is still {status} after {timeout:.0f} s; the server carries on.")
        time.sleep(state.poll_interval)


def hosts_table(hosts: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("HOST", "ADDRESS", "AZ", "SUBNET", "STATUS", "NODES", "CAPACITY"):
        table.add_column(column)
    for item in hosts:
        subnets = item.get("subnets") or []
        zones = "all" if item.get("embedded") else ", ".join(s["zone"] for s in subnets)
        subnet = "local-AZ" if item.get("embedded") else ", ".join(s["id"] for s in subnets)
        capacity = []
        if item.get("max_nodes"):
            capacity.append(f"{item['max_nodes']} nodes")
        memory = item.get("memory_bytes") or item.get("reported_memory_bytes")
        if memory:
            capacity.append(f"{memory / (1 << 30):.1f} GiB")
        table.add_row(item["id"], item["address"], zones, subnet, item["status"], str(item["nodes"]),
                      ", ".join(capacity) or "-")  # fmt: skip
    return table


# -- the agent's bundle -------------------------------------------------------------------------


def agent_key_and_request(host_id: str, address: str) -> tuple[bytes, bytes]:
    """A new EC P-256 key for the agent, and a signing request naming its address."""
    # Imported here: only this verb needs cryptography.
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cachefleet agent {host_id}")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address(address))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, request.public_bytes(serialization.Encoding.PEM)


def write_bundle(directory: Path, key_pem: bytes, certificate_pem: bytes, ca_pem: bytes) -> None:
    """``ca.pem`` and ``tls/agent.pem`` (key, then certificate, one file, 0600), where the agent reads them."""
    (directory / CERT_FILE).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(directory / CA_FILE, ca_pem)
    _write(directory / CERT_FILE, key_pem + certificate_pem)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
