"""API results as rich tables for people, or as JSON for scripts.

Everything here takes the plain dicts boto3 returns and builds renderables; nothing prints, so the
commands decide where output goes and tests can render to a string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

Item = Mapping[str, Any]
NONE = "-"

_STATUS_STYLES = {
    "available": "green",
    "in-sync": "green",
    "creating": "yellow",
    "modifying": "yellow",
    "snapshotting": "yellow",
    "rebooting cluster nodes": "yellow",
    "restoring": "yellow",
    "copying": "yellow",
    "applying": "yellow",
    "pending-reboot": "yellow",
    "deleting": "red",
    "failed": "bold red",
    "create-failed": "bold red",
    "restore-failed": "bold red",
    "incompatible-network": "bold red",
}


def to_json(result: Mapping[str, Any]) -> str:
    # ResponseMetadata is transport detail (request id, headers); the AWS CLI leaves it out too.
    body = {key: value for key, value in result.items() if key != "ResponseMetadata"}
    return json.dumps(body, indent=2, default=_json_default)


def to_json_line(item: Mapping[str, Any]) -> str:
    """One JSON object on one line (JSON Lines), for output that streams."""
    return json.dumps(item, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, date):  # datetime is a date
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def endpoint(value: Item | None) -> str:
    if not value or "Address" not in value:
        return NONE
    return f"{value['Address']}:{value.get('Port', '?')}"


def status(value: str | None) -> Text:
    text = value or NONE
    return Text(text, style=_STATUS_STYLES.get(text, ""))


def _table(*columns: str) -> Table:
    table = Table(header_style="bold")
    for column in columns:
        # Fold rather than truncate: an id or endpoint cut with an ellipsis is useless to copy.
        table.add_column(column, overflow="fold")
    return table


def _details(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _flag(value: object) -> str:
    return NONE if value is None else str(value)


def when(value: object) -> str:
    """A time as ISO 8601 in UTC to the second (``2026-01-02T03:04:05Z``), as the API's times are."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return NONE if value is None else str(value)


# Replication groups


def _rg_engine(group: Item, version: str | None) -> str:
    engine = group.get("Engine") or "redis"
    return f"{engine} {version}" if version else engine


def _rg_endpoints(group: Item) -> tuple[str, str]:
    """(primary or configuration endpoint, reader endpoint) of a group, as shown in lists."""
    if group.get("ConfigurationEndpoint"):
        return f"config {endpoint(group['ConfigurationEndpoint'])}", NONE
    node_groups = group.get("NodeGroups") or [{}]
    first = node_groups[0]
    return endpoint(first.get("PrimaryEndpoint")), endpoint(first.get("ReaderEndpoint"))


def engine_versions(clusters: Iterable[Item]) -> dict[str, str]:
    """Replication group id -> engine version; a group only knows it through its member clusters."""
    return {
        cluster["ReplicationGroupId"]: cluster["EngineVersion"]
        for cluster in clusters
        if cluster.get("ReplicationGroupId") and cluster.get("EngineVersion")
    }


def replication_groups_table(groups: Iterable[Item], versions: Mapping[str, str]) -> Table:
    table = _table("ID", "Status", "Engine", "Node type", "Members", "Primary endpoint", "Reader endpoint")
    for group in groups:
        group_id = group["ReplicationGroupId"]
        primary, reader = _rg_endpoints(group)
        table.add_row(
            group_id,
            status(group.get("Status")),
            _rg_engine(group, versions.get(group_id)),
            group.get("CacheNodeType") or NONE,
            str(len(group.get("MemberClusters") or [])),
            primary,
            reader,
        )
    return table


def replication_group_view(group: Item, clusters: Mapping[str, Item]) -> RenderableType:
    """A header of the group's settings, then one row per member cluster."""
    group_id = group["ReplicationGroupId"]
    primary, reader = _rg_endpoints(group)
    header = _details(
        [
            ("Replication group", group_id),
            ("Description", group.get("Description") or NONE),
            ("Status", status(group.get("Status"))),
            ("Engine", _rg_engine(group, engine_versions(clusters.values()).get(group_id))),
            ("Node type", group.get("CacheNodeType") or NONE),
            ("Cluster mode", "enabled" if group.get("ClusterEnabled") else "disabled"),
            ("Automatic failover", _flag(group.get("AutomaticFailover"))),
            ("Multi-AZ", _flag(group.get("MultiAZ"))),
            ("Primary endpoint", primary),
            ("Reader endpoint", reader),
            ("Parameter group", _parameter_group(next(iter(clusters.values()), {}))),
            ("Automatic snapshots", _snapshot_schedule(group)),
            ("ARN", group.get("ARN") or NONE),
        ]
    )
    return Group(header, "", _members_table(group, clusters))


