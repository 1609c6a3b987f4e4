"""``cachefleet demo``: the application patterns against a Multi-AZ group, with a failover mid-run.

The work is in `cachefleet.demo`; this module turns options into `DemoOptions`, finds the server's
API access the way every other verb does, and prints the report (rich tables, or one JSON line).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import click

from cachefleet.cli.connection import ConnectionOptions, resolve
from cachefleet.cli.context import CliState, pass_state, stdout
from cachefleet.cli.errors import CliError
from cachefleet.cli.options import client_options
from cachefleet.demo import ApiAccess, DemoError, DemoOptions, Narrator, StartFailed, WorkloadSpec, run_demo
from cachefleet.settings import default_data_dir
from cachefleet.tls.files import ca_path

DEFAULTS = WorkloadSpec()


class DemoFailed(CliError):
    code = "DemoFailed"


def _access(options: ConnectionOptions) -> ApiAccess:
    endpoint = resolve(options)
    # The installation's CA, which the demo's TLS group is verified against (`cachefleet ca`).
    ca = ca_path(options.data_dir or default_data_dir())
    return ApiAccess(
        endpoint.url,
        endpoint.region,
        endpoint.access_key_id,
        endpoint.secret_access_key,
        ca_file=str(ca) if ca.is_file() else None,
    )


@click.command("demo")
@click.option(
    "--database-url",
    metavar="URL",
    help="postgresql://... to use PostgreSQL [default: a fresh SQLite file].",
)
@click.option(
    "--requests",
    type=click.IntRange(min=50, max=100_000),
    default=DEFAULTS.requests,
    show_default=True,
    help="Requests per run (the run without the cache and the run with it send the same ones).",
)
@click.option("--products", type=click.IntRange(min=10), default=DEFAULTS.products, show_default=True)
@click.option(
    "--zipf",
    "zipf_s",
    type=click.FloatRange(min=0.0),
    default=DEFAULTS.zipf_s,
    show_default=True,
    help="Skew of product popularity (exponent s of the Zipf law).",
)
@click.option(
    "--query-cost-ms",
    type=click.FloatRange(min=0.0),
    help="Artificial cost added to each database query [default: 10 for SQLite, 0 for PostgreSQL].",
)
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=DEFAULTS.concurrency, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seed of the request script.")
@client_options
@pass_state
def demo(
    state: CliState,
    *,
    database_url: str | None,
    requests: int,
    products: int,
    zipf_s: float,
    query_cost_ms: float | None,
    concurrency: int,
    seed: int,
) -> None:
    """Run a two-instance web shop against a Multi-AZ group and report what the cache saved.

    Starts its own server in a temp dir (or uses the one named by --endpoint-url / --data-dir),
    creates a 3-node Multi-AZ group, runs the same scripted workload without and with the cache,
    triggers TestFailover halfway through the cached run, prints the figures, and removes
    everything it created. Progress goes to stderr; --json prints one JSON object on stdout.
    """
    if database_url is not None and not database_url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise click.BadParameter("expected postgresql://... (or sqlite:///PATH)", param_hint="--database-url")
    existing = None
    if state.endpoint_url or state.data_dir:
        existing = _access(
            ConnectionOptions(
                data_dir=state.data_dir, endpoint_url=state.endpoint_url, profile=state.profile, region=state.region
            )
        )
    spec = replace(DEFAULTS, requests=requests, products=products, zipf_s=zipf_s, concurrency=concurrency, seed=seed)
    options = DemoOptions(
        workload=spec,
        database_url=database_url,
        query_cost=None if query_cost_ms is None else query_cost_ms / 1000,
        existing=existing,
    )

    def resolve_local(data_dir: Path) -> ApiAccess:
        return _access(ConnectionOptions(data_dir=data_dir))

    try:
        report = asyncio.run(run_demo(options, resolve_local=resolve_local, narrator=Narrator()))
    except (DemoError, StartFailed) as exc:
        raise DemoFailed(str(exc)) from exc
    if state.json:
        click.echo(report.to_json())
    else:
        stdout().print(report.render())
