"""Specs and statuses rendered as the service model's ReplicationGroup, CacheCluster, CacheParameterGroup
and Parameter shapes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cachefleet.api.context import Context
from cachefleet.engines.nodetypes import NODE_TYPES, memory_bytes
from cachefleet.model import parameters as pm
from cachefleet.model import security as sec
from cachefleet.model import snapshots as sn
from cachefleet.model import users as us
from cachefleet.model.hosts import DEFAULT_SUBNET_GROUP
from cachefleet.model.kms import key_arn
from cachefleet.model.nodes import MEMBER_NODE_ID
from cachefleet.model.specs import ACTIVE, CacheClusterSpec, StoredSettings
from cachefleet.model.status import (
    PRIMARY,
    REPLICA,
    GroupState,
    NodeState,
    NodeStatus,
    UserGroupState,
    UserGroupStatus,
)
from cachefleet.store.hosts import SubnetGroup, subnets
from cachefleet.store.records import (
    PARAMETER_GROUP,
    SNAPSHOT,
    Cluster,
    Group,
    ParameterGroup,
    Snapshot,
    choose_member,
    find_group,
    parameter_group_name,
)

CLIENT_DOWNLOAD_PAGE = "https://console.aws.amazon.com/elasticache/home#client-download:"


def parameter_group_family(engine: str, version: str) -> str:
    return pm.family_for(engine, version)


VPC_ID = "vpc-cachefleet"  # one network here: every subnet group names the same VPC


def endpoint(ctx: Context, port: int | None, address: str | None = None) -> dict[str, Any] | None:
    """An endpoint: ``address`` (a node's, from its placement), else the embedded host's."""
    return {"Address": address or ctx.settings.node_host, "Port": port} if port else None


def node_endpoint(ctx: Context, node: NodeStatus) -> dict[str, Any] | None:
    """A node's own endpoint: its host's address and its port."""
    return endpoint(ctx, node.port, node.placement.address if node.placement else None)


def node_zone(node: NodeStatus | None, asked: str) -> str:
    """The AZ a node serves: its host's (where it was placed), else the one asked for."""
    return node.placement.zone if node is not None and node.placement is not None else asked


def cache_subnet_group(ctx: Context, group: SubnetGroup) -> dict[str, Any]:
    zones = subnets(ctx.store, ctx.local_host)
    spec = group.spec
    return {
        "CacheSubnetGroupName": spec.name,
        "CacheSubnetGroupDescription": spec.description,
        "VpcId": VPC_ID,
        "Subnets": [
            {
                "SubnetIdentifier": subnet,
                **({"SubnetAvailabilityZone": {"Name": zones[subnet]}} if subnet in zones else {}),
                "SupportedNetworkTypes": ["ipv4"],
            }
            for subnet in spec.subnet_ids
        ],
        "ARN": ctx.arn("cache-subnet-group", spec.name),
        "SupportedNetworkTypes": ["ipv4"],
    }


def kms_arn(ctx: Context, key_id: str) -> str:
    return key_arn(ctx.settings.region, ctx.settings.account_id, key_id)


def _at_rest(ctx: Context, group_id: str | None) -> bool:
    """A member shows its group's setting; a standalone cluster has none (CreateCacheCluster takes none)."""
    group = find_group(ctx.store, group_id) if group_id else None
    return group.spec.encryption.enabled if group is not None else False


def cache_cluster(ctx: Context, cluster: Cluster, *, show_nodes: bool) -> dict[str, Any]:
    spec, status = cluster.spec, cluster.status
    view: dict[str, Any] = {
        "CacheClusterId": spec.id,
        "ClientDownloadLandingPage": CLIENT_DOWNLOAD_PAGE,
        "CacheNodeType": spec.node_type,
        "Engine": spec.engine,
        "EngineVersion": spec.engine_version,
        "CacheClusterStatus": status.status,
        "NumCacheNodes": spec.num_nodes,
        "PreferredAvailabilityZone": _cluster_zone(cluster),
        "CacheClusterCreateTime": spec.created_at,
        "PreferredMaintenanceWindow": spec.stored.window,
        "PendingModifiedValues": _pending(spec),
        "CacheSecurityGroups": [],
        "CacheSubnetGroupName": spec.subnet_group or DEFAULT_SUBNET_GROUP,
        "CacheParameterGroup": {
            "CacheParameterGroupName": parameter_group_name(spec.engine, spec.engine_version, spec.parameter_group),
            "ParameterApplyStatus": status.parameter_apply_status,
            "CacheNodeIdsToReboot": [n.node_id for n in status.nodes if n.parameter_status == pm.PENDING_REBOOT],
        },
        "AutoMinorVersionUpgrade": spec.stored.auto_minor_version_upgrade,
        "AtRestEncryptionEnabled": _at_rest(ctx, spec.replication_group_id),
        "ARN": ctx.arn("cache-cluster", spec.id),
        "ReplicationGroupLogDeliveryEnabled": False,
        "LogDeliveryConfigurations": [],
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
    }
    if spec.engine == "memcached":
        # Auto discovery's stable address: it appears once the endpoint has a port (as AWS's once
        # the cluster is provisioned), and never changes after that.
        if status.configuration_port:
            view["ConfigurationEndpoint"] = endpoint(ctx, status.configuration_port)
    else:
        view["SnapshotRetentionLimit"] = spec.snapshot_retention_limit
        view["SnapshotWindow"] = spec.snapshot_window or sn.DEFAULT_WINDOW
    view.update(_stored(spec.stored))
    security = _cluster_security(ctx, cluster)
    view["PendingModifiedValues"] = {**view["PendingModifiedValues"], **security.pop("PendingModifiedValues", {})}
    view.update(security)
    if spec.replication_group_id:
        view["ReplicationGroupId"] = spec.replication_group_id
    if show_nodes:
        view["CacheNodes"] = [_cache_node(ctx, cluster, node_id, az) for node_id, az in spec.nodes]
    return view


def _cluster_security(ctx: Context, cluster: Cluster) -> dict[str, Any]:
    """A cluster's AUTH token and TLS: its group's for a member, its own for a standalone one (whose
    token change shows as pending until its node has it)."""
    spec, status = cluster.spec, cluster.status
    group = find_group(ctx.store, spec.replication_group_id) if spec.replication_group_id else None
    if group is not None:
        return _security(group.spec.security, group.status.transit_mode)
    view = _security(spec.security, spec.security.mode_text)
    pending = sec.pending(spec.security, status.security_done, spec.security.mode_text, spec.security.user_group_ids)
    if pending:
        view["PendingModifiedValues"] = pending
    return view


def _security(spec: sec.Security, applied_mode: str) -> dict[str, Any]:
    """``AuthTokenEnabled`` (never a token or its hash), when it last changed, and TLS as it runs."""
    view: dict[str, Any] = {"AuthTokenEnabled": spec.tokens.enabled, "TransitEncryptionEnabled": bool(applied_mode)}
    if spec.token_modified_at is not None:
        view["AuthTokenLastModifiedDate"] = spec.token_modified_at
    if applied_mode:
        view["TransitEncryptionMode"] = applied_mode
    return view


def _stored(stored: StoredSettings) -> dict[str, Any]:
    """Security groups and the notification topic, shown only when given, as ElastiCache shows them."""
    view: dict[str, Any] = {}
    if stored.security_group_ids:
        view["SecurityGroups"] = [{"SecurityGroupId": sg, "Status": ACTIVE} for sg in stored.security_group_ids]
    if stored.notification_topic_arn:
        view["NotificationConfiguration"] = {
            "TopicArn": stored.notification_topic_arn,
            "TopicStatus": stored.notification_topic_status,
        }
    return view


def _cluster_zone(cluster: Cluster) -> str:
    """PreferredAvailabilityZone: the one AZ its nodes serve, else ``Multiple``."""
    zones = {node_zone(cluster.status.node(n), az) for n, az in cluster.spec.nodes}
    return zones.pop() if len(zones) == 1 else "Multiple"


def _pending(spec: CacheClusterSpec) -> dict[str, Any]:
    """A node-count change waiting for ApplyImmediately (the model's PendingModifiedValues)."""
    pending = spec.pending_nodes
    if pending is None:
        return {}
    values: dict[str, Any] = {"NumCacheNodes": pending.num_nodes}
    if pending.remove:
        values["CacheNodeIdsToRemove"] = list(pending.remove)
    return values


def _cache_node(ctx: Context, cluster: Cluster, node_id: str, az: str) -> dict[str, Any]:
    node = cluster.status.node(node_id)
    view: dict[str, Any] = {
        "CacheNodeId": node_id,
        "CacheNodeStatus": node.status if node else NodeState.CREATING,
        "ParameterGroupStatus": node.parameter_status if node else pm.IN_SYNC,
        "CustomerAvailabilityZone": node_zone(node, az),
    }
    # Node endpoints appear once the node has been provisioned, as on ElastiCache.
    if node and node.created_at:
        view["CacheNodeCreateTime"] = datetime.fromisoformat(node.created_at)
        view["Endpoint"] = node_endpoint(ctx, node)
    return view


def replication_group(ctx: Context, group: Group, members: list[Cluster]) -> dict[str, Any]:
    spec, status = group.spec, group.status
    primary_id = status.primary_cluster_id or spec.primary_cluster_id
    node_group: dict[str, Any] = {
        "NodeGroupId": "0001",
        "Status": _node_group_status(status.status),
        "NodeGroupMembers": [_member(ctx, m, m.spec.id == primary_id) for m in members],
    }
    # Endpoints appear once the group has served (as on ElastiCache) and never change after that.
    if status.status != GroupState.CREATING and status.primary_endpoint_port and status.reader_endpoint_port:
        node_group["PrimaryEndpoint"] = endpoint(ctx, status.primary_endpoint_port)
        node_group["ReaderEndpoint"] = endpoint(ctx, status.reader_endpoint_port)
    view: dict[str, Any] = {
        "ReplicationGroupId": spec.id,
        "Description": spec.description,
        "Status": status.status,
        "PendingModifiedValues": {},
        "MemberClusters": list(spec.members),
        "NodeGroups": [node_group],
        "AutomaticFailover": _automatic_failover(spec.automatic_failover, status.failover_active),
        "MultiAZ": "enabled" if spec.multi_az else "disabled",
        "SnapshotRetentionLimit": spec.snapshot_retention_limit,
        "SnapshotWindow": spec.snapshot_window or sn.DEFAULT_WINDOW,
        "ClusterEnabled": False,
        "CacheNodeType": spec.node_type,
        **_security(spec.security, status.transit_mode),
        "AtRestEncryptionEnabled": spec.encryption.enabled,
        "StorageEncryptionType": spec.encryption.storage_type,
        "ARN": ctx.arn("replication-group", spec.id),
        "LogDeliveryConfigurations": [],
        "ReplicationGroupCreateTime": spec.created_at,
        "DataTiering": "disabled",
        "AutoMinorVersionUpgrade": spec.stored.auto_minor_version_upgrade,
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
        "ClusterMode": "disabled",
        "Engine": spec.engine,
    }
    if spec.encryption.kms_key_id:
        view["KmsKeyId"] = kms_arn(ctx, spec.encryption.kms_key_id)
    if status.user_group_ids:
        view["UserGroupIds"] = list(status.user_group_ids)
    # What the nodes do not run yet: a token change, user groups, a TLS step.
    view["PendingModifiedValues"] = sec.pending(
        spec.security, status.security_done, status.transit_mode, status.user_group_ids
    )
    if spec.snapshot_retention_limit > 0:
        # The member the next automatic snapshot is taken on, as the scheduler picks it.
        view["SnapshottingClusterId"] = choose_member(group, members, spec.snapshotting_member)
    return view


def _automatic_failover(wanted: bool, active: bool) -> str:
    if wanted:
        return "enabled" if active else "enabling"
    return "disabling" if active else "disabled"


def _node_group_status(group_status: GroupState) -> GroupState:
    """NodeGroup ``Status`` (creating, available, modifying, deleting) from the group's."""
    if group_status == GroupState.SNAPSHOTTING:
        return GroupState.AVAILABLE  # a snapshot changes nothing in the shard
    shown = {GroupState.CREATING, GroupState.AVAILABLE, GroupState.DELETING}
    return group_status if group_status in shown else GroupState.MODIFYING


def _member(ctx: Context, member: Cluster, is_primary: bool) -> dict[str, Any]:
    node = member.status.node(MEMBER_NODE_ID)
    view: dict[str, Any] = {
        "CacheClusterId": member.spec.id,
        "CacheNodeId": MEMBER_NODE_ID,
        "PreferredAvailabilityZone": node_zone(node, member.spec.node_azs[0]),
    }
    if node and node.created_at:
        view["ReadEndpoint"] = node_endpoint(ctx, node)
        view["CurrentRole"] = node.role or (PRIMARY if is_primary else REPLICA)
    return view


def cache_parameter_group(ctx: Context, group: ParameterGroup) -> dict[str, Any]:
    spec = group.spec
    return {
        "CacheParameterGroupName": spec.name,
        "CacheParameterGroupFamily": spec.family,
        "Description": spec.description,
        "IsGlobal": False,
        "ARN": ctx.arn(PARAMETER_GROUP, spec.name),
    }


def parameter(definition: pm.ParameterDef, value: str, source: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "ParameterName": definition.name,
        "Description": definition.description,
        "Source": source,
        "DataType": definition.data_type,
        "AllowedValues": definition.allowed,
        "IsModifiable": definition.modifiable,
        "MinimumEngineVersion": definition.minimum_engine_version,
        "ChangeType": definition.change_type,
    }
    if value:  # an empty value is left out, as ElastiCache does for notify-keyspace-events
        view["ParameterValue"] = value
    return view


def node_type_parameter(definition: pm.ParameterDef, source: str) -> dict[str, Any]:
    """A parameter whose value follows the node type: maxmemory (bytes), max_cache_memory (megabytes)."""
    divisor = 1 << 20 if definition.name == "max_cache_memory" else 1
    return {
        "ParameterName": definition.name,
        "Description": definition.description,
        "Source": source,
        "DataType": definition.data_type,
        "AllowedValues": definition.allowed,
        "IsModifiable": definition.modifiable,
        "MinimumEngineVersion": definition.minimum_engine_version,
        "CacheNodeTypeSpecificValues": [
            {"CacheNodeType": node_type, "Value": str((memory_bytes(node_type) or 0) // divisor)}
            for node_type in NODE_TYPES
        ],
        "ChangeType": definition.change_type,
    }


def snapshot(ctx: Context, snap: Snapshot, *, show_node_group_config: bool = False) -> dict[str, Any]:
    """The Snapshot shape: what the snapshot copied from its source, and its node snapshot."""
    spec, status = snap.spec, snap.status
    view: dict[str, Any] = {
        "SnapshotName": spec.name,
        "SnapshotStatus": status.status,
        "SnapshotSource": spec.source,
        "CacheNodeType": spec.node_type,
        "Engine": spec.engine,
        "EngineVersion": spec.engine_version,
        "NumCacheNodes": spec.num_cache_nodes,
        "PreferredMaintenanceWindow": spec.stored.window,
        "Port": spec.port or 6379,
        "CacheParameterGroupName": parameter_group_name(spec.engine, spec.engine_version, spec.parameter_group),
        "CacheSubnetGroupName": "default",
        "AutoMinorVersionUpgrade": spec.stored.auto_minor_version_upgrade,
        "SnapshotRetentionLimit": spec.snapshot_retention_limit,
        "SnapshotWindow": spec.snapshot_window or sn.DEFAULT_WINDOW,
        "ARN": ctx.arn(SNAPSHOT, spec.name),
        "DataTiering": "disabled",
    }
    if spec.stored.notification_topic_arn:
        view["TopicArn"] = spec.stored.notification_topic_arn
    if spec.preferred_az:
        view["PreferredAvailabilityZone"] = spec.preferred_az
    if spec.cluster_created_at:
        view["CacheClusterCreateTime"] = spec.cluster_created_at
    if spec.replication_group_id:
        view["ReplicationGroupId"] = spec.replication_group_id
        view["ReplicationGroupDescription"] = spec.replication_group_description or ""
        view["NumNodeGroups"] = 1
        view["AutomaticFailover"] = "enabled" if spec.automatic_failover else "disabled"
    if spec.cache_cluster_id:
        view["CacheClusterId"] = spec.cache_cluster_id
    if spec.encryption.kms_key_id:
        view["KmsKeyId"] = kms_arn(ctx, spec.encryption.kms_key_id)
    node: dict[str, Any] = {"CacheNodeId": "0001"}
    node_cluster = status.node_cluster_id or spec.cache_cluster_id
    if node_cluster:
        node["CacheClusterId"] = node_cluster
    if spec.replication_group_id:
        node["NodeGroupId"] = sn.NODE_GROUP
    if status.size is not None:
        node["CacheSize"] = sn.cache_size(status.size)
    if status.node_created_at:
        node["CacheNodeCreateTime"] = datetime.fromisoformat(status.node_created_at)
    if status.snapshot_created_at:
        node["SnapshotCreateTime"] = datetime.fromisoformat(status.snapshot_created_at)
    if show_node_group_config and spec.replication_group_id:
        config: dict[str, Any] = {"NodeGroupId": sn.NODE_GROUP, "ReplicaCount": len(spec.replica_azs)}
        if spec.primary_az:
            config["PrimaryAvailabilityZone"] = spec.primary_az
        if spec.replica_azs:
            config["ReplicaAvailabilityZones"] = list(spec.replica_azs)
        node["NodeGroupConfiguration"] = config
    view["NodeSnapshots"] = [node]
    return view


# -- RBAC users and user groups ------------------------------------------------------------------


def user(ctx: Context, spec: us.User, status: str, groups: Sequence[us.UserGroup]) -> dict[str, Any]:
    """The service model's User (CreateUser & co. answer with its members directly). Never a password:
    only how many there are."""
    return {
        "UserId": spec.user_id,
        "UserName": spec.user_name,
        "Status": status,
        "Engine": spec.engine,
        "MinimumEngineVersion": us.MINIMUM_ENGINE_VERSION,
        "AccessString": spec.access_string,
        "UserGroupIds": [g.user_group_id for g in groups if spec.user_id in g.user_ids],
        "Authentication": {"Type": spec.authentication.value, "PasswordCount": len(spec.password_hashes)},
        "ARN": ctx.arn("user", spec.user_id),
    }


def user_group(
    ctx: Context, spec: us.UserGroup, status: UserGroupStatus, replication_groups: Sequence[str] = ()
) -> dict[str, Any]:
    """The service model's UserGroup: while a change is carried out, ``UserIds`` are the members the
    engines have and ``PendingChanges`` the difference. ``replication_groups``: those associated."""
    members = spec.user_ids
    pending: dict[str, Any] = {}
    if status.status is UserGroupState.MODIFYING:
        members = status.applied_user_ids
        to_add = [u for u in spec.user_ids if u not in status.applied_user_ids]
        to_remove = [u for u in status.applied_user_ids if u not in spec.user_ids]
        pending = {"UserIdsToAdd": to_add, "UserIdsToRemove": to_remove}
    view: dict[str, Any] = {
        "UserGroupId": spec.user_group_id,
        "Status": status.status.value,
        "Engine": spec.engine,
        "UserIds": list(members),
        "MinimumEngineVersion": us.MINIMUM_ENGINE_VERSION,
        "ReplicationGroups": list(replication_groups),
        "ServerlessCaches": [],
        "ARN": ctx.arn("user-group", spec.user_group_id),
    }
    if pending:
        view["PendingChanges"] = pending
    return view
