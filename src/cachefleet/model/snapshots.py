"""Snapshot rules as pure functions: names, windows, retention, quotas, S3 ARNs and sizes.

Everything here is computed from values passed in (times included), so the scheduler and the API can
be tested with any clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cachefleet.model.errors import InvalidParameterValue
from cachefleet.model.specs import MANUAL, CacheClusterSpec, ReplicationGroupSpec, SnapshotSpec, Tags

SNAPSHOT_NAME_MAX = 255
MAX_RETENTION_DAYS = 35  # SnapshotRetentionLimit: 0 (off) to 35 days
DEFAULT_WINDOW = "05:00-06:00"  # what DescribeReplicationGroups shows when none was chosen
MIN_WINDOW_MINUTES = 60
# "A maximum of 20 manual snapshots per node in a 24-hour period" (ElastiCache quotas).
MANUAL_SNAPSHOTS_PER_DAY = 20
QUOTA_PERIOD = timedelta(hours=24)
AUTOMATIC_PREFIX = "automatic."
# ElastiCache names snapshot files per shard; a cluster-mode-disabled source has one, 0001.
NODE_GROUP = "0001"

# Stored names: user names are identifiers; automatic ones add a dot and a date. Both are safe as
# one path component.
_STORED_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_S3_ARN = re.compile(r"arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([^,]+)")
_OBJECT_KEY = re.compile(r"[A-Za-z0-9!_.*'()/-]+")


def is_stored_name(name: str) -> bool:
    return bool(_STORED_NAME.fullmatch(name)) and len(name) <= SNAPSHOT_NAME_MAX


def automatic_name(source_id: str, when: datetime) -> str:
    """``automatic.<id>-YYYY-MM-DD-HH-MM``, as ElastiCache names its daily snapshots."""
    return f"{AUTOMATIC_PREFIX}{source_id}-{when:%Y-%m-%d-%H-%M}"


def check_retention(value: int) -> int:
    if not 0 <= value <= MAX_RETENTION_DAYS:
        raise InvalidParameterValue(
            f"Invalid value for parameter SnapshotRetentionLimit: {value}. "
            f"It must be between 0 and {MAX_RETENTION_DAYS}."
        )
    return value


@dataclass(frozen=True)
class Window:
    """A daily UTC time range, ``hh24:mi-hh24:mi``; it may run past midnight."""

    start: int  # minutes after midnight
    end: int

    @property
    def minutes(self) -> int:
        return (self.end - self.start) % (24 * 60)

    def opening(self, now: datetime) -> datetime | None:
        """The start of the window occurrence that ``now`` falls in, or None outside the window."""
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for day in (midnight, midnight - timedelta(days=1)):
            opens = day + timedelta(minutes=self.start)
            if opens <= now < opens + timedelta(minutes=self.minutes):
                return opens
        return None


def parse_window(text: str, param: str = "SnapshotWindow") -> Window:
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise InvalidParameterValue(f"Invalid value for parameter {param}: {text}. The format is hh24:mi-hh24:mi.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    window = Window(h1 * 60 + m1, h2 * 60 + m2)
    if window.minutes < MIN_WINDOW_MINUTES:
        raise InvalidParameterValue(
            f"Invalid value for parameter {param}: {text}. The window must be at least {MIN_WINDOW_MINUTES} minutes."
        )
    return window


def due(window: str | None, now: datetime, taken: Iterable[datetime]) -> datetime | None:
    """The window opening an automatic snapshot is due for at ``now``: inside the window, and none
    taken since it opened. None when nothing is due."""
    opens = parse_window(window or DEFAULT_WINDOW).opening(now)
    if opens is None or any(t >= opens for t in taken):
        return None
    return opens


def expired(created: datetime, retention_days: int, now: datetime) -> bool:
    """Whether an automatic snapshot taken at ``created`` has outlived a retention of ``retention_days``.

    A snapshot taken today is kept for ``retention_days`` days: with daily snapshots, the newest
    ``retention_days`` remain. A limit of 0 (automatic snapshots turned off) keeps none.
    """
    return now - created >= timedelta(days=retention_days)


def over_quota(recent: Iterable[datetime], now: datetime) -> bool:
    """Whether one more manual snapshot of a node would exceed the per-24-hours quota."""
    return sum(1 for t in recent if now - t < QUOTA_PERIOD) >= MANUAL_SNAPSHOTS_PER_DAY


def parse_s3_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:s3:::bucket/key.rdb`` -> (bucket, key); the key may hold slashes, never commas or ``..``."""
    match = _S3_ARN.fullmatch(arn)
    key = match.group(2) if match else ""
    if match is None or not _OBJECT_KEY.fullmatch(key) or any(p in ("", ".", "..") for p in key.split("/")):
        raise InvalidParameterValue(
            f"Invalid S3 ARN {arn}: expected arn:aws:s3:::bucket/object-key (no commas in the object name)."
        )
    return match.group(1), key


