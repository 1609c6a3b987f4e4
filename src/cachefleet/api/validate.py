"""Checks shared by the create calls: engines, node types, AZs, tags and not-yet-built features.

Each check raises the AWS fault a boto3 user expects and returns the normalised value, so a handler
reads as a list of checks followed by one store write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import NODE_TYPES
from cachefleet.model import parameters
from cachefleet.model.errors import (
    CacheSubnetGroupNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    TagQuotaPerResourceExceeded,
)
from cachefleet.model.specs import Tags
from cachefleet.store.records import get_parameter_group
from cachefleet.store.sqlite import Store

MAX_TAGS = 50
DEFAULT_NODE_TYPE = "cache.t4g.micro"
REDIS_ENGINES = ("redis", "valkey")


def engine_binary(engines: Sequence[EngineBinary], engine: str, version: str | None) -> EngineBinary:
    """The installed binary ``engine``/``version`` names ("7.0" or "7.0.15"); the newest if no version."""
    engine = engine.lower()
    if engine not in ("redis", "valkey", "memcached"):
        raise InvalidParameterValue(
            f"Invalid value for parameter Engine: {engine}. Valid values: redis, valkey, memcached."
        )
    candidates = [e for e in engines if e.engine == engine]
    if not candidates:
        raise InvalidParameterValue(f"Engine {engine} is not installed on this cachefleet host.")
    if version is None:
        return max(candidates, key=lambda e: _version_key(e.version))
    matching = [e for e in candidates if e.version == version or e.version.startswith(version + ".")]
    if not matching:
        installed = ", ".join(e.version for e in candidates)
        raise InvalidParameterValue(f"Cannot find version {version} for {engine}. Installed versions: {installed}.")
    return max(matching, key=lambda e: _version_key(e.version))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def node_type(params: dict[str, Any]) -> str:
    value = str(params.get("CacheNodeType", DEFAULT_NODE_TYPE))
    if value not in NODE_TYPES:
        raise InvalidParameterValue(f"Invalid CacheNodeType: {value}.")
    return value


def availability_zones(values: Iterable[str], known: Sequence[str]) -> tuple[str, ...]:
    azs = tuple(values)
    for az in azs:
        if az not in known:
            raise InvalidParameterValue(
                f"Invalid availability zone {az}. Valid availability zones: {', '.join(known)}."
            )
    return azs


def spread(count: int, known: Sequence[str], start: int = 0) -> tuple[str, ...]:
    """``count`` AZs round-robin over ``known``: the placement when the caller names none."""
    return tuple(known[(start + i) % len(known)] for i in range(count))


def tags(params: dict[str, Any], key: str = "Tags") -> Tags:
    pairs = tuple((str(t.get("Key", "")), str(t.get("Value", ""))) for t in params.get(key, []))
    check_tags(pairs)
    return pairs


def check_tags(pairs: Tags) -> None:
    for k, _ in pairs:
        if not k:
            raise InvalidParameterValue("Tag keys must not be empty.")
        if k.lower().startswith("aws:"):
            raise InvalidParameterValue(f"Tag key {k} uses the reserved prefix aws:.")
    if len(dict(pairs)) > MAX_TAGS:
        raise TagQuotaPerResourceExceeded(f"A resource can have at most {MAX_TAGS} tags.")


def port(params: dict[str, Any]) -> int | None:
    value = params.get("Port")
    if value is not None and not 1 <= value <= 65535:
        raise InvalidParameterValue(f"Invalid value for parameter Port: {value}.")
    return value if value is None else int(value)


def subnet_group(params: dict[str, Any]) -> None:
    name = params.get("CacheSubnetGroupName")
    # One host network stands in for the default subnet group; there are no custom ones yet.
    if name is not None and name.lower() != "default":
        raise CacheSubnetGroupNotFound(f"Cache subnet group {name} not found.")


def cache_parameter_group(store: Store, name: str, engine: str, version: str, *, replication_group: bool) -> str:
    """The stored name of the parameter group ``name``, checked against the engine version it will serve.

    Unknown -> CacheParameterGroupNotFound; another family -> InvalidParameterCombination; a group
    with cluster-enabled=yes -> refused (a cache cluster can never use one; cluster-mode-enabled
    replication groups are not built yet).
    """
    group = get_parameter_group(store, name)
    family = parameters.family_for(engine, version)
    if group.spec.family != family:
        raise InvalidParameterCombination(
            f"The parameter group {group.spec.name} is of family {group.spec.family}, "
            f"but {engine} {version} needs a group of family {family}."
        )
    if parameters.effective(family, group.spec.overrides).get("cluster-enabled") == "yes":
        if replication_group:
            raise InvalidParameterValue(
                "Cluster mode enabled replication groups are not supported by this cachefleet version yet."
            )
        raise InvalidParameterCombination(
            f"A cache cluster cannot use the parameter group {group.spec.name}: it has cluster-enabled=yes."
        )
    return group.spec.name


def not_yet_supported(params: dict[str, Any], names: Iterable[str]) -> None:
    """Refuse, rather than silently ignore, a feature this version does not build yet."""
    for name in names:
        value = params.get(name)
        if value in (None, False, 0, [], ""):
            continue
        raise InvalidParameterValue(f"The parameter {name} is not supported by this cachefleet version yet.")


def exclusive(params: dict[str, Any], *names: str) -> None:
    given = [n for n in names if n in params]
    if len(given) > 1:
        raise InvalidParameterCombination(f"The parameters {' and '.join(given)} cannot be used together.")
