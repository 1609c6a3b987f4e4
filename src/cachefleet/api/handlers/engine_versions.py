"""DescribeCacheEngineVersions: what is really installed on this host."""

from __future__ import annotations

from typing import Any

from cachefleet.api import inputs
from cachefleet.api.context import Context
from cachefleet.api.paging import page
from cachefleet.api.views import parameter_group_family

_DESCRIPTIONS = {"redis": "Redis", "valkey": "Valkey", "memcached": "memcached"}


DESCRIBE_INPUTS = inputs.Inputs(
    inputs.implemented("Engine", "EngineVersion", "CacheParameterGroupFamily", "MaxRecords", "Marker", "DefaultOnly")
)


async def describe_cache_engine_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {
            "Engine": e.engine,
            "EngineVersion": e.version,
            "CacheParameterGroupFamily": parameter_group_family(e.engine, e.version),
            "CacheEngineDescription": _DESCRIPTIONS[e.engine],
            "CacheEngineVersionDescription": f"{_DESCRIPTIONS[e.engine]} {e.version} ({e.path})",
        }
        for e in ctx.engines
    ]
    if "Engine" in params:
        rows = [r for r in rows if r["Engine"] == params["Engine"].lower()]
    if "EngineVersion" in params:
        wanted = params["EngineVersion"]
        rows = [r for r in rows if r["EngineVersion"] == wanted or r["EngineVersion"].startswith(wanted + ".")]
    if "CacheParameterGroupFamily" in params:
        rows = [r for r in rows if r["CacheParameterGroupFamily"] == params["CacheParameterGroupFamily"]]
    if params.get("DefaultOnly", False):
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:
            newest[row["Engine"]] = row  # the discovery lists each engine's versions oldest first
        rows = list(newest.values())
    selected, marker = page(rows, params)
    result: dict[str, Any] = {"CacheEngineVersions": list(selected)}
    if marker:
        result["Marker"] = marker
    return result
