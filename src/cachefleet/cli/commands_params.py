"""``cachefleet param-group ...``: cache parameter groups, the engine settings clusters run with."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click

from cachefleet.cli import complete, render
from cachefleet.cli.connection import ElastiCache, collect
from cachefleet.cli.context import CliState, emit, pass_state, print_result, stderr
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options, parse_name_values, request, tag_option, timeout_option
from cachefleet.cli.resources import CLUSTER, Item, primary_of, wait_status

name_argument = click.argument("name", metavar="NAME", shell_complete=complete.parameter_groups)


@noun("param-group", aliases={"set": "modify"})
def param_group() -> None:
    """Cache parameter groups: engine settings shared by the clusters that use them."""


@param_group.command("list")
@client_options
@pass_state
def list_groups(state: CliState) -> None:
    """List parameter groups, the read-only defaults (default.redis7, ...) included."""
    groups = collect(state.client().describe_cache_parameter_groups, "CacheParameterGroups")
    emit(state, {"CacheParameterGroups": groups}, lambda: render.parameter_groups_table(groups))


@param_group.command("describe")
@name_argument
@click.option(
    "--source",
    type=click.Choice(["user", "system", "engine-default"]),
    help="Only parameters from this source (user: the ones set in this group).",
)
@client_options
@pass_state
def describe(state: CliState, name: str, source: str | None) -> None:
    """Show a parameter group and its parameters, with how each change applies."""
    client = state.client()
    group = client.describe_cache_parameter_groups(CacheParameterGroupName=name)["CacheParameterGroups"][0]
    parameters, by_node_type = _parameters(client, name, source)
    result = {
        "CacheParameterGroups": [group],
        "Parameters": parameters,
        "CacheNodeTypeSpecificParameters": by_node_type,
    }
    emit(state, result, lambda: render.parameter_group_view(group, parameters, by_node_type))


@param_group.command("create")
@click.argument("name", metavar="NAME")
@click.option("--family", required=True, help="CacheParameterGroupFamily: redis7, valkey8, memcached1.6, ...")
@click.option("--description", required=True, help="Description.")
@tag_option
@client_options
@pass_state
def create(state: CliState, name: str, family: str, description: str, tags: list[dict[str, str]]) -> None:
    """Create a parameter group, starting from the family's defaults."""
    result = state.client().create_cache_parameter_group(
        **request(CacheParameterGroupName=name, CacheParameterGroupFamily=family, Description=description, Tags=tags)
    )
    print_result(state, result, f"Parameter group {name} ({family}) is created.")


@param_group.command("modify")
@name_argument
@click.argument("values", nargs=-1, required=True, metavar="PARAMETER=VALUE...", callback=parse_name_values)
@client_options
@pass_state
def modify(state: CliState, name: str, values: list[dict[str, str]]) -> None:
    """Set parameters (ModifyCacheParameterGroup).

    immediate parameters reach every node of the clusters using the group at once; requires-reboot
    ones wait for `cachefleet param-group apply NAME` (or a `cluster reboot`).
    """
    client = state.client()
    result = client.modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=values)
    changed = [value["ParameterName"] for value in values]
    summary = f"Parameter group {name}: set {', '.join(changed)}."
    _say_how_they_apply(state, client, name, changed, result=result, summary=summary)


@param_group.command("reset")
@name_argument
@click.argument("names", nargs=-1, metavar="[PARAMETER]...")
@click.option("--all", "reset_all", is_flag=True, help="ResetAllParameters: every parameter back to its default.")
@client_options
@pass_state
def reset(state: CliState, name: str, names: tuple[str, ...], reset_all: bool) -> None:
    """Put parameters back to their defaults: the PARAMETERs named, or --all."""
    if bool(names) == reset_all:
        raise click.UsageError("name the parameters to reset or give --all, not both")
    client = state.client()
    if reset_all:
        result = client.reset_cache_parameter_group(CacheParameterGroupName=name, ResetAllParameters=True)
        print_result(state, result, f"Parameter group {name}: every parameter reset to its default.")
        return
    result = client.reset_cache_parameter_group(
        CacheParameterGroupName=name, ParameterNameValues=[{"ParameterName": n} for n in names]
    )
    summary = f"Parameter group {name}: reset {', '.join(names)}."
    _say_how_they_apply(state, client, name, list(names), result=result, summary=summary)


