"""``cachefleet rg ...``: replication groups (a primary with replicas, or a sharded Redis cluster)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.console import RenderableType

from cachefleet.cli import complete, render
from cachefleet.cli.connection import ElastiCache, collect
from cachefleet.cli.context import CliState, emit, pass_state, stdout
from cachefleet.cli.errors import NotReady
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
from cachefleet.cli.resources import GROUP, Item, primary_of, remove, settle

# Cluster mode disabled has one node group, and ElastiCache names it so.
NODE_GROUP = "0001"

group_id_argument = click.argument("group_id", metavar="ID", shell_complete=complete.groups)


@noun("rg")
def rg() -> None:
    """Replication groups: a primary and its replicas (or shards of them)."""


@rg.command("list")
@client_options
@pass_state
def list_groups(state: CliState) -> None:
    """List replication groups."""
    client = state.client()
    groups = collect(client.describe_replication_groups, "ReplicationGroups")
    if state.json or not groups:
        emit(state, {"ReplicationGroups": groups}, lambda: "No replication groups.")
        return
    # A group's engine version is only known through its member clusters.
    clusters = collect(client.describe_cache_clusters, "CacheClusters")
    stdout().print(render.replication_groups_table(groups, render.engine_versions(clusters)))


@rg.command("describe")
@group_id_argument
@client_options
@pass_state
def describe(state: CliState, group_id: str) -> None:
    """Show one replication group and its member clusters."""
    client = state.client()
    result = client.describe_replication_groups(ReplicationGroupId=group_id)
    emit(state, result, lambda: group_view(client, result["ReplicationGroups"][0]))


@rg.command("endpoint")
@group_id_argument
@click.option("--reader", is_flag=True, help="The reader endpoint (spread over the replicas).")
@click.option("--url", is_flag=True, help="As redis://HOST:PORT, for redis-cli -u and client libraries.")
@client_options
@pass_state
def endpoint(state: CliState, *, group_id: str, reader: bool, url: bool) -> None:
    """Print a group's primary endpoint (or its reader endpoint) as HOST:PORT, for scripts and redis-cli."""
    group = GROUP.one(state.client(), group_id)
    node_group = (group.get("NodeGroups") or [{}])[0]
    member = "ReaderEndpoint" if reader else "PrimaryEndpoint"
    address = group.get("ConfigurationEndpoint") or node_group.get(member)
    if not address:
        raise NotReady(f"Replication group {group_id} has no {member} yet (it is {group.get('Status')})")
    text = f"{address['Address']}:{address['Port']}"
    emit(state, {member: address}, lambda: f"redis://{text}" if url else text)


@rg.command("create")
@click.argument("group_id", metavar="ID")
@click.option("--description", required=True, help="ReplicationGroupDescription.")
@click.option("--replicas", type=click.IntRange(min=0), help="Replicas of the primary (NumCacheClusters = N + 1).")
@click.option("--num-cache-clusters", type=click.IntRange(min=1), help="Nodes, primary included.")
@node_type_option
@click.option("--engine", type=click.Choice(["redis", "valkey"]), default="redis", show_default=True)
@engine_version_option
@parameter_group_option
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="PreferredCacheClusterAZs, one per node.")
@click.option("--subnet-group", metavar="NAME", help="CacheSubnetGroupName: the hosts it may run on [default: all].")
@click.option("--automatic-failover/--no-automatic-failover", default=None, help="AutomaticFailoverEnabled.")
@click.option(
    "--multi-az/--no-multi-az", default=None, help="MultiAZEnabled (turns automatic failover on unless told not to)."
)
@click.option(
    "--primary-cluster",
    metavar="CLUSTER",
    shell_complete=complete.clusters,
    help="PrimaryClusterId: build the group around this existing cluster.",
)
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
    group_id: str,
    description: str,
    replicas: int | None,
    num_cache_clusters: int | None,
    node_type: str | None,
    engine: str,
    engine_version: str | None,
    parameter_group: str | None,
    azs: tuple[str, ...] | None,
    subnet_group: str | None,
    automatic_failover: bool | None,
    multi_az: bool | None,
    primary_cluster: str | None,
    snapshot: str | None,
    snapshot_arns: tuple[str, ...],
    snapshot_retention_limit: int | None,
    snapshot_window: str | None,
    port: int | None,
    tags: list[dict[str, str]],
    wait: bool,
    timeout: float,
) -> None:
    """Create a replication group (cluster mode disabled), and wait until it is available."""
    if replicas is not None and num_cache_clusters is not None:
        raise click.UsageError("give --replicas or --num-cache-clusters, not both")
    if multi_az and automatic_failover is None:
        automatic_failover = True  # Multi-AZ needs it; asking for one means asking for both
    params = request(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription=description,
        Engine=engine,
        CacheNodeType=node_type_for(node_type, restoring=bool(snapshot)),
        NumCacheClusters=replicas + 1 if replicas is not None else num_cache_clusters,
        EngineVersion=engine_version,
        CacheParameterGroupName=parameter_group,
        PreferredCacheClusterAZs=list(azs or ()),
        CacheSubnetGroupName=subnet_group,
        AutomaticFailoverEnabled=automatic_failover,
        MultiAZEnabled=multi_az,
        PrimaryClusterId=primary_cluster,
        SnapshotName=snapshot,
        SnapshotArns=list(snapshot_arns),
        SnapshotRetentionLimit=snapshot_retention_limit,
        SnapshotWindow=snapshot_window,
        Port=port,
        Tags=tags,
    )
    client = state.client()
    result = client.create_replication_group(**params)
    settle(state, client, GROUP, group_id, result, wait=wait, timeout=timeout, show=_shower(client))


