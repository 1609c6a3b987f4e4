"""Checks shared by the create and modify calls: engines, node types, AZs, tags and stored settings.

Each check raises the AWS fault a boto3 user expects and returns the normalised value, so a handler
reads as a list of checks followed by one store write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from cachefleet.engines.installed import EngineBinary
from cachefleet.engines.nodetypes import NODE_TYPES
from cachefleet.model import parameters
from cachefleet.model.errors import (
    InvalidParameterCombination,
    InvalidParameterValue,
    TagQuotaPerResourceExceeded,
)
from cachefleet.model.specs import ACTIVE, StoredSettings, Tags
from cachefleet.store.records import get_parameter_group
from cachefleet.store.sqlite import Store

MAX_TAGS = 50
REDIS_ENGINES = ("redis", "valkey")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MAINTENANCE_WINDOW = re.compile(
    r"(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):([0-5]\d)-(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):([0-5]\d)"
)
_SECURITY_GROUP_ID = re.compile(r"sg-[0-9A-Za-z]{1,32}")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}")
TOPIC_STATUSES = (ACTIVE, "inactive")


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
    matching = [e for e in candidates if version_matches(e.version, version)]
    if not matching:
        installed = ", ".join(e.version for e in candidates)
        raise InvalidParameterValue(f"Cannot find version {version} for {engine}. Installed versions: {installed}.")
    return max(matching, key=lambda e: _version_key(e.version))


def version_matches(installed: str, asked: str) -> bool:
    """``asked`` names ``installed``: the full version, or a prefix of it ("7.0" for "7.0.15")."""
    return installed == asked or installed.startswith(asked + ".")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def node_type(params: dict[str, Any]) -> str:
    """``CacheNodeType``, which ElastiCache requires (it has no default)."""
    value = params.get("CacheNodeType")
    if not value:
        raise InvalidParameterValue("The parameter CacheNodeType must be provided and must not be null.")
    if value not in NODE_TYPES:
        raise InvalidParameterValue(f"Invalid CacheNodeType: {value}.")
    return str(value)


def availability_zones(values: Iterable[str], known: Sequence[str]) -> tuple[str, ...]:
    azs = tuple(values)
    for az in azs:
        if az not in known:
            raise InvalidParameterValue(
                f"Invalid availability zone {az}. Valid availability zones: {', '.join(known)}."
            )
    return azs


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


def exclusive(params: dict[str, Any], *names: str) -> None:
    given = [n for n in names if n in params]
    if len(given) > 1:
        raise InvalidParameterCombination(f"The parameters {' and '.join(given)} cannot be used together.")


# Settings that are stored and shown, and drive nothing on one host (model.specs.StoredSettings).


def stored_settings(params: dict[str, Any], current: StoredSettings | None = None) -> StoredSettings:
    """``current`` (else the defaults) with what ``params`` gives of SecurityGroupIds,
    PreferredMaintenanceWindow, NotificationTopicArn, NotificationTopicStatus and
    AutoMinorVersionUpgrade, each checked."""
    changed = current or StoredSettings()
    if "SecurityGroupIds" in params:
        changed = replace(changed, security_group_ids=security_group_ids(params["SecurityGroupIds"]))
    if "PreferredMaintenanceWindow" in params:
        changed = replace(changed, maintenance_window=maintenance_window(params["PreferredMaintenanceWindow"]))
    if "NotificationTopicArn" in params:
        # An empty ARN removes the topic (what Terraform sends to drop one).
        changed = replace(changed, notification_topic_arn=topic_arn(params["NotificationTopicArn"]) or None)
    if "NotificationTopicStatus" in params:
        status = params["NotificationTopicStatus"]
        if status not in TOPIC_STATUSES:
            raise InvalidParameterValue(
                f"Invalid value for parameter NotificationTopicStatus: {status}. Valid values: active, inactive."
            )
        changed = replace(changed, notification_topic_status=status)
    if "AutoMinorVersionUpgrade" in params:
        changed = replace(changed, auto_minor_version_upgrade=bool(params["AutoMinorVersionUpgrade"]))
    return changed


def security_group_ids(values: Iterable[str]) -> tuple[str, ...]:
    ids: list[str] = []
    for value in values:
        if not _SECURITY_GROUP_ID.fullmatch(value):
            raise InvalidParameterValue(
                f"Invalid value for parameter SecurityGroupIds: {value}. A security group id looks like sg-0123abcd."
            )
        if value not in ids:
            ids.append(value)
    return tuple(ids)


def maintenance_window(value: str) -> str:
    """A weekly window ``ddd:hh24:mi-ddd:hh24:mi`` (UTC) of 60 minutes to 24 hours, lowercased."""
    lowered = value.lower()
    match = _MAINTENANCE_WINDOW.fullmatch(lowered)
    if match is None:
        raise InvalidParameterValue(
            f"Invalid value for parameter PreferredMaintenanceWindow: {value}. "
            "Use the format ddd:hh24:mi-ddd:hh24:mi (UTC), for example sun:23:00-mon:01:30."
        )
    day1, h1, m1, day2, h2, m2 = match.groups()
    start = _DAYS.index(day1) * 1440 + int(h1) * 60 + int(m1)
    end = _DAYS.index(day2) * 1440 + int(h2) * 60 + int(m2)
    minutes = (end - start) % (7 * 1440)
    if not 60 <= minutes <= 24 * 60:
        raise InvalidParameterValue(f"The maintenance window {value} must be from 60 minutes to 24 hours long.")
    return lowered


def topic_arn(value: str) -> str:
    if value and not _TOPIC_ARN.fullmatch(value):
        raise InvalidParameterValue(
            f"Invalid value for parameter NotificationTopicArn: {value}. "
            "It must be an SNS topic ARN, arn:aws:sns:<region>:<account>:<topic>."
        )
    return value
