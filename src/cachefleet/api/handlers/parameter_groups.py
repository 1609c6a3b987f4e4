"""Cache parameter groups: create, describe, modify, reset, delete, and the engine defaults.

A group is desired state like any other: these calls only write it. Clusters and groups using it
are queued by the store's listener, and the reconciler brings their nodes to the new values
(CONFIG SET for ``immediate`` parameters, ``pending-reboot`` for the others).
"""

from __future__ import annotations

from typing import Any

from cachefleet.api import inputs, validate, views
from cachefleet.api.context import Context
from cachefleet.api.paging import page
from cachefleet.model import parameters as pm
from cachefleet.model.errors import (
    CacheParameterGroupAlreadyExists,
    CacheParameterGroupQuotaExceeded,
    InvalidCacheParameterGroupState,
    InvalidParameterCombination,
    InvalidParameterValue,
)
from cachefleet.model.ids import check_identifier
from cachefleet.model.specs import CacheParameterGroupSpec
from cachefleet.store import statuses
from cachefleet.store.kinds import GROUPS, PARAMETER_GROUPS
from cachefleet.store.records import (
    PARAMETER_GROUP,
    ParameterGroup,
    all_parameter_groups,
    get_parameter_group,
    parameter_group_users,
)
from cachefleet.store.sqlite import Match

NAME_MAX = 255
MAX_GROUPS = 150  # customer parameter groups per region, as ElastiCache's default quota


def _family(value: str) -> str:
    family = value.lower()
    if family not in pm.FAMILIES:
        raise InvalidParameterValue(
            f"Invalid parameter group family {value}. Valid values: {', '.join(pm.FAMILIES)}."
        )
    return family


CREATE_INPUTS = inputs.Inputs(
    inputs.implemented("CacheParameterGroupName", "CacheParameterGroupFamily", "Description", "Tags")
)


async def create_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = check_identifier("CacheParameterGroupName", params["CacheParameterGroupName"], NAME_MAX)
    family = _family(params["CacheParameterGroupFamily"])
    tags = validate.tags(params)
    if pm.is_default_group(name) or ctx.store.get(PARAMETER_GROUP, name):
        raise CacheParameterGroupAlreadyExists(f"Parameter group {name} already exists.")
    if ctx.store.count(PARAMETER_GROUP) >= MAX_GROUPS:
        raise CacheParameterGroupQuotaExceeded(f"At most {MAX_GROUPS} cache parameter groups may exist.")
    spec = CacheParameterGroupSpec(name=name, family=family, description=params["Description"], tags=tags)
    with ctx.store.transaction():
        if not statuses.create(ctx.store, PARAMETER_GROUPS, name, spec):
            raise CacheParameterGroupAlreadyExists(f"Parameter group {name} already exists.")
        ctx.store.add_event(name, PARAMETER_GROUP, f"Cache parameter group {name} created", ctx.clock())
    return {"CacheParameterGroup": views.cache_parameter_group(ctx, get_parameter_group(ctx.store, name))}


DESCRIBE_GROUPS_INPUTS = inputs.Inputs(inputs.implemented("CacheParameterGroupName", "MaxRecords", "Marker"))


async def describe_cache_parameter_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "CacheParameterGroupName" in params:
        groups = [get_parameter_group(ctx.store, params["CacheParameterGroupName"])]
    else:
        groups = all_parameter_groups(ctx.store)
    selected, marker = page(groups, params)
    result: dict[str, Any] = {"CacheParameterGroups": [views.cache_parameter_group(ctx, g) for g in selected]}
    if marker:
        result["Marker"] = marker
    return result


