"""Where a new cluster, group or replica may run, checked when the call is made.

``CacheSubnetGroupName`` names the subnets (sets of hosts, one AZ each) it may run on; the AZs asked
for must be among theirs, and when none is asked for the nodes spread over them. Placement itself
(which host) is the reconciler's (``control.planners``, ``model.placement``); the API runs the same
pure function over the hosts as they are, so that a request nothing can host is answered
``InsufficientCacheClusterCapacity`` at once, as ElastiCache answers it, and nothing is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from cachefleet.api.context import Context
from cachefleet.engines.nodetypes import memory_bytes
from cachefleet.model.errors import InvalidParameterValue
from cachefleet.model.hosts import DEFAULT_SUBNET_GROUP
from cachefleet.model.placement import Want, place
from cachefleet.store.hosts import allowed_subnets, get_subnet_group, rooms, subnets


def subnet_group(ctx: Context, params: dict[str, Any], current: str | None = None) -> str | None:
    """The stored name of ``CacheSubnetGroupName`` (None for ``default``), checked to exist;
    ``current`` (a group's, for its new members) when the call names none."""
    if "CacheSubnetGroupName" not in params:
        return current
    group = get_subnet_group(ctx.store, ctx.local_host, params["CacheSubnetGroupName"])
    return None if group.is_default else group.spec.name


def zones(ctx: Context, name: str | None) -> tuple[str, ...]:
    """The AZs the subnet group's subnets cover, in the installation's order."""
    allowed = allowed_subnets(ctx.store, name)
    covered = {z for s, z in subnets(ctx.store, ctx.local_host).items() if allowed is None or s in allowed}
    return tuple(z for z in ctx.settings.azs if z in covered)


def check_zones(ctx: Context, azs: Iterable[str], name: str | None) -> None:
    """Every AZ asked for (already one of the installation's) is covered by the subnet group."""
    covered = zones(ctx, name)
    for az in azs:
        if az not in covered:
            raise InvalidParameterValue(
                f"No subnet of cache subnet group {name or DEFAULT_SUBNET_GROUP} is in availability zone {az}."
            )


def spread(ctx: Context, count: int, name: str | None, first: str | None = None) -> tuple[str, ...]:
    """``count`` AZs round-robin over the subnet group's, starting at ``first`` when it is one of them."""
    covered = zones(ctx, name)
    if not covered:
        raise InvalidParameterValue(f"Cache subnet group {name or DEFAULT_SUBNET_GROUP} has no subnet with a host.")
    start = covered.index(first) if first in covered else 0
    return tuple(covered[(start + i) % len(covered)] for i in range(count))


def check_capacity(
    ctx: Context,
    names: Sequence[str],
    azs: Sequence[str],
    *,
    node_type: str,
    subnet_group_name: str | None,
    together: Iterable[str] = (),
) -> None:
    """Raise ``InsufficientCacheClusterCapacity`` unless every node (``names[i]`` in ``azs[i]``) fits.

    ``together``: the hosts the group's other members run on (a new replica avoids them).
    """
    memory = memory_bytes(node_type) or 0
    wants = [Want(n, az, memory=memory) for n, az in zip(names, azs, strict=True)]
    place(
        wants,
        rooms(ctx.store, ctx.local_host, lambda t: memory_bytes(t) or 0),
        subnets=allowed_subnets(ctx.store, subnet_group_name),
        together=Counter(together),
    )
