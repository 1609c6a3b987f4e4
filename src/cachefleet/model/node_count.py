"""ModifyCacheCluster on a Memcached cluster's node count: which nodes, in which AZs, now or pending.

Pure. ``change`` checks one request against the cluster's nodes and its pending change, and says
what the cluster's nodes become now and what stays pending (``PendingModifiedValues``). Our reading
of ElastiCache's rules:

* ``NumCacheNodes`` above the current count adds nodes; a request to add replaces a pending
  removal, and a pending addition is replaced by the newer target (its AZs too).
* Below the current count removes nodes, and ``CacheNodeIdsToRemove`` must name exactly
  ``current - NumCacheNodes`` of them; it replaces any pending change.
* Equal to the current count cancels the pending change.
* ``NewAvailabilityZones`` only with an addition, one AZ per added node; without it, added nodes
  go to the AZs with the fewest nodes (``cross-az``) or to the cluster's one AZ (``single-az``).
* ``ApplyImmediately`` applies the change (a pending addition included) now; without it the change
  is pending until a later call applies it.

New nodes take the next ids after the highest the cluster ever had, so a removed node's id is never
reused while clients may still know it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.model.ids import node_id

MAX_NODES = 40


@dataclass(frozen=True)
class PendingNodes:
    """A node-count change waiting to be applied: the target, and what it removes or adds where."""

    num_nodes: int
    remove: tuple[str, ...] = ()
    new_azs: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeCountChange:
    nodes: tuple[tuple[str, str], ...]  # (node id, AZ) of the cluster from now on
    pending: PendingNodes | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    last_node: int = 0  # the highest node number ever given


def change(
    nodes: Sequence[tuple[str, str]],
    pending: PendingNodes | None,
    *,
    requested: int,
    remove: Sequence[str] = (),
    new_azs: Sequence[str] = (),
    az_mode: str,
    known_azs: Sequence[str],
    apply_now: bool,
    last_node: int,
) -> NodeCountChange:
    """What one ``ModifyCacheCluster NumCacheNodes`` request does; raises the AWS error if invalid."""
    if not 1 <= requested <= MAX_NODES:
        raise InvalidParameterValue(f"NumCacheNodes must be between 1 and {MAX_NODES} for memcached.")
    current = len(nodes)
    ids = [n for n, _ in nodes]
    if requested > current:
        if remove:
            raise InvalidParameterCombination("CacheNodeIdsToRemove applies only when NumCacheNodes decreases.")
        added = requested - current
        azs = tuple(new_azs) if new_azs else _placement(nodes, added, az_mode, known_azs)
        if len(azs) != added:
            raise InvalidParameterValue(
                f"NewAvailabilityZones must name one Availability Zone per added node ({added}), not {len(azs)}."
            )
        unknown = sorted(set(azs) - set(known_azs))
        if unknown:
            raise InvalidParameterValue(f"Unknown Availability Zone(s): {', '.join(unknown)}.")
        if az_mode == "single-az" and new_azs and len({*azs, *(az for _, az in nodes)}) > 1:
            raise InvalidParameterCombination("A single-az cluster adds nodes only in its own Availability Zone.")
        target = PendingNodes(requested, (), azs)
    elif requested < current:
        if new_azs:
            raise InvalidParameterCombination("NewAvailabilityZones applies only when NumCacheNodes increases.")
        wanted = current - requested
        if len(remove) != wanted or len(set(remove)) != len(remove):
            raise InvalidParameterValue(
                f"To go from {current} to {requested} nodes, CacheNodeIdsToRemove must list {wanted} distinct "
                f"node ids (it lists {len(remove)})."
            )
        unknown = [n for n in remove if n not in ids]
        if unknown:
            raise InvalidParameterValue(
                f"Cache cluster has no cache node {', '.join(unknown)} (its nodes: {', '.join(ids)})."
            )
        target = PendingNodes(requested, tuple(sorted(remove)), ())
    else:
        if remove or new_azs:
            raise InvalidParameterCombination(
                "NumCacheNodes equal to the current count cancels pending changes; it takes no node ids or zones."
            )
        return NodeCountChange(tuple(nodes), None, last_node=last_node)
    if not apply_now:
        return NodeCountChange(tuple(nodes), target, last_node=last_node)
    return apply(nodes, target, last_node=last_node)


def apply(nodes: Sequence[tuple[str, str]], target: PendingNodes, *, last_node: int) -> NodeCountChange:
    """The cluster's nodes once ``target`` is carried out."""
    kept = tuple((n, az) for n, az in nodes if n not in target.remove)
    first = max(last_node, *(int(n) for n, _ in nodes)) + 1 if nodes else last_node + 1
    new = tuple((node_id(first + i), az) for i, az in enumerate(target.new_azs))
    return NodeCountChange(
        (*kept, *new),
        None,
        added=tuple(n for n, _ in new),
        removed=target.remove,
        last_node=max(first - 1 + len(new), last_node),
    )


def _placement(nodes: Sequence[tuple[str, str]], count: int, az_mode: str, known: Sequence[str]) -> tuple[str, ...]:
    """AZs for ``count`` new nodes: the cluster's own AZ (single-az), else the least used ones first."""
    if az_mode != "cross-az":
        return (nodes[0][1] if nodes else known[0],) * count
    used = Counter(az for _, az in nodes)
    chosen: list[str] = []
    for _ in range(count):
        az = min(known, key=lambda a: (used[a], known.index(a)))
        used[az] += 1
        chosen.append(az)
    return tuple(chosen)
