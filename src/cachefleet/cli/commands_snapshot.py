"""``cachefleet snapshot ...``: backups of Redis data (RDB files), their copies, exports and restores."""

from __future__ import annotations

from typing import Any

import click

from cachefleet.cli import complete, render
from cachefleet.cli.commands_rg import group_view
from cachefleet.cli.connection import collect
from cachefleet.cli.context import CliState, emit, pass_state
from cachefleet.cli.groups import noun
from cachefleet.cli.options import (
    client_options,
    engine_version_option,
    node_type_option,
    parameter_group_option,
    parse_csv,
    request,
    tag_option,
    wait_options,
)
from cachefleet.cli.resources import CLUSTER, GROUP, SNAPSHOT, Item, remove, settle, wait_status

snapshot_argument = click.argument("name", metavar="NAME", shell_complete=complete.snapshots)


@noun("snapshot")
def snapshot() -> None:
    """Snapshots: point-in-time copies of a Redis group's or cluster's data."""


@snapshot.command("list")
@click.option("--rg", "group_id", metavar="ID", shell_complete=complete.groups, help="Only this group's.")
@click.option("--cluster", "cluster_id", metavar="ID", shell_complete=complete.clusters, help="Only this cluster's.")
@click.option(
    "--source",
    type=click.Choice(["user", "system"]),
    help="SnapshotSource: user (manual, copies, final) or system (automatic).",
)
@client_options
@pass_state
def list_snapshots(state: CliState, group_id: str | None, cluster_id: str | None, source: str | None) -> None:
    """List snapshots."""
    params = request(ReplicationGroupId=group_id, CacheClusterId=cluster_id, SnapshotSource=source)
    snapshots = collect(state.client().describe_snapshots, "Snapshots", **params)
    emit(
        state,
        {"Snapshots": snapshots},
        lambda: render.snapshots_table(snapshots) if snapshots else "No snapshots.",
    )


@snapshot.command("describe")
@snapshot_argument
@client_options
@pass_state
def describe(state: CliState, name: str) -> None:
    """Show one snapshot: its source's settings, size and node group layout."""
    result = state.client().describe_snapshots(SnapshotName=name, ShowNodeGroupConfig=True)
    emit(state, result, lambda: render.snapshot_view(result["Snapshots"][0]))