@param_group.command("delete")
@name_argument
@client_options
@pass_state
def delete(state: CliState, name: str) -> None:
    """Delete a parameter group that no cluster uses."""
    result = state.client().delete_cache_parameter_group(CacheParameterGroupName=name)
    print_result(state, result, f"Parameter group {name} is deleted.")


@param_group.command("apply")
@name_argument
@timeout_option
@client_options
@pass_state
def apply(state: CliState, name: str, timeout: float) -> None:
    """Reboot every cluster that uses the group, so that requires-reboot parameters take effect.

    One cluster at a time, each waited for before the next (replicas before primaries), so a group
    never loses more than one member at once. Redis keeps its data across the reboot.
    """
    client = state.client()
    client.describe_cache_parameter_groups(CacheParameterGroupName=name)  # NotFound is said before anything
    clusters = [c for c in collect(client.describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
                if (c.get("CacheParameterGroup") or {}).get("CacheParameterGroupName") == name]  # fmt: skip
    primaries = {primary_of(g) for g in collect(client.describe_replication_groups, "ReplicationGroups")}
    rebooted: list[Item] = []
    for cluster in rolling_order(clusters, primaries):
        cluster_id = cluster["CacheClusterId"]
        # A cluster busy with something else (modifying, snapshotting) is rebooted once it is done.
        wait_status(state, client, CLUSTER, cluster_id, target="available", timeout=timeout)
        nodes = [node["CacheNodeId"] for node in cluster.get("CacheNodes") or []]
        client.reboot_cache_cluster(CacheClusterId=cluster_id, CacheNodeIdsToReboot=nodes)
        wait_status(state, client, CLUSTER, cluster_id, target="available", timeout=timeout)
        rebooted.append(CLUSTER.one(client, cluster_id))
    emit(
        state,
        {"CacheClusters": rebooted},
        lambda: render.cache_clusters_table(rebooted) if rebooted else f"No cluster uses parameter group {name}.",
    )


def rolling_order(clusters: Sequence[Item], primaries: Iterable[str | None]) -> list[Item]:
    """Clusters in the order to reboot them: every other one first, the groups' primaries last."""
    last = set(primaries)
    return [c for c in clusters if c["CacheClusterId"] not in last] + [
        c for c in clusters if c["CacheClusterId"] in last
    ]


def _parameters(client: ElastiCache, name: str, source: str | None) -> tuple[list[Item], list[Item]]:
    """Every page of DescribeCacheParameters: (Parameters, CacheNodeTypeSpecificParameters)."""
    parameters: list[Item] = []
    by_node_type: list[Item] = []
    params: dict[str, Any] = request(CacheParameterGroupName=name, Source=source)
    while True:
        page = client.describe_cache_parameters(**params)
        parameters.extend(page.get("Parameters") or [])
        by_node_type.extend(page.get("CacheNodeTypeSpecificParameters") or [])
        if not page.get("Marker"):
            return parameters, by_node_type
        params["Marker"] = page["Marker"]


def _say_how_they_apply(
    state: CliState, client: ElastiCache, name: str, changed: list[str], *, result: dict[str, Any], summary: str
) -> None:
    print_result(state, result, summary)
    if state.json:
        return
    parameters, _ = _parameters(client, name, None)
    waiting = [p["ParameterName"] for p in parameters if p["ParameterName"] in changed
               and p.get("ChangeType") == "requires-reboot"]  # fmt: skip
    if waiting:
        stderr().print(
            f"{', '.join(waiting)} take effect when the nodes restart: cachefleet param-group apply {name}",
            markup=False,
        )
