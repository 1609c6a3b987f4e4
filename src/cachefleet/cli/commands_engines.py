"""``cachefleet engine list``: the engine versions this installation can run (DescribeCacheEngineVersions)."""

from __future__ import annotations

import click

from cachefleet.cli import render
from cachefleet.cli.connection import collect
from cachefleet.cli.context import CliState, emit, pass_state
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options, request


@noun("engine")
def engine() -> None:
    """Engines: the Redis, Valkey and Memcached versions installed on this machine."""


@engine.command("list")
@click.option("--engine", "engine_name", help="Only this engine (redis, valkey, memcached).")
@click.option("--engine-version", help="Only versions starting with this one (7.0).")
@client_options
@pass_state
def list_engines(state: CliState, engine_name: str | None, engine_version: str | None) -> None:
    """List the installed engine versions and their parameter group families."""
    params = request(Engine=engine_name, EngineVersion=engine_version)
    versions = collect(state.client().describe_cache_engine_versions, "CacheEngineVersions", **params)
    emit(state, {"CacheEngineVersions": versions}, lambda: render.engines_table(versions))