@snapshot.command("create")
@click.argument("name", metavar="NAME")
@click.option("--rg", "group_id", metavar="ID", shell_complete=complete.groups, help="The group to snapshot.")
@click.option(
    "--cluster",
    "cluster_id",
    metavar="ID",
    shell_complete=complete.clusters,
    help="The cluster to snapshot (a group member: that very node).",
)
@tag_option
@wait_options
@client_options
@pass_state
def create(
    state: CliState,
    *,
    name: str,
    group_id: str | None,
    cluster_id: str | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Take a snapshot of a group (on a replica when it has one) or a cluster, and wait until it is stored."""
    if (group_id is None) == (cluster_id is None):
        raise click.UsageError("give one of --rg or --cluster")
    client = state.client()
    params = request(SnapshotName=name, ReplicationGroupId=group_id, CacheClusterId=cluster_id, Tags=tags)
    result = client.create_snapshot(**params)
    settle(state, client, SNAPSHOT, name, result, wait=wait, timeout=timeout, show=render.snapshot_view)


@snapshot.command("copy")
@snapshot_argument
@click.argument("target", metavar="TARGET")
@tag_option
@wait_options
@client_options
@pass_state
def copy(state: CliState, *, name: str, target: str, tags: list[dict[str, str]], wait: bool, timeout: float) -> None:
    """Copy snapshot NAME to a new snapshot TARGET, and wait until the copy is stored."""
    client = state.client()
    result = client.copy_snapshot(**request(SourceSnapshotName=name, TargetSnapshotName=target, Tags=tags))
    settle(state, client, SNAPSHOT, target, result, wait=wait, timeout=timeout, show=render.snapshot_view)


@snapshot.command("export")
@snapshot_argument
@click.option("--bucket", required=True, help="TargetBucket: the export directory DIR/exports/BUCKET must exist.")
@click.option("--key", help="The object's name, without .rdb (TargetSnapshotName) [default: NAME].")
@wait_options
@client_options
@pass_state
def export(state: CliState, *, name: str, bucket: str, key: str | None, wait: bool, timeout: float) -> None:
    """Export a snapshot's RDB file to a bucket (CopySnapshot with TargetBucket), and wait until it is written."""
    client = state.client()
    target = key or name
    result = client.copy_snapshot(SourceSnapshotName=name, TargetSnapshotName=target, TargetBucket=bucket)
    url = f"s3://{bucket}/{target}.rdb"
    if wait:
        # The answer is the source snapshot, "copying" until the object is written.
        wait_status(state, client, SNAPSHOT, name, target="available", timeout=timeout)
    emit(state, result, lambda: f"Snapshot {name} {'is exported' if wait else 'is being exported'} to {url}.")


@snapshot.command("delete")
@snapshot_argument
@wait_options
@client_options
@pass_state
def delete(state: CliState, name: str, wait: bool, timeout: float) -> None:
    """Delete a snapshot and its file, and wait until it is gone."""
    client = state.client()
    result = client.delete_snapshot(SnapshotName=name)
    remove(state, client, SNAPSHOT, name, result, wait=wait, timeout=timeout)


@snapshot.command("restore")
@snapshot_argument
@click.argument("new_id", metavar="NEW_ID")
@click.option(
    "--into",
    type=click.Choice(["group", "cluster"]),
    help="Restore as a replication group or a cache cluster [default: what the snapshot was taken of].",
)
@click.option("--description", help="The new group's description [default: the source group's].")
@click.option("--replicas", type=click.IntRange(min=0), help="Replicas of the new group [default: the source's].")
@click.option("--automatic-failover/--no-automatic-failover", default=None, help="[default: the source's].")
@click.option("--multi-az/--no-multi-az", default=None, help="MultiAZEnabled (turns automatic failover on).")
@node_type_option
@engine_version_option
@parameter_group_option
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="An AZ for each node [default: the source's].")
@tag_option
@wait_options
@client_options
@pass_state
def restore(
    state: CliState,
    *,
    name: str,
    new_id: str,
    into: str | None,
    description: str | None,
    replicas: int | None,
    automatic_failover: bool | None,
    multi_az: bool | None,
    node_type: str | None,
    engine_version: str | None,
    parameter_group: str | None,
    azs: tuple[str, ...] | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Restore snapshot NAME into a new replication group or cache cluster NEW_ID, and wait until it serves.

    Left out, the shape (nodes, AZs, failover) comes from the snapshot, and the node type and engine
    version are the snapshot's.
    """
    client = state.client()
    source = client.describe_snapshots(SnapshotName=name, ShowNodeGroupConfig=True)["Snapshots"][0]
    as_group = (into or ("group" if source.get("ReplicationGroupId") else "cluster")) == "group"
    common = request(
        SnapshotName=name,
        CacheNodeType=node_type,
        EngineVersion=engine_version,
        CacheParameterGroupName=parameter_group,
        Tags=tags,
    )
    if as_group:
        params = {
            "ReplicationGroupId": new_id,
            **group_restore(
                source,
                description=description,
                replicas=replicas,
                automatic_failover=automatic_failover,
                multi_az=multi_az,
                azs=azs,
            ),
            **common,
        }
        result = client.create_replication_group(**params)
        settle(state, client, GROUP, new_id, result, wait=wait, timeout=timeout, show=lambda g: group_view(client, g))
        return
    if replicas is not None or automatic_failover is not None or multi_az is not None or description is not None:
        raise click.UsageError("--description, --replicas, --automatic-failover and --multi-az are for groups")
    az = request(PreferredAvailabilityZone=azs[0] if azs else None)
    if azs is not None and len(azs) != 1:
        raise click.UsageError("a restored cluster has one node: give one AZ")
    result = client.create_cache_cluster(CacheClusterId=new_id, Engine=source.get("Engine", "redis"), **az, **common)
    settle(state, client, CLUSTER, new_id, result, wait=wait, timeout=timeout, show=render.cache_cluster_view)


def group_restore(
    source: Item,
    *,
    description: str | None,
    replicas: int | None,
    automatic_failover: bool | None,
    multi_az: bool | None,
    azs: tuple[str, ...] | None,
) -> dict[str, Any]:
    """CreateReplicationGroup's shape for a restore: what was given, else the snapshot's source's."""
    config = next(
        (n.get("NodeGroupConfiguration") or {} for n in source.get("NodeSnapshots") or []),
        {},
    )
    source_azs = [config.get("PrimaryAvailabilityZone"), *(config.get("ReplicaAvailabilityZones") or [])]
    count = replicas + 1 if replicas is not None else int(config.get("ReplicaCount", 0)) + 1
    if azs is None and replicas is None and all(source_azs) and len(source_azs) == count:
        azs = tuple(str(az) for az in source_azs)
    if automatic_failover is None:
        automatic_failover = True if multi_az else source.get("AutomaticFailover") == "enabled" and count > 1
    return request(
        ReplicationGroupDescription=description
        or source.get("ReplicationGroupDescription")
        or f"Restored from snapshot {source['SnapshotName']}",
        NumCacheClusters=count,
        PreferredCacheClusterAZs=list(azs or ()),
        AutomaticFailoverEnabled=automatic_failover,
        MultiAZEnabled=multi_az,
    )
