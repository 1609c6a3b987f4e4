"""``cachefleet engines``: the engine versions this installation can run (DescribeCacheEngineVersions)."""

from __future__ import annotations

from typing import Any

import click

from cachefleet.cli import render
from cachefleet.cli.connection import collect
from cachefleet.cli.context import CliState, pass_state, stdout
from cachefleet.cli.options import client_options


@click.command("engines")
@click.option("--engine", help="Only this engine (redis, valkey, memcached).")
@client_options
@pass_state
def engines(state: CliState, engine: str | None) -> None:
    """List the installed engine versions."""
    params: dict[str, Any] = {"Engine": engine} if engine else {}
    versions = collect(state.client().describe_cache_engine_versions, "CacheEngineVersions", **params)
    if state.json:
        click.echo(render.to_json({"CacheEngineVersions": versions}))
    else:
        stdout().print(render.engines_table(versions))
