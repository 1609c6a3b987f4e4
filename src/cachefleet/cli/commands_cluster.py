"""``cachefleet cluster ...``: cache clusters (Memcached, or a single Redis/Valkey node)."""

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

# The wire code of CacheClusterNotFoundFault (the shape name and the code differ in AWS's model).
NOT_FOUND = "CacheClusterNotFound"
# Statuses from which waiting for "available" cannot succeed.
FAILED = frozenset({"create-failed", "restore-failed", "incompatible-network"})


@click.group("cluster")
def cluster() -> None:
    """Cache clusters: Memcached clusters, and single Redis/Valkey nodes."""


@cluster.command("list")
@client_options
@pass_state
def list_clusters(state: CliState) -> None:
    """List cache clusters, replication group members included."""
    clusters = collect(state.client().describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
    if state.json:
        click.echo(render.to_json({"CacheClusters": clusters}))
    elif not clusters:
        stdout().print("No cache clusters.")
    else:
        stdout().print(render.cache_clusters_table(clusters))


@cluster.command("describe")
@click.argument("cluster_id", metavar="ID")
@client_options
@pass_state
def describe(state: CliState, cluster_id: str) -> None:
    """Show one cache cluster and its nodes."""
    result = state.client().describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    if state.json:
        click.echo(render.to_json(result))
    else:
        stdout().print(render.cache_cluster_view(result["CacheClusters"][0]))


@cluster.command("create")
@click.argument("cluster_id", metavar="ID")
@click.option("--engine", type=click.Choice(["memcached", "redis", "valkey"]), required=True)
@click.option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True, help="NumCacheNodes.")
@node_type_option
@engine_version_option
@click.option("--az-mode", type=click.Choice(["single-az", "cross-az"]), help="AZMode (Memcached).")
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="Preferred AZs, one per node.")
@tag_option
@wait_options
@client_options
@pass_state
def create(
    state: CliState,
    *,
    cluster_id: str,
    engine: str,
    num_nodes: int,
    node_type: str,
    engine_version: str | None,
    az_mode: str | None,
    azs: tuple[str, ...] | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Create a cache cluster, and wait until it is available."""
    params: dict[str, Any] = {
        "CacheClusterId": cluster_id,
        "Engine": engine,
        "NumCacheNodes": num_nodes,
        "CacheNodeType": node_type,
    }
    if engine_version:
        params["EngineVersion"] = engine_version
    if az_mode:
        params["AZMode"] = az_mode
    if azs:
        # ElastiCache takes a list for Memcached, one AZ for Redis; other mixes are the server's to refuse.
        if engine != "memcached" and len(azs) == 1:
            params["PreferredAvailabilityZone"] = azs[0]
        else:
            params["PreferredAvailabilityZones"] = list(azs)
    if tags:
        params["Tags"] = tags

    client = state.client()
    result = client.create_cache_cluster(**params)
    if not wait:
        print_result(state, result, f"Cache cluster {cluster_id} is {result['CacheCluster']['CacheClusterStatus']}.")
        return
    _wait(state, client, cluster_id, target="available", timeout=timeout)
    described = client.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    created = described["CacheClusters"][0]
    if state.json:
        click.echo(render.to_json({"CacheCluster": created}))
    else:
        stdout().print(render.cache_cluster_view(created))


@cluster.command("delete")
@click.argument("cluster_id", metavar="ID")
@wait_options
@client_options
@pass_state
def delete(state: CliState, cluster_id: str, wait: bool, timeout: float) -> None:
    """Delete a cache cluster, and wait until it is gone."""
    client = state.client()
    result = client.delete_cache_cluster(CacheClusterId=cluster_id)
    if wait:
        _wait(state, client, cluster_id, target=None, timeout=timeout)
        print_result(state, result, f"Cache cluster {cluster_id} is deleted.")
    else:
        print_result(state, result, f"Cache cluster {cluster_id} is {result['CacheCluster']['CacheClusterStatus']}.")


def _wait(state: CliState, client: ElastiCache, cluster_id: str, *, target: str | None, timeout: float) -> None:
    def read() -> str:
        return str(client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]["CacheClusterStatus"])

    wait_showing(
        until_gone(read, NOT_FOUND),
        label=f"Cache cluster {cluster_id}",
        target=target,
        failed=FAILED,
        timeout=timeout,
        interval=state.poll_interval,
        quiet=state.json,
    )
