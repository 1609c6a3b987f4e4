"""``cachefleet subnet-group ...``: cache subnet groups, the sets of hosts a group or cluster may run on.

Each subnet is a set of hosts in one AZ (``cachefleet host add --subnet``; the embedded host's are
``local-<az>``); a group or cluster created with ``--subnet-group NAME`` runs only on their hosts.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from cachefleet.cli.connection import collect
from cachefleet.cli.context import CliState, emit, pass_state, print_result
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options, parse_csv, request, tag_option


@noun("subnet-group")
def subnet_group() -> None:
    """Cache subnet groups: the subnets (sets of hosts, one AZ each) groups and clusters run on."""


@subnet_group.command("list")
@client_options
@pass_state
def list_groups(state: CliState) -> None:
    """List the cache subnet groups, `default` (every subnet) first."""
    groups = collect(state.client().describe_cache_subnet_groups, "CacheSubnetGroups")
    emit(state, {"CacheSubnetGroups": groups}, lambda: subnet_groups_table(groups))


@subnet_group.command("describe")
@click.argument("name", metavar="NAME")
@client_options
@pass_state
def describe(state: CliState, name: str) -> None:
    """Show a cache subnet group and its subnets' AZs."""
    groups = state.client().describe_cache_subnet_groups(CacheSubnetGroupName=name)["CacheSubnetGroups"]
    emit(state, {"CacheSubnetGroups": groups}, lambda: subnet_groups_table(groups))


@subnet_group.command("create")
@click.argument("name", metavar="NAME")
@click.option("--subnets", required=True, callback=parse_csv, metavar="SUBNET,...", help="SubnetIds.")
@click.option("--description", required=True, help="CacheSubnetGroupDescription.")
@tag_option
@client_options
@pass_state
def create(state: CliState, name: str, subnets: tuple[str, ...], description: str, tags: list[dict[str, str]]) -> None:
    """Create a cache subnet group of existing subnets."""
    params = request(
        CacheSubnetGroupName=name, CacheSubnetGroupDescription=description, SubnetIds=list(subnets), Tags=tags
    )
    result = state.client().create_cache_subnet_group(**params)
    print_result(state, result, f"Cache subnet group {name} is created.")


@subnet_group.command("modify")
@click.argument("name", metavar="NAME")
@click.option("--subnets", callback=parse_csv, metavar="SUBNET,...", help="SubnetIds: the whole new list.")
@click.option("--description", help="CacheSubnetGroupDescription.")
@client_options
@pass_state
def modify(state: CliState, name: str, subnets: tuple[str, ...] | None, description: str | None) -> None:
    """Change a cache subnet group's subnets or description."""
    params = request(
        CacheSubnetGroupName=name, CacheSubnetGroupDescription=description, SubnetIds=list(subnets or ())
    )
    result = state.client().modify_cache_subnet_group(**params)
    print_result(state, result, f"Cache subnet group {name} is modified.")


@subnet_group.command("delete")
@click.argument("name", metavar="NAME")
@client_options
@pass_state
def delete(state: CliState, name: str) -> None:
    """Delete a cache subnet group that no group or cluster uses."""
    state.client().delete_cache_subnet_group(CacheSubnetGroupName=name)
    print_result(state, {}, f"Cache subnet group {name} is deleted.")


def subnet_groups_table(groups: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "SUBNETS", "DESCRIPTION"):
        table.add_column(column)
    for group in groups:
        subnets = ", ".join(
            f"{s['SubnetIdentifier']} ({s.get('SubnetAvailabilityZone', {}).get('Name', '?')})"
            for s in group.get("Subnets", [])
        )
        table.add_row(group["CacheSubnetGroupName"], subnets or "-", group.get("CacheSubnetGroupDescription", ""))
    return table
