"""The node type catalogue: AWS's published memory per node type, as maxmemory bytes."""

from __future__ import annotations

import re

import pytest

from cachefleet.engines.nodetypes import DEFAULT_NODE_TYPE, NODE_TYPES, memory_bytes

GIB = 1 << 30


@pytest.mark.parametrize(
    ("node_type", "gib"),
    [
        ("cache.t3.micro", 0.5),
        ("cache.t3.small", 1.37),
        ("cache.t3.medium", 3.09),
        ("cache.t4g.micro", 0.5),
        ("cache.t4g.small", 1.37),
        ("cache.t4g.medium", 3.09),
        ("cache.m6g.large", 6.38),
        ("cache.m6g.xlarge", 12.93),
        ("cache.r6g.large", 13.07),
        ("cache.r6g.xlarge", 26.32),
        ("cache.r7g.large", 13.07),
        ("cache.r7g.xlarge", 26.32),
    ],
)
def test_published_sizes(node_type: str, gib: float) -> None:
    assert NODE_TYPES[node_type] == gib
    assert memory_bytes(node_type) == round(gib * GIB)


def test_micro_is_exactly_half_a_gib() -> None:
    # AWS's maxmemory for cache.t3.micro is 536870912.
    assert memory_bytes("cache.t3.micro") == 536870912


def test_aws_maxmemory_figures_are_close() -> None:
    # AWS's node-type maxmemory parameter (m5.large, r5.large) vs published GiB: within 0.1 %.
    for node_type, aws in (("cache.m5.large", 6854542746), ("cache.r5.large", 14037181030)):
        ours = memory_bytes(node_type)
        assert ours is not None
        assert abs(ours - aws) / aws < 0.001


def test_unknown_type() -> None:
    assert memory_bytes("cache.x99.huge") is None
    assert memory_bytes("") is None


def test_current_generation_families_are_complete() -> None:
    sizes = {
        "m7g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
        "m6g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
        "m5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"),
        "r7g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
        "r6g": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
        "r5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"),
        "t4g": ("micro", "small", "medium"),
        "t3": ("micro", "small", "medium"),
        "t2": ("micro", "small", "medium"),
    }
    for family, names in sizes.items():
        for size in names:
            assert f"cache.{family}.{size}" in NODE_TYPES


def test_names_and_sizes_are_sane() -> None:
    assert DEFAULT_NODE_TYPE in NODE_TYPES
    for name, gib in NODE_TYPES.items():
        assert re.fullmatch(r"cache\.[a-z]+[0-9]+g?\.[0-9]*(micro|small|medium|large|xlarge)", name)
        assert 0 < gib < 1024


def test_bigger_sizes_have_more_memory() -> None:
    order = ["micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "10xlarge"]
    order += ["12xlarge", "16xlarge", "24xlarge"]
    families: dict[str, list[tuple[int, float]]] = {}
    for name, gib in NODE_TYPES.items():
        _, family, size = name.split(".")
        families.setdefault(family, []).append((order.index(size), gib))
    for members in families.values():
        by_size = [gib for _, gib in sorted(members)]
        assert by_size == sorted(by_size)
