"""``cachefleet rg ...``: replication groups (a primary with replicas, or a sharded Redis cluster)."""

from __future__ import annotations

from typing import Any

import click

from cachefleet.cli import render
from cachefleet.cli.connection import ElastiCache, collect
from cachefleet.cli.context import CliState, pass_state, print_result, stdout
from cachefleet.cli.options import (
    client_options,
    engine_version_option,
    node_type_option,
    parse_csv,
    tag_option,
    wait_options,
)
from cachefleet.cli.waiting import until_gone, wait_showing

NOT_FOUND = "ReplicationGroupNotFoundFault"
# Statuses from which waiting for "available" cannot succeed.
FAILED = frozenset({"create-failed"})


@click.group("rg")
def rg() -> None:
    """Replication groups: a primary and its replicas (or shards of them)."""


@rg.command("list")
@client_options
@pass_state
def list_groups(state: CliState) -> None:
    """List replication groups."""
    client = state.client()
    groups = collect(client.describe_replication_groups, "ReplicationGroups")
    if state.json:
        click.echo(render.to_json({"ReplicationGroups": groups}))
        return
    if not groups:
        stdout().print("No replication groups.")
        return
    # A group's engine version is only known through its member clusters.
    clusters = collect(client.describe_cache_clusters, "CacheClusters")
    stdout().print(render.replication_groups_table(groups, render.engine_versions(clusters)))


@rg.command("describe")
@click.argument("group_id", metavar="ID")
@client_options
@pass_state
def describe(state: CliState, group_id: str) -> None:
    """Show one replication group and its member clusters."""
    client = state.client()
    result = client.describe_replication_groups(ReplicationGroupId=group_id)
    if state.json:
        click.echo(render.to_json(result))
        return
    _print_group(client, result["ReplicationGroups"][0])


@rg.command("create")
@click.argument("group_id", metavar="ID")
@click.option("--description", required=True, help="ReplicationGroupDescription.")
@click.option("--replicas", type=click.IntRange(min=0), help="Replicas of the primary (NumCacheClusters = N + 1).")
@click.option("--num-cache-clusters", type=click.IntRange(min=1), help="Nodes, primary included.")
@node_type_option
@click.option("--engine", type=click.Choice(["redis", "valkey"]), default="redis", show_default=True)
@engine_version_option
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="PreferredCacheClusterAZs, one per node.")
@click.option("--automatic-failover/--no-automatic-failover", default=None, help="AutomaticFailoverEnabled.")
@tag_option
@wait_options
@client_options
@pass_state
def create(
    state: CliState,
    *,
    group_id: str,
    description: str,
    replicas: int | None,
    num_cache_clusters: int | None,
    node_type: str,
    engine: str,
    engine_version: str | None,
    azs: tuple[str, ...] | None,
    automatic_failover: bool | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Create a replication group (cluster mode disabled), and wait until it is available."""
    if replicas is not None and num_cache_clusters is not None:
        raise click.UsageError("give --replicas or --num-cache-clusters, not both")
    params: dict[str, Any] = {
        "ReplicationGroupId": group_id,
        "ReplicationGroupDescription": description,
        "Engine": engine,
        "CacheNodeType": node_type,
    }
    if replicas is not None:
        params["NumCacheClusters"] = replicas + 1
    if num_cache_clusters is not None:
        params["NumCacheClusters"] = num_cache_clusters
    if engine_version:
        params["EngineVersion"] = engine_version
    if azs:
        params["PreferredCacheClusterAZs"] = list(azs)
    if automatic_failover is not None:
        params["AutomaticFailoverEnabled"] = automatic_failover
    if tags:
        params["Tags"] = tags

    client = state.client()
    result = client.create_replication_group(**params)
    if not wait:
        print_result(state, result, f"Replication group {group_id} is {result['ReplicationGroup']['Status']}.")
        return
    _wait(state, client, group_id, target="available", timeout=timeout)
    group = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    if state.json:
        click.echo(render.to_json({"ReplicationGroup": group}))
    else:
        _print_group(client, group)


@rg.command("delete")
@click.argument("group_id", metavar="ID")
@click.option("--retain-primary-cluster", is_flag=True, help="Keep the primary as a standalone cluster.")
@wait_options
@client_options
@pass_state
def delete(state: CliState, group_id: str, retain_primary_cluster: bool, wait: bool, timeout: float) -> None:
    """Delete a replication group, and wait until it is gone."""
    client = state.client()
    params: dict[str, Any] = {"ReplicationGroupId": group_id}
    if retain_primary_cluster:
        params["RetainPrimaryCluster"] = True
    result = client.delete_replication_group(**params)
    if wait:
        _wait(state, client, group_id, target=None, timeout=timeout)
        print_result(state, result, f"Replication group {group_id} is deleted.")
    else:
        print_result(state, result, f"Replication group {group_id} is {result['ReplicationGroup']['Status']}.")


def _print_group(client: ElastiCache, group: dict[str, Any]) -> None:
    group_id = group["ReplicationGroupId"]
    clusters = {
        cluster["CacheClusterId"]: cluster
        for cluster in collect(client.describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
        if cluster.get("ReplicationGroupId") == group_id
    }
    stdout().print(render.replication_group_view(group, clusters))


def _wait(state: CliState, client: ElastiCache, group_id: str, *, target: str | None, timeout: float) -> None:
    def read() -> str:
        return str(client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]["Status"])

    wait_showing(
        until_gone(read, NOT_FOUND),
        label=f"Replication group {group_id}",
        target=target,
        failed=FAILED,
        timeout=timeout,
        interval=state.poll_interval,
        quiet=state.json,
    )
