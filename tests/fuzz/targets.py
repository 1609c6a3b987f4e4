"""What the fuzz tests aim at: each AWS Query service the server answers, with its model and operations.

One entry per service. A later service on the same ``POST /`` (``iam``, ``sts``, ``monitoring``)
is fuzzed by adding its entry here: the query fuzz then draws its operations and builds forms from
its model, the SigV4 fuzz signs for its scope, and the XML fuzz writes its output shapes. Its
identifiers go in ``hints`` (values the fuzz prefers, by member name, so that requests reach the
handlers' deeper paths instead of stopping at "not found").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cachefleet.api.handlers import OPERATIONS
from cachefleet.api.handlers.iam import IAM_HANDLERS, STS_HANDLERS, iam_operations
from cachefleet.protocol.service import ServiceModel, load_service_model

TOPIC = "arn:aws:sns:us-east-1:123456789012:fuzz"


@dataclass(frozen=True)
class Target:
    service: str  # the SigV4 credential scope's service
    model: ServiceModel
    operations: tuple[str, ...]  # the operations the server implements
    pool: tuple[str, ...]  # plausible values for any string member
    hints: Mapping[str, tuple[str, ...]]  # plausible values by member name: the fixture's resources, enums
    # Whether an operation implements a member path: those are sent often, the others now and then.
    implements: Callable[[str, str], bool] = lambda operation, path: True


def _elasticache_implements(operation: str, path: str) -> bool:
    return not OPERATIONS[operation].inputs.member(path).refused


_RG = ("fuzz-rg", "Fuzz-RG")
_CLUSTERS = ("fuzz-redis", "fuzz-mc", "fuzz-rg-001", "fuzz-rg-002", "fuzz-rg-003")
_ARN = "arn:aws:elasticache:us-east-1:000000000000"

ELASTICACHE = Target(
    service="elasticache",
    model=load_service_model("elasticache"),
    operations=tuple(sorted(OPERATIONS)),
    pool=("fuzz-rg", "fuzz-redis", "fuzz-snap", "0001", "true", "1", "20", "default"),
    hints={
        "ReplicationGroupId": _RG,
        "CacheClusterId": _CLUSTERS,
        "PrimaryClusterId": _CLUSTERS,
        "SnapshottingClusterId": _CLUSTERS,
        "ReplicasToRemove": ("fuzz-rg-002", "fuzz-rg-003"),
        "SnapshotName": ("fuzz-snap", "fuzz-snap-2"),
        "SourceSnapshotName": ("fuzz-snap",),
        "TargetSnapshotName": ("fuzz-copy",),
        "FinalSnapshotIdentifier": ("fuzz-final",),
        "TargetBucket": ("fuzz-bucket",),
        "SnapshotArns": ("arn:aws:s3:::fuzz-bucket/seed.rdb",),
        "CacheParameterGroupName": ("fuzz-pg", "default.redis7", "default.memcached1.6"),
        "CacheParameterGroupFamily": ("redis7", "memcached1.6"),
        "CacheSubnetGroupName": ("default",),
        "NodeGroupId": ("0001", "1", "0002"),
        "CacheNodeIdsToReboot": ("0001", "0002"),
        "Engine": ("redis", "memcached", "valkey", "REDIS"),
        "EngineVersion": ("7.0", "7.0.15", "1.6", "6.2"),
        "CacheNodeType": ("cache.t4g.micro", "cache.r7g.large"),
        "PreferredAvailabilityZone": ("us-east-1a", "us-east-1b"),
        "PreferredAvailabilityZones": ("us-east-1a", "us-east-1c"),
        "PreferredCacheClusterAZs": ("us-east-1a", "us-east-1b", "us-east-1c"),
        "AZMode": ("single-az", "cross-az"),
        "SnapshotWindow": ("05:00-06:00", "23:30-00:30"),
        "PreferredMaintenanceWindow": ("sun:05:00-sun:06:00", "sat:23:30-sun:00:30"),
        "SecurityGroupIds": ("sg-0123abcd",),
        "NotificationTopicArn": (TOPIC, ""),
        "NotificationTopicStatus": ("active", "inactive"),
        "ResourceName": (
            f"{_ARN}:replicationgroup:fuzz-rg",
            f"{_ARN}:cluster:fuzz-redis",
            f"{_ARN}:snapshot:fuzz-snap",
            f"{_ARN}:parametergroup:fuzz-pg",
        ),
        "ParameterName": ("maxmemory-policy", "timeout", "maxmemory"),
        "ParameterValue": ("allkeys-lru", "30", "0"),
        "SourceType": ("replication-group", "cache-cluster", "cache-parameter-group"),
        "SourceIdentifier": ("fuzz-rg", "fuzz-redis"),
        "SnapshotSource": ("system", "user"),
        "Source": ("user", "system", "engine-default"),
        "Key": ("owner", "aws:reserved"),
        "TagKeys": ("owner",),
    },
    implements=_elasticache_implements,
)

def _iam_implements(operation: str, path: str) -> bool:
    return not _IAM_OPERATIONS[operation].inputs.member(path).refused


_IAM_OPERATIONS = iam_operations()
_POLICY_ARN = "arn:aws:iam::000000000000:policy/fuzz-policy"
_DOCUMENTS = (
    '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "NotAction": "iam:*", "Resource": "*", '
    '"Condition": {"StringLike": {"aws:username": "${aws:username}"}}}]}',
    '{"Statement": {"Effect": "Allow"}}',
    "{",
    "",
)

IAM = Target(
    service="iam",
    model=load_service_model("iam"),
    operations=tuple(sorted(IAM_HANDLERS)),
    pool=("fuzz-user", "fuzz-group", "fuzz-policy", "/", "/fuzz/", "v1", "true", "1"),
    hints={
        "UserName": ("fuzz-user", "fuzz-other", "FUZZ-USER"),
        "NewUserName": ("fuzz-renamed", "fuzz-user"),
        "GroupName": ("fuzz-group", "fuzz-other-group"),
        "PolicyName": ("fuzz-inline", "fuzz-policy"),
        "PolicyArn": (_POLICY_ARN, "arn:aws:iam::aws:policy/IAMReadOnlyAccess", "arn:aws:iam::123456789012:policy/x"),
        "PolicyDocument": _DOCUMENTS,
        "AccessKeyId": ("AKIAFUZZFUZZFUZZFUZZ",),
        "Status": ("Active", "Inactive", "Expired"),
        "VersionId": ("v1", "v2", "v9"),
        "Path": ("/", "/fuzz/", "fuzz"),
        "NewPath": ("/", "/fuzz/"),
        "PathPrefix": ("/", "/fuzz/"),
        "Scope": ("All", "AWS", "Local"),
        "EntityFilter": ("User", "Group", "Role"),
        "Key": ("owner", "aws:reserved"),
        "TagKeys": ("owner",),
    },
    implements=_iam_implements,
)

STS = Target(
    service="sts",
    model=load_service_model("sts"),
    operations=tuple(sorted(STS_HANDLERS)),
    pool=("fuzz",),
    hints={},
)

TARGETS = (ELASTICACHE, IAM, STS)