def _parameter_group(cluster: Item) -> RenderableType:
    """A cluster's parameter group and whether its nodes run with it yet."""
    group = cluster.get("CacheParameterGroup") or {}
    name = group.get("CacheParameterGroupName")
    if not name:
        return NONE
    apply = group.get("ParameterApplyStatus")
    return Text.assemble(name, " (", status(apply), ")") if apply else Text(name)


def _snapshot_schedule(resource: Item) -> str:
    days = resource.get("SnapshotRetentionLimit")
    if not days:
        return "off"
    return f"daily in {resource.get('SnapshotWindow', NONE)} UTC, kept {days} day{'s' if days != 1 else ''}"


def _members_table(group: Item, clusters: Mapping[str, Item]) -> Table:
    sharded = bool(group.get("ClusterEnabled"))
    columns = ["Shard"] if sharded else []
    table = _table(*columns, "Cluster", "Role", "AZ", "Endpoint", "Status")
    listed: set[str] = set()
    for node_group in group.get("NodeGroups") or []:
        for member in node_group.get("NodeGroupMembers") or []:
            cluster_id = member.get("CacheClusterId", NONE)
            listed.add(cluster_id)
            shard = [node_group.get("NodeGroupId", NONE)] if sharded else []
            table.add_row(
                *shard,
                cluster_id,
                member.get("CurrentRole") or NONE,
                member.get("PreferredAvailabilityZone") or NONE,
                endpoint(member.get("ReadEndpoint")),
                status(clusters.get(cluster_id, {}).get("CacheClusterStatus")),
            )
    # While a group is being created its members may exist before its node groups say so.
    for cluster_id in group.get("MemberClusters") or []:
        if cluster_id in listed:
            continue
        cluster = clusters.get(cluster_id, {})
        nodes = cluster.get("CacheNodes") or [{}]
        shard = [NONE] if sharded else []
        table.add_row(
            *shard,
            cluster_id,
            NONE,
            cluster.get("PreferredAvailabilityZone") or NONE,
            endpoint(nodes[0].get("Endpoint")),
            status(cluster.get("CacheClusterStatus")),
        )
    return table


# Cache clusters


def _cluster_engine(cluster: Item) -> str:
    return f"{cluster.get('Engine', NONE)} {cluster.get('EngineVersion', '')}".strip()


def _cluster_endpoints(cluster: Item) -> str:
    if cluster.get("ConfigurationEndpoint"):
        return f"config {endpoint(cluster['ConfigurationEndpoint'])}"
    nodes = cluster.get("CacheNodes") or []
    return "\n".join(endpoint(node.get("Endpoint")) for node in nodes) or NONE


def cache_clusters_table(clusters: Iterable[Item]) -> Table:
    table = _table("ID", "Engine", "Status", "Nodes", "AZ", "Group", "Endpoints")
    for cluster in clusters:
        table.add_row(
            cluster["CacheClusterId"],
            _cluster_engine(cluster),
            status(cluster.get("CacheClusterStatus")),
            str(cluster.get("NumCacheNodes", NONE)),
            cluster.get("PreferredAvailabilityZone") or NONE,
            cluster.get("ReplicationGroupId") or NONE,
            _cluster_endpoints(cluster),
        )
    return table


def cache_cluster_view(cluster: Item) -> RenderableType:
    """A header of the cluster's settings, then one row per node."""
    header = _details(
        [
            ("Cache cluster", cluster["CacheClusterId"]),
            ("Status", status(cluster.get("CacheClusterStatus"))),
            ("Engine", _cluster_engine(cluster)),
            ("Node type", cluster.get("CacheNodeType") or NONE),
            ("Nodes", str(cluster.get("NumCacheNodes", NONE))),
            ("AZ", cluster.get("PreferredAvailabilityZone") or NONE),
            ("Replication group", cluster.get("ReplicationGroupId") or NONE),
            ("Configuration endpoint", endpoint(cluster.get("ConfigurationEndpoint"))),
            ("Parameter group", _parameter_group(cluster)),
            *([("Automatic snapshots", _snapshot_schedule(cluster))] if "SnapshotRetentionLimit" in cluster else []),
            ("ARN", cluster.get("ARN") or NONE),
        ]
    )
    nodes = _table("Node", "Status", "AZ", "Endpoint")
    for node in cluster.get("CacheNodes") or []:
        nodes.add_row(
            node.get("CacheNodeId") or NONE,
            status(node.get("CacheNodeStatus")),
            node.get("CustomerAvailabilityZone") or NONE,
            endpoint(node.get("Endpoint")),
        )
    return Group(header, "", nodes)


# Engines


def engines_table(versions: Iterable[Item]) -> Table:
    table = _table("Engine", "Version", "Parameter group family", "Description")
    for version in versions:
        table.add_row(
            version.get("Engine") or NONE,
            version.get("EngineVersion") or NONE,
            version.get("CacheParameterGroupFamily") or NONE,
            version.get("CacheEngineVersionDescription") or NONE,
        )
    return table


# Snapshots