def _rows(group: ParameterGroup, source: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(Parameters, CacheNodeTypeSpecificParameters) of a group, filtered by Source."""
    if source is not None and source not in pm.SOURCES:
        raise InvalidParameterValue(f"Invalid Source {source}. Valid values: {', '.join(pm.SOURCES)}.")
    overrides = {} if group.is_default else group.spec.overrides
    values = pm.effective(group.spec.family, group.spec.overrides)
    plain: list[dict[str, Any]] = []
    by_node_type: list[dict[str, Any]] = []
    for definition in pm.FAMILIES[group.spec.family]:
        # Values set in a customer's group are the user's; everything else, defaults groups' own
        # values included, is the system's. No parameter is reported as "engine-default".
        origin = pm.USER if definition.name in overrides else pm.SYSTEM
        if source is not None and origin != source:
            continue
        if definition.node_type_specific:
            by_node_type.append(views.node_type_parameter(definition, origin))
        else:
            plain.append(views.parameter(definition, values[definition.name], origin))
    return plain, by_node_type


DESCRIBE_PARAMETERS_INPUTS = inputs.Inputs(
    inputs.implemented("CacheParameterGroupName", "Source", "MaxRecords", "Marker")
)


async def describe_cache_parameters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_parameter_group(ctx.store, params["CacheParameterGroupName"])
    plain, by_node_type = _rows(group, params.get("Source"))
    selected, marker = page(plain, params)
    result: dict[str, Any] = {"Parameters": list(selected)}
    # The paginator aggregates Parameters only; node-type values come once, with the first page.
    result["CacheNodeTypeSpecificParameters"] = by_node_type if "Marker" not in params else []
    if marker:
        result["Marker"] = marker
    return result


DESCRIBE_DEFAULTS_INPUTS = inputs.Inputs(
    inputs.implemented("CacheParameterGroupFamily", "MaxRecords", "Marker")
)


async def describe_engine_default_parameters(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    family = _family(params["CacheParameterGroupFamily"])
    defaults = get_parameter_group(ctx.store, pm.default_group_name(family))
    plain, by_node_type = _rows(defaults, None)
    selected, marker = page(plain, params)
    engine_defaults: dict[str, Any] = {
        "CacheParameterGroupFamily": family,
        "Parameters": list(selected),
        "CacheNodeTypeSpecificParameters": by_node_type if "Marker" not in params else [],
    }
    if marker:
        engine_defaults["Marker"] = marker
    return {"EngineDefaults": engine_defaults}


def _customer_group(ctx: Context, name: str) -> ParameterGroup:
    group = get_parameter_group(ctx.store, name)
    if group.is_default:
        raise InvalidCacheParameterGroupState(f"The default parameter group {group.spec.name} cannot be changed.")
    return group


def _names_and_values(params: dict[str, Any], *, need_values: bool) -> list[tuple[str, str]]:
    items = params.get("ParameterNameValues") or []
    if need_values and not 1 <= len(items) <= pm.MAX_MODIFY:
        raise InvalidParameterValue(f"Between 1 and {pm.MAX_MODIFY} ParameterNameValues must be given.")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if "ParameterName" not in item:
            raise InvalidParameterValue("Every ParameterNameValue needs a ParameterName.")
        if need_values and "ParameterValue" not in item:
            raise InvalidParameterValue(f"The parameter {item['ParameterName']} needs a ParameterValue.")
        pairs.append((item["ParameterName"], item.get("ParameterValue", "")))
    names = [n for n, _ in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidParameterValue(f"Parameters given more than once: {', '.join(repeated)}.")
    return pairs


def _save(ctx: Context, group: ParameterGroup, values: dict[str, str], message: str) -> dict[str, Any]:
    spec = group.spec.with_parameters(values)
    if spec != group.spec:
        with ctx.store.transaction():
            ctx.store.put_spec(PARAMETER_GROUP, spec.name, spec.to_json())
            ctx.store.add_event(spec.name, PARAMETER_GROUP, message, ctx.clock())
    return {"CacheParameterGroupName": spec.name}


MODIFY_INPUTS = inputs.Inputs(inputs.implemented("CacheParameterGroupName", "ParameterNameValues"))


async def modify_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = _customer_group(ctx, params["CacheParameterGroupName"])
    # Every pair is checked before anything is written: one bad value and nothing changes.
    changes = [pm.check_change(group.spec.family, n, v) for n, v in _names_and_values(params, need_values=True)]
    values = {**group.spec.overrides, **dict(changes)}
    names = ", ".join(n for n, _ in changes)
    return _save(ctx, group, values, f"Cache parameter group {group.spec.name} modified: {names}")


RESET_INPUTS = inputs.Inputs(
    inputs.implemented("CacheParameterGroupName", "ResetAllParameters", "ParameterNameValues")
)


async def reset_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = _customer_group(ctx, params["CacheParameterGroupName"])
    pairs = _names_and_values(params, need_values=False)
    reset_all = bool(params.get("ResetAllParameters", False))
    if reset_all == bool(pairs):
        raise InvalidParameterCombination("Give either ResetAllParameters=true or a list of ParameterNameValues.")
    if reset_all:
        return _save(ctx, group, {}, f"Cache parameter group {group.spec.name} reset")
    definitions = pm.definitions(group.spec.family)
    for name, _ in pairs:
        if name not in definitions:
            raise InvalidParameterValue(f"Unknown parameter {name} for parameter group family {group.spec.family}.")
        if not definitions[name].modifiable:
            raise InvalidParameterValue(f"The parameter {name} is not modifiable.")
    names = {n for n, _ in pairs}
    values = {k: v for k, v in group.spec.overrides.items() if k not in names}
    return _save(ctx, group, values, f"Cache parameter group {group.spec.name} reset: {', '.join(sorted(names))}")


DELETE_INPUTS = inputs.Inputs(inputs.implemented("CacheParameterGroupName"))


async def delete_cache_parameter_group(ctx: Context, params: dict[str, Any]) -> None:
    group = _customer_group(ctx, params["CacheParameterGroupName"])
    name = group.spec.name
    with ctx.store.transaction():
        users = [c.spec.id for c in parameter_group_users(ctx.store, name)]
        # A customer's group is never a default one, so its users name it.
        users += [g.spec.id for g in GROUPS.matching(ctx.store, [[Match("spec", "parameter_group", name)]])]
        if users:
            raise InvalidCacheParameterGroupState(
                f"The parameter group {name} is in use by {', '.join(sorted(set(users)))}."
            )
        ctx.store.delete(PARAMETER_GROUP, name)
        ctx.store.add_event(name, PARAMETER_GROUP, f"Cache parameter group {name} deleted", ctx.clock())
