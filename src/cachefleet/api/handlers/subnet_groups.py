"""Cache subnet groups: create, describe, modify, delete.

A subnet stands for a set of hosts in one AZ (``model.hosts``): the subnets there are are those of
the registered hosts (``cachefleet host add ... --subnet``) and of the embedded host (``local-<az>``).
A group or cluster created with ``CacheSubnetGroupName`` runs only on its subnets' hosts; the
``default`` group, never stored, covers every subnet.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from cachefleet.api import inputs, validate, views
from cachefleet.api.context import Context
from cachefleet.api.paging import page
from cachefleet.model.errors import (
    CacheSubnetGroupAlreadyExists,
    CacheSubnetGroupInUse,
    CacheSubnetGroupQuotaExceeded,
    CacheSubnetQuotaExceeded,
    InvalidParameterValue,
    InvalidSubnet,
    SubnetInUse,
)
from cachefleet.model.hosts import DEFAULT_SUBNET_GROUP, CacheSubnetGroupSpec
from cachefleet.store import statuses
from cachefleet.store.hosts import (
    all_subnet_groups,
    get_subnet_group,
    subnet_group_users,
    subnets,
    subnets_in_use,
)
from cachefleet.store.kinds import SUBNET_GROUPS

NAME_MAX = 255
_NAME = re.compile(r"[a-z0-9-]+")
MAX_SUBNETS = 20  # subnets per cache subnet group, as ElastiCache's quota
MAX_GROUPS = 300  # cache subnet groups per region, as ElastiCache's default quota


def _name(value: str) -> str:
    name = value.lower()
    if not 1 <= len(name) <= NAME_MAX or not _NAME.fullmatch(name):
        raise InvalidParameterValue(
            f"The parameter CacheSubnetGroupName must contain no more than {NAME_MAX} alphanumeric characters "
            "or hyphens."
        )
    return name


def _subnet_ids(ctx: Context, values: list[str]) -> tuple[str, ...]:
    """The subnets asked for, each one that exists, in the order given, without repeats."""
    if not values:
        raise InvalidParameterValue("The parameter SubnetIds must contain at least one subnet.")
    known = subnets(ctx.store, ctx.local_host)
    wanted = tuple(dict.fromkeys(values))
    for subnet in wanted:
        if subnet not in known:
            raise InvalidSubnet(
                f"The subnet ID {subnet} does not exist. Subnets here: {', '.join(sorted(known)) or 'none'}."
            )
    if len(wanted) > MAX_SUBNETS:
        raise CacheSubnetQuotaExceeded(f"A cache subnet group can have at most {MAX_SUBNETS} subnets.")
    return wanted


CREATE_INPUTS = inputs.Inputs(
    inputs.implemented("CacheSubnetGroupName", "CacheSubnetGroupDescription", "SubnetIds", "Tags")
)


async def create_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = _name(params["CacheSubnetGroupName"])
    tags = validate.tags(params)
    subnet_ids = _subnet_ids(ctx, params["SubnetIds"])
    if name == DEFAULT_SUBNET_GROUP or SUBNET_GROUPS.find(ctx.store, name) is not None:
        raise CacheSubnetGroupAlreadyExists(f"Cache subnet group {name} already exists.")
    if len(SUBNET_GROUPS.ids(ctx.store)) >= MAX_GROUPS:
        raise CacheSubnetGroupQuotaExceeded(f"At most {MAX_GROUPS} cache subnet groups may exist.")
    spec = CacheSubnetGroupSpec(name, params["CacheSubnetGroupDescription"], subnet_ids, tags)
    with ctx.store.transaction():
        if not statuses.create(ctx.store, SUBNET_GROUPS, name, spec):
            raise CacheSubnetGroupAlreadyExists(f"Cache subnet group {name} already exists.")
    return {"CacheSubnetGroup": views.cache_subnet_group(ctx, get_subnet_group(ctx.store, ctx.local_host, name))}


DESCRIBE_INPUTS = inputs.Inputs(inputs.implemented("CacheSubnetGroupName", "MaxRecords", "Marker"))


async def describe_cache_subnet_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "CacheSubnetGroupName" in params:
        groups = [get_subnet_group(ctx.store, ctx.local_host, params["CacheSubnetGroupName"])]
    else:
        groups = all_subnet_groups(ctx.store, ctx.local_host)
    selected, marker = page(groups, params)
    result: dict[str, Any] = {"CacheSubnetGroups": [views.cache_subnet_group(ctx, g) for g in selected]}
    if marker:
        result["Marker"] = marker
    return result


MODIFY_INPUTS = inputs.Inputs(inputs.implemented("CacheSubnetGroupName", "CacheSubnetGroupDescription", "SubnetIds"))


async def modify_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    group = get_subnet_group(ctx.store, ctx.local_host, params["CacheSubnetGroupName"])
    if group.is_default:
        raise InvalidParameterValue("The default cache subnet group cannot be modified.")
    spec = group.spec
    subnet_ids = _subnet_ids(ctx, params["SubnetIds"]) if "SubnetIds" in params else spec.subnet_ids
    busy = sorted((set(spec.subnet_ids) - set(subnet_ids)) & subnets_in_use(ctx.store, ctx.local_host, spec.name))
    if busy:
        raise SubnetInUse(
            f"The subnet {busy[0]} cannot leave cache subnet group {spec.name}: nodes of the group's users run there."
        )
    changed = replace(
        spec,
        description=params.get("CacheSubnetGroupDescription", spec.description),
        subnet_ids=subnet_ids,
    )
    if changed != spec:
        SUBNET_GROUPS.put_spec(ctx.store, spec.name, changed)
    return {"CacheSubnetGroup": views.cache_subnet_group(ctx, get_subnet_group(ctx.store, ctx.local_host, spec.name))}


DELETE_INPUTS = inputs.Inputs(inputs.implemented("CacheSubnetGroupName"))


async def delete_cache_subnet_group(ctx: Context, params: dict[str, Any]) -> None:
    group = get_subnet_group(ctx.store, ctx.local_host, params["CacheSubnetGroupName"])
    if group.is_default:
        raise InvalidParameterValue("The default cache subnet group cannot be deleted.")
    with ctx.store.transaction():
        users = subnet_group_users(ctx.store, group.spec.name)
        if users:
            raise CacheSubnetGroupInUse(f"Cache subnet group {group.spec.name} is in use by {', '.join(users)}.")
        ctx.store.delete(SUBNET_GROUPS.name, group.spec.name)