@rg.command("modify")
@group_id_argument
@click.option("--description", help="ReplicationGroupDescription.")
@click.option(
    "--primary-cluster",
    metavar="CLUSTER",
    shell_complete=complete.clusters,
    help="PrimaryClusterId: switch the primary role to this member (automatic failover off).",
)
@click.option("--automatic-failover/--no-automatic-failover", default=None, help="AutomaticFailoverEnabled.")
@click.option("--multi-az/--no-multi-az", default=None, help="MultiAZEnabled.")
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
    group_id: str,
    description: str | None,
    primary_cluster: str | None,
    automatic_failover: bool | None,
    multi_az: bool | None,
    parameter_group: str | None,
    node_type: str | None,
    engine_version: str | None,
    snapshot_retention_limit: int | None,
    snapshot_window: str | None,
    apply_immediately: bool | None,
    wait: bool,
    timeout: float,
) -> None:
    """Change a replication group's settings, and wait until it is available again."""
    params = request(
        ReplicationGroupDescription=description,
        PrimaryClusterId=primary_cluster,
        AutomaticFailoverEnabled=automatic_failover,
        MultiAZEnabled=multi_az,
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
    result = client.modify_replication_group(ReplicationGroupId=group_id, **params)
    settle(state, client, GROUP, group_id, result, wait=wait, timeout=timeout, show=_shower(client))


@rg.command("delete")
@group_id_argument
@click.option("--retain-primary-cluster", is_flag=True, help="Keep the primary as a standalone cluster.")
@click.option("--final-snapshot", metavar="NAME", help="FinalSnapshotIdentifier: snapshot the data first.")
@wait_options
@client_options
@pass_state
def delete(
    state: CliState,
    *,
    group_id: str,
    retain_primary_cluster: bool,
    final_snapshot: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Delete a replication group, and wait until it is gone."""
    client = state.client()
    params = request(RetainPrimaryCluster=retain_primary_cluster or None, FinalSnapshotIdentifier=final_snapshot)
    result = client.delete_replication_group(ReplicationGroupId=group_id, **params)
    remove(state, client, GROUP, group_id, result, wait=wait, timeout=timeout)


@rg.command("failover")
@group_id_argument
@click.option("--node-group", default=NODE_GROUP, show_default=True, help="NodeGroupId.")
@wait_options
@client_options
@pass_state
def failover(state: CliState, group_id: str, node_group: str, wait: bool, timeout: float) -> None:
    """Fail the primary over to a replica (TestFailover), and wait until a replica has taken over.

    The group needs automatic failover. Sentinel elects the new primary; the primary endpoint follows it.
    """
    client = state.client()
    before = primary_of(GROUP.one(client, group_id))
    result = client.test_failover(ReplicationGroupId=group_id, NodeGroupId=node_group)

    def read(item: Item) -> str:
        # The group stays available during a failover: the change of primary is what ends the wait.
        now = primary_of(item)
        return str(item["Status"]) if now not in (None, before) else f"failing over from {before}"

    done = settle(state, client, GROUP, group_id, result, wait=wait, timeout=timeout, show=_shower(client), read=read)
    if done is not None and not state.json:
        stdout().print(f"{primary_of(done)} is the primary now (was {before}).")


@rg.command("add-replicas")
@group_id_argument
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="Replicas to add.")
@click.option("--azs", callback=parse_csv, metavar="AZ,AZ,...", help="An AZ for each new replica.")
@wait_options
@client_options
@pass_state
def add_replicas(
    state: CliState, *, group_id: str, count: int, azs: tuple[str, ...] | None, wait: bool, timeout: float
) -> None:
    """Add replicas to a group (IncreaseReplicaCount), and wait until they serve."""
    if azs is not None and len(azs) != count:
        raise click.UsageError(f"--azs must name {count} AZ(s), one for each new replica")
    client = state.client()
    group = GROUP.one(client, group_id)
    total = _replica_count(group) + count
    params: dict[str, Any] = {"NewReplicaCount": total}
    if azs:
        # The API takes the AZs of the whole node group: the primary's, the replicas', then the new ones.
        params = {
            "ReplicaConfiguration": [
                {
                    "NodeGroupId": NODE_GROUP,
                    "NewReplicaCount": total,
                    "PreferredAvailabilityZones": [*_member_azs(group), *azs],
                }
            ]
        }
    result = client.increase_replica_count(ReplicationGroupId=group_id, ApplyImmediately=True, **params)
    settle(state, client, GROUP, group_id, result, wait=wait, timeout=timeout, show=_shower(client))


@rg.command("remove-replicas")
@group_id_argument
@click.argument("members", nargs=-1, metavar="[MEMBER]...", shell_complete=complete.clusters)
@click.option("--count", type=click.IntRange(min=1), help="Replicas to remove, the server choosing [default: 1].")
@wait_options
@client_options
@pass_state
def remove_replicas(
    state: CliState, *, group_id: str, members: tuple[str, ...], count: int | None, wait: bool, timeout: float
) -> None:
    """Remove replicas (DecreaseReplicaCount): the MEMBER clusters named, or --count of them.

    Without MEMBER, the server removes from the most crowded AZ first, newest first.
    """
    if members and count is not None:
        raise click.UsageError("name the members to remove or give --count, not both")
    client = state.client()
    if members:
        params: dict[str, Any] = {"ReplicasToRemove": list(members)}
    else:
        params = {"NewReplicaCount": _replica_count(GROUP.one(client, group_id)) - (count or 1)}
    result = client.decrease_replica_count(ReplicationGroupId=group_id, ApplyImmediately=True, **params)
    settle(state, client, GROUP, group_id, result, wait=wait, timeout=timeout, show=_shower(client))


def _replica_count(group: Item) -> int:
    return max(len(group.get("MemberClusters") or []) - 1, 0)


def _member_azs(group: Item) -> list[str]:
    """The AZs of a group's members, the primary's first."""
    members = [m for g in group.get("NodeGroups") or [] for m in g.get("NodeGroupMembers") or []]
    members.sort(key=lambda m: m.get("CurrentRole") != "primary")
    return [str(m.get("PreferredAvailabilityZone")) for m in members]


def group_view(client: ElastiCache, group: Item) -> RenderableType:
    """A group with its member clusters (described too: their status and parameter group)."""
    group_id = group["ReplicationGroupId"]
    clusters = {
        cluster["CacheClusterId"]: cluster
        for cluster in collect(client.describe_cache_clusters, "CacheClusters", ShowCacheNodeInfo=True)
        if cluster.get("ReplicationGroupId") == group_id
    }
    return render.replication_group_view(group, clusters)


def _shower(client: ElastiCache) -> Callable[[Item], RenderableType]:
    return lambda group: group_view(client, group)
