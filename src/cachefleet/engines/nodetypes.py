"""ElastiCache node types and the memory AWS publishes for each (GiB), which becomes ``maxmemory``.

Pure data. The figures are AWS's "memory (GiB)" column for each node type; AWS's own node-type
``maxmemory`` parameter values differ from ``GiB * 2**30`` by under 0.1 % (rounding of the published
GiB), which no application can tell apart.

We reserve nothing: ``maxmemory`` is a ceiling, and Redis and memcached only allocate memory as data
arrives. So a host may carry node types whose sum exceeds its RAM; on a real host the operator must
make sure its RAM (and swap policy) covers what the caches will actually hold, or the kernel's OOM
killer, not Redis eviction, decides what goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_GIB = 1 << 30

NODE_TYPES: Mapping[str, float] = MappingProxyType(
    {
        # Burstable, current generation
        "cache.t4g.micro": 0.5,
        "cache.t4g.small": 1.37,
        "cache.t4g.medium": 3.09,
        "cache.t3.micro": 0.5,
        "cache.t3.small": 1.37,
        "cache.t3.medium": 3.09,
        "cache.t2.micro": 0.555,
        "cache.t2.small": 1.55,
        "cache.t2.medium": 3.22,
        # General purpose, current generation
        "cache.m7g.large": 6.38,
        "cache.m7g.xlarge": 12.93,
        "cache.m7g.2xlarge": 26.04,
        "cache.m7g.4xlarge": 52.26,
        "cache.m7g.8xlarge": 103.68,
        "cache.m7g.12xlarge": 157.12,
        "cache.m7g.16xlarge": 209.55,
        "cache.m6g.large": 6.38,
        "cache.m6g.xlarge": 12.93,
        "cache.m6g.2xlarge": 26.04,
        "cache.m6g.4xlarge": 52.26,
        "cache.m6g.8xlarge": 103.68,
        "cache.m6g.12xlarge": 157.12,
        "cache.m6g.16xlarge": 209.55,
        "cache.m5.large": 6.38,
        "cache.m5.xlarge": 12.93,
        "cache.m5.2xlarge": 26.04,
        "cache.m5.4xlarge": 52.26,
        "cache.m5.12xlarge": 157.12,
        "cache.m5.24xlarge": 314.32,
        "cache.m4.large": 6.42,
        "cache.m4.xlarge": 14.28,
        "cache.m4.2xlarge": 29.70,
        "cache.m4.4xlarge": 60.78,
        "cache.m4.10xlarge": 154.64,
        # Memory optimized, current generation
        "cache.r7g.large": 13.07,
        "cache.r7g.xlarge": 26.32,
        "cache.r7g.2xlarge": 52.82,
        "cache.r7g.4xlarge": 105.81,
        "cache.r7g.8xlarge": 209.55,
        "cache.r7g.12xlarge": 317.77,
        "cache.r7g.16xlarge": 419.09,
        "cache.r6g.large": 13.07,
        "cache.r6g.xlarge": 26.32,
        "cache.r6g.2xlarge": 52.82,
        "cache.r6g.4xlarge": 105.81,
        "cache.r6g.8xlarge": 209.55,
        "cache.r6g.12xlarge": 317.77,
        "cache.r6g.16xlarge": 419.09,
        "cache.r5.large": 13.07,
        "cache.r5.xlarge": 26.32,
        "cache.r5.2xlarge": 52.82,
        "cache.r5.4xlarge": 105.81,
        "cache.r5.12xlarge": 317.77,
        "cache.r5.24xlarge": 635.61,
        # Previous generation, still accepted by the API
        "cache.t1.micro": 0.213,
        "cache.m1.small": 1.3,
    }
)

DEFAULT_NODE_TYPE = "cache.t4g.micro"


def memory_bytes(node_type: str) -> int | None:
    """The ``maxmemory`` for ``node_type`` in bytes, or None when we do not know the type."""
    gib = NODE_TYPES.get(node_type)
    return None if gib is None else round(gib * _GIB)


# vCPUs of each node type as AWS publishes them; memcached's worker threads (``num_threads``).
VCPUS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(("cache.t4g.micro", "cache.t4g.small", "cache.t4g.medium"), 2),
        **dict.fromkeys(("cache.t3.micro", "cache.t3.small", "cache.t3.medium"), 2),
        "cache.t2.micro": 1,
        "cache.t2.small": 1,
        "cache.t2.medium": 2,
        **{
            f"cache.{family}.{size}": vcpus
            for family in ("m7g", "m6g", "m5", "r7g", "r6g", "r5")
            for size, vcpus in (
                ("large", 2),
                ("xlarge", 4),
                ("2xlarge", 8),
                ("4xlarge", 16),
                ("8xlarge", 32),
                ("12xlarge", 48),
                ("16xlarge", 64),
                ("24xlarge", 96),
            )
            if f"cache.{family}.{size}" in NODE_TYPES
        },
        "cache.m4.large": 2,
        "cache.m4.xlarge": 4,
        "cache.m4.2xlarge": 8,
        "cache.m4.4xlarge": 16,
        "cache.m4.10xlarge": 40,
        "cache.t1.micro": 1,
        "cache.m1.small": 1,
    }
)


def vcpus(node_type: str) -> int | None:
    """The node type's vCPUs, or None when we do not know the type."""
    return VCPUS.get(node_type)
