"""Options shared by several verbs, and the parsers behind them.

The connection and output options are accepted both before the verb (``cachefleet --json rg list``)
and after it (``cachefleet rg list --json``): each stores into the invocation's one ``CliState``
through a callback, so the later, more specific one wins and the command functions stay small.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cachefleet.cli import complete
from cachefleet.cli.connection import DEFAULT_PROFILE
from cachefleet.cli.context import CliState

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NODE_TYPE = "cache.t4g.micro"
DEFAULT_TIMEOUT = 600.0


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        # An option left out must not undo the same option given at another level.
        if value is not None and value is not False:
            setattr(ctx.ensure_object(CliState), field, value)

    return callback


def _stored(*decls: str, field: str, **attrs: Any) -> Callable[[F], F]:
    return click.option(*decls, callback=_store(field), expose_value=False, **attrs)


data_dir_option = _stored(
    "--data-dir",
    field="data_dir",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
    help="The installation's data directory [default: $CACHEFLEET_HOME or ~/.cachefleet].",
)
region_option = _stored("--region", field="region", help="AWS region name [default: from server.json].")
endpoint_option = _stored("--endpoint-url", field="endpoint_url", help="Server URL [default: from DIR/server.json].")
profile_option = _stored("--profile", field="profile", help=f"Profile in DIR/credentials [default: {DEFAULT_PROFILE}].")
json_option = _stored("--json", field="json", is_flag=True, help="Print the raw API result as JSON, and nothing else.")


def client_options(command: F) -> F:
    """Every option of a verb that calls the API."""
    for option in (json_option, profile_option, region_option, endpoint_option, data_dir_option):
        command = option(command)
    return command


def timeout_option(command: F) -> F:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait before giving up (exit status 3).",
    )(command)


def wait_options(command: F) -> F:
    """``--wait/--no-wait`` and ``--timeout``, passed to the command as ``wait`` and ``timeout``."""
    command = timeout_option(command)
    return click.option("--wait/--no-wait", default=True, help="Wait until the change is done [default: wait].")(
        command
    )


def parse_csv(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """``a,b,c`` -> ``("a", "b", "c")``; empty items are a mistake, not something to skip."""
    if value is None:
        return None
    items = tuple(item.strip() for item in value.split(","))
    if not all(items):
        raise click.BadParameter(f"expected a comma-separated list, got {value!r}")
    return items


def parse_tags(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[dict[str, str]]:
    """``k=v`` options -> ElastiCache's ``Tags`` list; the value may be empty, the key may not."""
    tags = []
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        tags.append({"Key": key, "Value": tag_value})
    return tags


tag_option = click.option(
    "--tag", "tags", multiple=True, callback=parse_tags, metavar="KEY=VALUE", help="A tag; repeatable."
)
node_type_option = click.option(
    "--node-type",
    help=f"CacheNodeType, which sets maxmemory [default: {DEFAULT_NODE_TYPE}, or the snapshot's when restoring].",
)


def node_type_for(node_type: str | None, *, restoring: bool) -> str | None:
    """The node type to ask for: a restore from a snapshot left to itself takes the snapshot's (so
    nothing is sent); an RDB file (SnapshotArns) names none, so it gets the default like a new one."""
    if node_type is None and not restoring:
        return DEFAULT_NODE_TYPE
    return node_type


engine_version_option = click.option("--engine-version", help="Engine version [default: the server's default].")


def request(**members: Any) -> dict[str, Any]:
    """An API request from the options given: ``None`` and empty lists are left out, ``False`` is kept."""
    return {name: value for name, value in members.items() if value is not None and value not in ([], ())}


def parse_name_values(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[dict[str, str]]:
    """``name=value`` arguments -> ElastiCache's ``ParameterNameValues``."""
    pairs = []
    for value in values:
        name, sep, parameter_value = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}")
        pairs.append({"ParameterName": name, "ParameterValue": parameter_value})
    return pairs


parameter_group_option = click.option(
    "--parameter-group",
    metavar="NAME",
    shell_complete=complete.parameter_groups,
    help="CacheParameterGroupName [default: the family's default group].",
)


def snapshot_schedule_options(command: F) -> F:
    """``--snapshot-retention-limit`` and ``--snapshot-window`` (automatic daily snapshots)."""
    command = click.option(
        "--snapshot-window",
        metavar="HH:MM-HH:MM",
        help="SnapshotWindow: when the daily automatic snapshot is taken (UTC).",
    )(command)
    return click.option(
        "--snapshot-retention-limit",
        type=click.IntRange(min=0, max=35),
        metavar="DAYS",
        help="SnapshotRetentionLimit: days to keep automatic snapshots (0 turns them off).",
    )(command)


apply_immediately_option = click.option(
    "--apply-immediately/--no-apply-immediately",
    default=None,
    help="ApplyImmediately (cachefleet has no maintenance window: changes apply at once either way).",
)
