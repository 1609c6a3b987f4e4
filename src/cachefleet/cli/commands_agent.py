"""``cachefleet agent``: run one host's agent in the foreground (docs/architecture.md, "Host agents")."""

from __future__ import annotations

from pathlib import Path

import click

from cachefleet.cli.commands_server import parse_listen, parse_port_range
from cachefleet.settings import DEFAULT_PORT_RANGE


@click.command("agent")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="This host's agent directory: node directories, supervision records, ca.pem and tls/agent.pem.",
)
@click.option("--listen", required=True, callback=parse_listen, metavar="HOST:PORT", help="Address of the agent's API.")
@click.option("--zone", required=True, metavar="AZ", help="The availability zone this host is in.")
@click.option("--address", metavar="ADDR", help="This host's address for nodes [default: the --listen host].")
@click.option(
    "--port-range",
    callback=parse_port_range,
    metavar="LO-HI",
    help="Ports for nodes [default: {}-{}].".format(*DEFAULT_PORT_RANGE),
)
@click.option("--ca", "ca_file", type=click.Path(dir_okay=False, path_type=Path), help="[default: DIR/ca.pem]")
@click.option(
    "--cert", "cert_file", type=click.Path(dir_okay=False, path_type=Path), help="[default: DIR/tls/agent.pem]"
)
def agent(
    *,
    data_dir: Path,
    listen: str,
    zone: str,
    address: str | None,
    port_range: tuple[int, int] | None,
    ca_file: Path | None,
    cert_file: Path | None,
) -> None:
    """Run this host's agent: it starts and supervises the nodes the control plane places here.

    Only the control plane can command it (mutual TLS: its certificate and the installation's CA).
    Its nodes keep running when it stops, and it adopts them when it starts again.
    """
    # Imported here so that the API verbs do not pay for loading the agent.
    from cachefleet.agent.main import AgentSettings, run_agent  # noqa: PLC0415

    settings = AgentSettings(
        data_dir=data_dir,
        listen=listen,
        zone=zone,
        address=address,
        port_range=port_range or DEFAULT_PORT_RANGE,
        ca_file=ca_file,
        cert_file=cert_file,
    )
    try:
        settings.node_address  # noqa: B018 (validates --listen/--address before anything starts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    run_agent(settings)