def _snapshot_source(snapshot: Item) -> str:
    if snapshot.get("ReplicationGroupId"):
        return f"rg {snapshot['ReplicationGroupId']}"
    return f"cluster {snapshot.get('CacheClusterId', NONE)}"


def _node_snapshot(snapshot: Item) -> Item:
    nodes: list[Item] = snapshot.get("NodeSnapshots") or [{}]
    return nodes[0]


def snapshots_table(snapshots: Iterable[Item]) -> Table:
    table = _table("Name", "Status", "Type", "Of", "Engine", "Node type", "Size", "Taken")
    for snapshot in snapshots:
        node = _node_snapshot(snapshot)
        table.add_row(
            snapshot["SnapshotName"],
            status(snapshot.get("SnapshotStatus")),
            snapshot.get("SnapshotSource") or NONE,
            _snapshot_source(snapshot),
            _cluster_engine(snapshot),
            snapshot.get("CacheNodeType") or NONE,
            node.get("CacheSize") or NONE,
            when(node.get("SnapshotCreateTime")),
        )
    return table


def snapshot_view(snapshot: Item) -> RenderableType:
    node = _node_snapshot(snapshot)
    config = node.get("NodeGroupConfiguration") or {}
    rows: list[tuple[str, RenderableType]] = [
        ("Snapshot", snapshot["SnapshotName"]),
        ("Status", status(snapshot.get("SnapshotStatus"))),
        ("Type", snapshot.get("SnapshotSource") or NONE),
        ("Of", _snapshot_source(snapshot)),
        ("Taken on", node.get("CacheClusterId") or NONE),
        ("Engine", _cluster_engine(snapshot)),
        ("Node type", snapshot.get("CacheNodeType") or NONE),
        ("Parameter group", snapshot.get("CacheParameterGroupName") or NONE),
        ("Size", node.get("CacheSize") or NONE),
        ("Taken", when(node.get("SnapshotCreateTime"))),
    ]
    if config:
        azs = [config.get("PrimaryAvailabilityZone"), *(config.get("ReplicaAvailabilityZones") or [])]
        rows.append(("Replicas", str(config.get("ReplicaCount", NONE))))
        rows.append(("AZs", ", ".join(str(az) for az in azs if az) or NONE))
    if snapshot.get("AutomaticFailover"):
        rows.append(("Automatic failover", snapshot["AutomaticFailover"]))
    rows.append(("ARN", snapshot.get("ARN") or NONE))
    return _details(rows)


# Parameter groups


def parameter_groups_table(groups: Iterable[Item]) -> Table:
    table = _table("Name", "Family", "Description")
    for group in groups:
        table.add_row(
            group["CacheParameterGroupName"],
            group.get("CacheParameterGroupFamily") or NONE,
            group.get("Description") or NONE,
        )
    return table


def parameter_group_view(group: Item, parameters: Iterable[Item], by_node_type: Iterable[Item]) -> RenderableType:
    """A header, then one row per parameter; values set in this group (source ``user``) in bold."""
    header = _details(
        [
            ("Parameter group", group["CacheParameterGroupName"]),
            ("Family", group.get("CacheParameterGroupFamily") or NONE),
            ("Description", group.get("Description") or NONE),
            ("ARN", group.get("ARN") or NONE),
        ]
    )
    table = _table("Parameter", "Value", "Source", "Applies", "Modifiable", "Allowed values")
    for parameter in parameters:
        user = parameter.get("Source") == "user"
        table.add_row(
            Text(parameter["ParameterName"], style="bold" if user else ""),
            Text(parameter.get("ParameterValue", ""), style="bold" if user else ""),
            parameter.get("Source") or NONE,
            parameter.get("ChangeType") or NONE,
            "yes" if parameter.get("IsModifiable") else "no",
            parameter.get("AllowedValues") or NONE,
        )
    names = [parameter["ParameterName"] for parameter in by_node_type]
    footer = f"Set by the node type: {', '.join(names)}" if names else ""
    return Group(header, "", table, footer) if footer else Group(header, "", table)


# Events


def chronological(events: Iterable[Item]) -> list[Item]:
    """Oldest first, as a log reads; the API lists newest first (equal times keep its order, reversed)."""
    return sorted(reversed(list(events)), key=lambda event: event["Date"])


def events_table(events: Iterable[Item]) -> Table:
    table = _table("Time", "Source type", "Source", "Message")
    for event in chronological(events):
        table.add_row(
            when(event.get("Date")),
            event.get("SourceType") or NONE,
            event.get("SourceIdentifier") or NONE,
            event.get("Message") or "",
        )
    return table


def event_line(event: Item) -> str:
    """One event as one line of text, for ``--follow``."""
    source = f"{event.get('SourceType', NONE)} {event.get('SourceIdentifier', NONE)}"
    return f"{when(event.get('Date'))}  {source:<40}  {event.get('Message', '')}"