def check_bucket(bucket: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or ".." in bucket:
        raise InvalidParameterValue(f"Invalid value for parameter TargetBucket: {bucket}.")
    return bucket


def cache_size(size: int) -> str:
    """``CacheSize`` as ElastiCache prints it: whole megabytes, e.g. ``"5 MB"``."""
    return f"{round(size / (1 << 20))} MB"


# -- what a snapshot copies from its source ------------------------------------------------------


def of_group(
    name: str,
    group: ReplicationGroupSpec,
    members: Sequence[CacheClusterSpec],
    primary_id: str,
    *,
    source: str,
    created_at: datetime,
    member: str | None = None,
    final: bool = False,
    tags: Tags = (),
) -> SnapshotSpec:
    """A snapshot of a cluster-mode-disabled group (``member``: the one CreateSnapshot named)."""
    by_id = {m.id: m for m in members}
    primary = by_id.get(primary_id)
    return SnapshotSpec(
        name=name,
        source=source,
        engine=group.engine,
        engine_version=group.engine_version,
        node_type=group.node_type,
        created_at=created_at,
        replication_group_id=group.id,
        replication_group_description=group.description,
        cache_cluster_id=member,
        final=final,
        port=group.port,
        parameter_group=group.parameter_group,
        preferred_az=primary.node_azs[0] if primary else None,
        cluster_created_at=group.created_at,
        snapshot_retention_limit=group.snapshot_retention_limit,
        snapshot_window=group.snapshot_window,
        automatic_failover=group.automatic_failover,
        primary_az=primary.node_azs[0] if primary else None,
        replica_azs=tuple(m.node_azs[0] for m in members if m.id != primary_id),
        tags=tags,
        stored=group.stored,
        encryption=group.encryption,
    )


def of_cluster(
    name: str, cluster: CacheClusterSpec, *, source: str, created_at: datetime, final: bool = False, tags: Tags = ()
) -> SnapshotSpec:
    """A snapshot of a standalone Redis cluster (one node)."""
    return SnapshotSpec(
        name=name,
        source=source,
        engine=cluster.engine,
        engine_version=cluster.engine_version,
        node_type=cluster.node_type,
        created_at=created_at,
        cache_cluster_id=cluster.id,
        final=final,
        port=cluster.port,
        parameter_group=cluster.parameter_group,
        preferred_az=cluster.node_azs[0],
        cluster_created_at=cluster.created_at,
        snapshot_retention_limit=cluster.snapshot_retention_limit,
        snapshot_window=cluster.snapshot_window,
        num_cache_nodes=cluster.num_nodes,
        primary_az=cluster.node_azs[0],
        tags=tags,
        stored=cluster.stored,
    )


def copy(source: SnapshotSpec, name: str, *, created_at: datetime, tags: Tags = ()) -> SnapshotSpec:
    """CopySnapshot: a manual snapshot with the source's settings and its own name and tags."""
    return replace(
        source, name=name, source=MANUAL, created_at=created_at, final=False, copy_of=source.name, tags=tags
    )
