"""DescribeEvents: what happened to clusters and groups, newest first, as ElastiCache lists them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cachefleet.api import inputs, paging
from cachefleet.api.context import Context
from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue

RETENTION = timedelta(days=14)  # ElastiCache keeps 14 days of events
DEFAULT_DURATION = 60  # minutes, when neither a start nor a duration is given
SOURCE_TYPES = (
    "cache-cluster",
    "cache-parameter-group",
    "cache-security-group",
    "cache-subnet-group",
    "replication-group",
    "serverless-cache",
    "serverless-cache-snapshot",
    "user",
    "user-group",
)


DESCRIBE_INPUTS = inputs.Inputs(
    inputs.implemented("SourceIdentifier", "SourceType", "StartTime", "EndTime", "Duration", "MaxRecords", "Marker")
)


async def describe_events(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    now = ctx.clock()
    source_type = params.get("SourceType")
    if source_type is not None and source_type not in SOURCE_TYPES:
        raise InvalidParameterValue(f"Invalid SourceType {source_type}. Valid values: {', '.join(SOURCE_TYPES)}.")
    if "SourceIdentifier" in params and source_type is None:
        raise InvalidParameterCombination("SourceType must be given with SourceIdentifier.")
    if "Duration" in params and "StartTime" in params and "EndTime" in params:
        raise InvalidParameterCombination("Duration cannot be combined with both StartTime and EndTime.")
    duration = params.get("Duration")
    if duration is not None and not 0 < duration <= RETENTION.total_seconds() // 60:
        raise InvalidParameterValue("Duration must be between 1 and 20160 minutes.")
    end = params.get("EndTime", now)
    if "StartTime" in params:
        start = params["StartTime"]
        if duration is not None:
            end = start + timedelta(minutes=duration)
    else:
        start = end - timedelta(minutes=duration if duration is not None else DEFAULT_DURATION)
    if start > end:
        raise InvalidParameterValue("StartTime must be before EndTime.")
    start = max(start, now - RETENTION)
    identifier = params.get("SourceIdentifier", "").lower() or None
    found, marker = paging.events(
        ctx.store, params, start=start, end=end, source_type=source_type, source_id=identifier
    )
    rows = [
        {"SourceIdentifier": e.source_id, "SourceType": e.source_type, "Message": e.message, "Date": e.date}
        for e in found
    ]
    result: dict[str, Any] = {"Events": rows}
    if marker:
        result["Marker"] = marker
    return result
