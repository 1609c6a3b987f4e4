"""``cachefleet cluster ...``: cache clusters (Memcached, or a single Redis/Valkey node)."""

from __future__ import annotations

import click

from cachefleet.cli import complete, render
from cachefleet.cli.connection import collect
from cachefleet.cli.context import CliState, emit, pass_state
from cachefleet.cli.groups import noun
from cachefleet.cli.options import (
    apply_immediately_option,
    client_options,
    engine_version_option,
    node_type_for,
    node_type_option,
    parameter_group_option,
    parse_csv,
    request,
    snapshot_schedule_options,
    tag_option,
    wait_options,
)
from cachefleet.cli.resources import CLUSTER, remove, settle

cluster_id_argument = click.argument("cluster_id", metavar="ID", shell_complete=complete.clusters)


@noun("cluster")
def cluster() -> None:
    """Cache clusters: Memcached clusters, and single Redis/Valkey nodes."""


@cluster.command("list")
@client_options
@pass_state
def list_clusters(state: CliState) -> None:
    """List cache clusters, replication group members included."""
    clusters = collect(state.client().describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
    emit(
        state,
        {"CacheClusters": clusters},
        lambda: render.cache_clusters_table(clusters) if clusters else "No cache clusters.",
    )


@cluster.command("describe")
@cluster_id_argument
@client_options
@pass_state
def describe(state: CliState, cluster_id: str) -> None:
    """Show one cache cluster and its nodes."""
    result = state.client().describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
    emit(state, result, lambda: render.cache_cluster_view(result["CacheClusters"][0]))


@cluster.command("create")
@click.argument("cluster_id", metavar="ID")
@click.option("--engine", type=click.Choice(["memcached", "redis", "valkey"]), required=True)
@click.option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True, help="NumCacheNodes.")
@node_type_option
@engine_version_option
@parameter_group_option
@click.option("--az-mode", type=click.Choice(["single-az", "cross-az"]), help="AZMode (Memcached).")
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="Preferred AZs, one per node.")
@click.option("--subnet-group", metavar="NAME", help="CacheSubnetGroupName: the hosts it may run on [default: all].")
@click.option("--snapshot", metavar="NAME", shell_complete=complete.snapshots, help="SnapshotName: restore it.")
@click.option(
    "--snapshot-arn", "snapshot_arns", multiple=True, metavar="ARN", help="SnapshotArns (arn:aws:s3:::bucket/key)."
)
@snapshot_schedule_options
@click.option("--port", type=click.IntRange(1, 65535), help="Port (kept; each node gets its own port here).")
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
    node_type: str | None,
    engine_version: str | None,
    parameter_group: str | None,
    az_mode: str | None,
    azs: tuple[str, ...] | None,
    subnet_group: str | None,
    snapshot: str | None,
    snapshot_arns: tuple[str, ...],
    snapshot_retention_limit: int | None,
    snapshot_window: str | None,
    port: int | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Create a cache cluster, and wait until it is available."""
    # ElastiCache takes a list for Memcached, one AZ for Redis; other mixes are the server's to refuse.
    one_az = azs is not None and engine != "memcached" and len(azs) == 1
    params = request(
        CacheClusterId=cluster_id,
        Engine=engine,
        NumCacheNodes=num_nodes,
        CacheNodeType=node_type_for(node_type, restoring=bool(snapshot)),
        EngineVersion=engine_version,
        CacheParameterGroupName=parameter_group,
        AZMode=az_mode,
        PreferredAvailabilityZone=azs[0] if azs and one_az else None,
        PreferredAvailabilityZones=list(azs) if azs and not one_az else None,
        SnapshotName=snapshot,
        SnapshotArns=list(snapshot_arns),
        SnapshotRetentionLimit=snapshot_retention_limit,
        SnapshotWindow=snapshot_window,
        Port=port,
        CacheSubnetGroupName=subnet_group,
        Tags=tags,
    )
    client = state.client()
    result = client.create_cache_cluster(**params)
    settle(state, client, CLUSTER, cluster_id, result, wait=wait, timeout=timeout, show=render.cache_cluster_view)


@cluster.command("modify")
@cluster_id_argument
@click.option("--num-nodes", type=click.IntRange(min=1), help="NumCacheNodes (Memcached).")
@click.option(
    "--remove-node", "remove_nodes", multiple=True, metavar="NODE", help="CacheNodeIdsToRemove (0001...); repeatable."
)
@click.option("--az-mode", type=click.Choice(["single-az", "cross-az"]), help="AZMode (Memcached).")
@click.option("--new-azs", callback=parse_csv, metavar="AZ,AZ,...", help="NewAvailabilityZones for added nodes.")
@parameter_group_option
@click.option("--node-type", help="CacheNodeType.")
@engine_version_option
@snapshot_schedule_options
@apply_immediately_option
@wait_options
@client_options
@pass_state
def modify(
    state: CliState,
    *,
    cluster_id: str,
    num_nodes: int | None,
    remove_nodes: tuple[str, ...],
    az_mode: str | None,
    new_azs: tuple[str, ...] | None,
    parameter_group: str | None,
    node_type: str | None,
    engine_version: str | None,
    snapshot_retention_limit: int | None,
    snapshot_window: str | None,
    apply_immediately: bool | None,
    wait: bool,
    timeout: float,
) -> None:
    """Change a cache cluster's settings, and wait until it is available again."""
    params = request(
        NumCacheNodes=num_nodes,
        CacheNodeIdsToRemove=list(remove_nodes),
        AZMode=az_mode,
        NewAvailabilityZones=list(new_azs or ()),
        CacheParameterGroupName=parameter_group,
        CacheNodeType=node_type,
        EngineVersion=engine_version,
        SnapshotRetentionLimit=snapshot_retention_limit,
        SnapshotWindow=snapshot_window,
        ApplyImmediately=apply_immediately,
    )
    if not params:
        raise click.UsageError("nothing to change: give at least one option")
    client = state.client()
    result = client.modify_cache_cluster(CacheClusterId=cluster_id, **params)
    settle(state, client, CLUSTER, cluster_id, result, wait=wait, timeout=timeout, show=render.cache_cluster_view)


