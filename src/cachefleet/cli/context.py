"""The state one CLI invocation carries: connection and output choices, and how to get a client.

``CliState`` is the seam for tests: they pass ``obj=CliState(client_factory=..., poll_interval=...)``
to click's runner instead of patching boto3; a real run builds the default, whose factory is boto3.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console, RenderableType

from cachefleet.cli import render
from cachefleet.cli.connection import DEFAULT_PROFILE, Admin, ConnectionOptions, ElastiCache, make_admin, make_client

ClientFactory = Callable[[ConnectionOptions], ElastiCache]
AdminFactory = Callable[[ConnectionOptions], Admin]
PIPE_WIDTH = 200


@dataclass
class CliState:
    client_factory: ClientFactory = make_client
    admin_factory: AdminFactory = make_admin
    # Seconds between two Describe calls while waiting; tests make it tiny.
    poll_interval: float = 0.5
    json: bool = False
    data_dir: Path | None = None
    endpoint_url: str | None = None
    profile: str = DEFAULT_PROFILE
    region: str | None = None

    def client(self) -> ElastiCache:
        return self.client_factory(self._options())

    def admin(self) -> Admin:
        return self.admin_factory(self._options())

    def _options(self) -> ConnectionOptions:
        return ConnectionOptions(
            data_dir=self.data_dir, endpoint_url=self.endpoint_url, profile=self.profile, region=self.region
        )


pass_state = click.make_pass_decorator(CliState, ensure=True)


# Consoles are made per use, not once: rich reads the terminal width and colour settings when a
# console is built, and click's test runner swaps the streams and environment per invocation.
def stdout() -> Console:
    console = Console(highlight=False)
    # Off a terminal rich assumes 80 columns; when piped (grep, less, logs) a row on one line is more use.
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def emit(state: CliState, result: Mapping[str, Any], view: Callable[[], RenderableType]) -> None:
    """The raw API result under --json; otherwise ``view()``, built only when a person will see it."""
    if state.json:
        click.echo(render.to_json(result))
    else:
        stdout().print(view())


def print_result(state: CliState, result: Mapping[str, Any], summary: str) -> None:
    """The raw API result under --json; otherwise a one-line summary for people."""
    emit(state, result, lambda: summary)
