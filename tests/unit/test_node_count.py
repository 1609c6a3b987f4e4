"""ModifyCacheCluster's node-count rules for Memcached (``model.node_count``)."""

from __future__ import annotations

from typing import Any

import pytest

from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue
from cachefleet.model.node_count import PendingNodes, change

AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
THREE = (("0001", "us-east-1a"), ("0002", "us-east-1b"), ("0003", "us-east-1c"))


def _change(nodes: Any = THREE, pending: PendingNodes | None = None, **kwargs: Any) -> Any:
    options = {"az_mode": "cross-az", "known_azs": AZS, "apply_now": True, "last_node": 3, **kwargs}
    return change(nodes, pending, **options)


def test_adding_nodes_now_takes_the_next_ids_in_the_least_used_zones() -> None:
    result = _change(THREE[:2], requested=4, last_node=2)
    assert result.nodes == (*THREE[:2], ("0003", "us-east-1c"), ("0004", "us-east-1a"))
    assert (result.added, result.pending, result.last_node) == (("0003", "0004"), None, 4)


def test_new_availability_zones_place_the_added_nodes() -> None:
    result = _change(requested=5, new_azs=["us-east-1b", "us-east-1b"])
    assert result.nodes[3:] == (("0004", "us-east-1b"), ("0005", "us-east-1b"))
    with pytest.raises(InvalidParameterValue, match="one Availability Zone per added node"):
        _change(requested=5, new_azs=["us-east-1b"])
    with pytest.raises(InvalidParameterValue, match="Unknown Availability Zone"):
        _change(requested=4, new_azs=["mars-1a"])


def test_single_az_clusters_grow_in_their_zone() -> None:
    one_zone = (("0001", "us-east-1b"),)
    assert _change(one_zone, requested=3, az_mode="single-az", last_node=1).nodes[1:] == (
        ("0002", "us-east-1b"),
        ("0003", "us-east-1b"),
    )
    with pytest.raises(InvalidParameterCombination):
        _change(one_zone, requested=2, az_mode="single-az", new_azs=["us-east-1c"], last_node=1)


def test_removing_needs_exactly_the_ids_of_existing_nodes() -> None:
    result = _change(requested=2, remove=["0002"])
    assert (result.nodes, result.removed) == ((THREE[0], THREE[2]), ("0002",))
    with pytest.raises(InvalidParameterValue, match="must list 1 distinct"):
        _change(requested=2)
    with pytest.raises(InvalidParameterValue, match="must list 1 distinct"):
        _change(requested=2, remove=["0001", "0002"])
    with pytest.raises(InvalidParameterValue, match="no cache node 0009"):
        _change(requested=2, remove=["0009"])
    with pytest.raises(InvalidParameterCombination):
        _change(requested=4, remove=["0001"])
    with pytest.raises(InvalidParameterCombination):
        _change(requested=2, remove=["0001"], new_azs=["us-east-1a"])


def test_ids_are_never_reused() -> None:
    removed = _change(requested=2, remove=["0003"])
    grown = _change(removed.nodes, requested=3, last_node=removed.last_node)
    assert grown.added == ("0004",)


@pytest.mark.parametrize("count", [0, 41])
def test_the_count_stays_within_one_and_forty(count: int) -> None:
    with pytest.raises(InvalidParameterValue):
        _change(requested=count)


def test_without_apply_immediately_the_change_is_pending() -> None:
    result = _change(requested=5, apply_now=False)
    assert result.nodes == THREE
    assert result.pending == PendingNodes(5, (), ("us-east-1a", "us-east-1b"))
    removal = _change(requested=1, remove=["0003", "0001"], apply_now=False)
    assert removal.pending == PendingNodes(1, ("0001", "0003"), ())


def test_equal_count_cancels_what_is_pending() -> None:
    pending = PendingNodes(5, (), ("us-east-1a", "us-east-1b"))
    assert _change(pending=pending, requested=3).pending is None
    with pytest.raises(InvalidParameterCombination):
        _change(pending=pending, requested=3, remove=["0001"])