@cluster.command("reboot")
@cluster_id_argument
@click.option(
    "--node", "nodes", multiple=True, metavar="NODE", help="CacheNodeIdsToReboot (0001...) [default: every node]."
)
@wait_options
@client_options
@pass_state
def reboot(state: CliState, cluster_id: str, nodes: tuple[str, ...], wait: bool, timeout: float) -> None:
    """Restart a cluster's nodes one at a time (RebootCacheCluster), and wait until all serve again.

    Redis keeps its data; requires-reboot parameters take effect.
    """
    client = state.client()
    if not nodes:
        described = CLUSTER.one(client, cluster_id)
        nodes = tuple(node["CacheNodeId"] for node in described.get("CacheNodes") or [])
    result = client.reboot_cache_cluster(CacheClusterId=cluster_id, CacheNodeIdsToReboot=list(nodes))
    settle(state, client, CLUSTER, cluster_id, result, wait=wait, timeout=timeout, show=render.cache_cluster_view)


@cluster.command("delete")
@cluster_id_argument
@click.option("--final-snapshot", metavar="NAME", help="FinalSnapshotIdentifier: snapshot the data first (Redis).")
@wait_options
@client_options
@pass_state
def delete(state: CliState, cluster_id: str, final_snapshot: str | None, wait: bool, timeout: float) -> None:
    """Delete a cache cluster, and wait until it is gone."""
    client = state.client()
    result = client.delete_cache_cluster(CacheClusterId=cluster_id, **request(FinalSnapshotIdentifier=final_snapshot))
    remove(state, client, CLUSTER, cluster_id, result, wait=wait, timeout=timeout)
