"""The cache parameter catalogue: every parameter of each family, its default, type, range and effect.

Pure data and pure checks. The API describes and validates parameters from here; the engines turn
effective values into ``redis.conf`` directives or memcached flags; the reconciler compares what
nodes run with what their parameter group wants.

Families: ``redis7`` (Redis 7.0/7.1; ``valkey7`` and ``valkey8`` share its parameters) and
``memcached1.6``. Default groups, read-only: ``default.<family>`` and, for the Redis-like families,
``default.<family>.cluster.on`` (the same parameters with ``cluster-enabled=yes``).

Where cachefleet differs from ElastiCache, on purpose:

* ``appendonly`` and ``appendfsync`` are **modifiable** (ElastiCache pins them to ``no``/``everysec``):
  a group with ``appendonly yes`` + ``appendfsync always`` makes every acknowledged write survive a
  ``kill -9`` of the node, because Redis fsyncs the AOF before it replies.
* ``reserved-memory-percent`` defaults to ``0``: ``maxmemory`` is the node type's whole memory
  (``engines/nodetypes.py`` reserves nothing); raise it to leave headroom, as on ElastiCache (25).
* ``activedefrag`` is not modifiable: Debian's Redis is built without the jemalloc that it needs.
* ``databases`` is modifiable (``requires-reboot``); ``rename-commands``, ``close-on-replica-write``
  and ``cluster-enabled`` are not (the endpoint already cuts sessions of a demoted primary).
* Memcached values are memcached 1.6's own defaults (what the process really runs), e.g.
  ``max_simultaneous_connections`` 4096 and ``memcached_connections_overhead`` 0.
* ``slab_automove`` and ``lru_crawler`` are ``immediate``: memcached changes them on a running node
  (``slabs automove``, ``lru_crawler enable|disable``); the other memcached parameters are start-up
  flags and wait for a reboot. ``binding_protocol`` also takes ``binary``, which with an AuthToken
  means SASL (docs/memcached.md).

The write-safety knob (ElastiCache's own parameter names): ``min-replicas-to-write`` (default 0, off)
and ``min-replicas-max-lag`` (seconds, default 10). With ``min-replicas-to-write 1`` a primary
refuses writes (``NOREPLICAS Not enough good replicas to write.``) while fewer than one replica has
acknowledged replication within ``min-replicas-max-lag`` seconds, instead of acknowledging writes
that no replica holds: once every replica is dead (its connection drops) the primary refuses writes
at once; once they merely go silent (a partition), after ``min-replicas-max-lag`` seconds. It
narrows, but does not close, the window in which a failover or a partition loses acknowledged
writes; only clients that ``WAIT`` for replicas are safe across a partition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cachefleet.model.errors import InvalidParameterValue

IMMEDIATE = "immediate"
REQUIRES_REBOOT = "requires-reboot"

USER = "user"
SYSTEM = "system"
ENGINE_DEFAULT = "engine-default"
SOURCES = (USER, SYSTEM, ENGINE_DEFAULT)

IN_SYNC = "in-sync"
APPLYING = "applying"
PENDING_REBOOT = "pending-reboot"

DEFAULT_PREFIX = "default."
CLUSTER_ON_SUFFIX = ".cluster.on"
MAX_MODIFY = 20  # ParameterNameValues per ModifyCacheParameterGroup call, as AWS allows


@dataclass(frozen=True)
class ParameterDef:
    name: str
    default: str  # "" for an empty value (ParameterValue is then omitted on the wire)
    data_type: str  # string | integer | boolean | float
    allowed: str  # AllowedValues as AWS writes them: "yes,no", "0-", "1-75", "0,20-", "-" (any)
    description: str
    modifiable: bool = True
    change_type: str = IMMEDIATE
    minimum_engine_version: str = "2.8.6"
    node_type_specific: bool = False  # values per node type (CacheNodeTypeSpecificParameters)


def _p(
    name: str,
    default: str,
    data_type: str,
    allowed: str,
    description: str,
    *,
    modifiable: bool = True,
    change: str = IMMEDIATE,
    since: str = "2.8.6",
    node_type_specific: bool = False,
) -> ParameterDef:
    return ParameterDef(name, default, data_type, allowed, description, modifiable, change, since, node_type_specific)


_YES_NO = "yes,no"
_EVICTION = "volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,noeviction"
# Redis 7.0's keyspace notification classes; "A" stands for g$lshzxetd.
KEYSPACE_FLAGS = "KEg$lshzxeAtmnd"

REDIS7: tuple[ParameterDef, ...] = (
    # Memory
    _p("maxmemory", "", "integer", "0-", "The node type's memory in bytes.", modifiable=False, node_type_specific=True,
       change=REQUIRES_REBOOT),
    _p("maxmemory-policy", "volatile-lru", "string", _EVICTION, "Which keys are evicted when maxmemory is reached."),
    _p("maxmemory-samples", "3", "integer", "1-", "Keys sampled by the approximated LRU, LFU and TTL policies."),
    _p("reserved-memory-percent", "0", "integer", "0-100",
       "Percent of the node's memory kept out of maxmemory for non-data use (cachefleet default 0).", since="3.2.4"),
    _p("reserved-memory", "0", "integer", "0-",
       "Legacy fixed reservation in bytes; use reserved-memory-percent.", modifiable=False),
    # Persistence
    _p("appendonly", "no", "string", _YES_NO,
       "Append-only file persistence (modifiable in cachefleet; ElastiCache pins it to no)."),
    _p("appendfsync", "everysec", "string", "always,everysec,no",
       "When the AOF is fsynced: always (before each reply), everysec, or no (left to the kernel)."),
    # Clients
    _p("timeout", "0", "integer", "0,20-", "Close a client connection idle this many seconds (0: never)."),
    _p("tcp-keepalive", "300", "integer", "0-", "TCP keepalive interval of client connections in seconds."),
    _p("maxclients", "65000", "integer", "1-65000", "Maximum simultaneous clients (bounded by the open file limit).",
       modifiable=False, change=REQUIRES_REBOOT),
    _p("client-query-buffer-limit", "1073741824", "integer", "1048576-1073741824",
       "Maximum size of one client's query buffer in bytes.", since="4.0.10"),
    _p("proto-max-bulk-len", "536870912", "integer", "1048576-536870912",
       "Maximum size of one bulk request element in bytes.", since="4.0.10"),
    _p("client-output-buffer-limit-normal-hard-limit", "0", "integer", "0-",
       "Normal clients: output buffer size (bytes) at which the client is disconnected (0: no limit)."),
    _p("client-output-buffer-limit-normal-soft-limit", "0", "integer", "0-",
       "Normal clients: output buffer size (bytes) that disconnects after soft-seconds."),
    _p("client-output-buffer-limit-normal-soft-seconds", "0", "integer", "0-",
       "Normal clients: seconds above the soft limit before disconnection."),
    _p("client-output-buffer-limit-pubsub-hard-limit", "33554432", "integer", "0-",
       "Pub/Sub clients: output buffer size (bytes) at which the client is disconnected."),
    _p("client-output-buffer-limit-pubsub-soft-limit", "8388608", "integer", "0-",
       "Pub/Sub clients: output buffer size (bytes) that disconnects after soft-seconds."),
    _p("client-output-buffer-limit-pubsub-soft-seconds", "60", "integer", "0-",
       "Pub/Sub clients: seconds above the soft limit before disconnection."),
    _p("client-output-buffer-limit-replica-hard-limit", "268435456", "integer", "0-",
       "Replicas: output buffer hard limit in bytes.", modifiable=False),
    _p("client-output-buffer-limit-replica-soft-limit", "67108864", "integer", "0-",
       "Replicas: output buffer soft limit in bytes.", modifiable=False),
    _p("client-output-buffer-limit-replica-soft-seconds", "60", "integer", "0-",
       "Replicas: seconds above the soft limit before disconnection.", modifiable=False),
    _p("notify-keyspace-events", "", "string", "K,E,g,$,l,s,h,z,x,e,A,t,m,n,d",
       "Keyspace notifications to publish: any combination of the letters (empty: none)."),
    _p("acl-pubsub-default", "allchannels", "string", "resetchannels,allchannels",
       "Default Pub/Sub channel permissions of new ACL users.", since="6.2.0"),
    _p("acllog-max-len", "128", "integer", "1-10000", "Entries kept in the ACL log.", since="6.0.0"),
    _p("tracking-table-max-keys", "1000000", "integer", "1-100000000",
       "Keys tracked for client-side caching.", since="6.0.0"),
    # Replication
    _p("repl-backlog-size", "1048576", "integer", "16384-", "Replication backlog size in bytes."),
    _p("repl-backlog-ttl", "3600", "integer", "0-", "Seconds the backlog is kept after the last replica left."),
    _p("repl-timeout", "60", "integer", "30-3600", "Replication timeout in seconds.", modifiable=False),
    _p("min-replicas-to-write", "0", "integer", "0-",
       "Refuse writes (NOREPLICAS) unless this many replicas lag less than min-replicas-max-lag (0: off)."),
    _p("min-replicas-max-lag", "10", "integer", "0-",
       "Seconds within which a replica must have acknowledged to count for min-replicas-to-write."),
    _p("replica-allow-chaining", "no", "string", _YES_NO, "Replicas of replicas.", modifiable=False),
    _p("replica-ignore-maxmemory", "yes", "string", _YES_NO, "Replicas ignore maxmemory.",
       modifiable=False, since="5.0.0"),
    _p("replica-lazy-flush", "no", "string", _YES_NO, "Replicas flush asynchronously on full sync.",
       modifiable=False, since="4.0.10"),
    _p("close-on-replica-write", "yes", "string", _YES_NO,
       "Clients that write to a demoted primary are disconnected (the endpoint cuts their sessions).",
       modifiable=False, since="3.2.6"),
    # Cluster
    _p("cluster-enabled", "no", "string", _YES_NO, "Cluster mode (sharding).", modifiable=False,
       change=REQUIRES_REBOOT, since="3.2.4"),
    _p("cluster-require-full-coverage", "no", "string", _YES_NO,
       "A cluster stops serving when a slot is uncovered.", since="3.2.4"),
    _p("cluster-allow-reads-when-down", "no", "string", _YES_NO,
       "Reads are served while the cluster is down.", since="6.0.0"),
    _p("cluster-allow-pubsubshard-when-down", "yes", "string", _YES_NO,
       "Sharded Pub/Sub is served while the cluster is down.", since="7.0.0"),
    _p("cluster-preferred-endpoint-type", "ip", "string", "ip,tls-dynamic",
       "Endpoint type announced to cluster clients.", modifiable=False, since="7.0.0"),
    # Engine
    _p("databases", "16", "integer", "1-1200000", "Number of logical databases.", change=REQUIRES_REBOOT),
    _p("activerehashing", "yes", "string", _YES_NO, "Incremental rehashing of the main dictionary.",
       modifiable=False, change=REQUIRES_REBOOT),
    _p("lua-time-limit", "5000", "integer", "5000", "Milliseconds before a busy script may be killed.",
       modifiable=False),
    _p("rename-commands", "", "string", "-",
       "Renamed commands (not supported by cachefleet: ACLs already restrict admin commands).",
       modifiable=False, since="6.2.0"),
    _p("slowlog-log-slower-than", "10000", "integer", "-",
       "Microseconds above which a command is logged in the slow log (negative: never)."),
    _p("slowlog-max-len", "128", "integer", "0-", "Entries kept in the slow log."),
    _p("latency-tracking", "no", "string", _YES_NO, "Per-command latency tracking.", since="7.0.0"),
    _p("lazyfree-lazy-eviction", "no", "string", _YES_NO, "Free evicted keys asynchronously.", since="4.0.10"),
    _p("lazyfree-lazy-expire", "no", "string", _YES_NO, "Free expired keys asynchronously.", since="4.0.10"),
    _p("lazyfree-lazy-server-del", "no", "string", _YES_NO,
       "Free overwritten keys asynchronously.", since="4.0.10"),
    _p("lazyfree-lazy-user-del", "no", "string", _YES_NO, "DEL behaves like UNLINK.", since="6.0.0"),
    _p("lfu-log-factor", "10", "integer", "1-", "LFU counter logarithm factor.", since="4.0.10"),
    _p("lfu-decay-time", "1", "integer", "0-", "Minutes after which an LFU counter decays.", since="4.0.10"),
    _p("activedefrag", "no", "string", _YES_NO,
       "Active defragmentation (needs a Redis built with its own jemalloc; Debian's is not).",
       modifiable=False, since="4.0.9"),
    _p("active-defrag-ignore-bytes", "104857600", "integer", "1048576-",
       "Fragmentation waste in bytes below which defragmentation does not start.", since="4.0.9"),
    _p("active-defrag-threshold-lower", "10", "integer", "1-100",
       "Fragmentation percent at which defragmentation starts.", since="4.0.9"),
    _p("active-defrag-threshold-upper", "100", "integer", "1-100",
       "Fragmentation percent at which defragmentation runs at full effort.", since="4.0.9"),
    _p("active-defrag-cycle-min", "5", "integer", "1-75", "Minimal CPU percent spent defragmenting.",
       since="4.0.9"),
    _p("active-defrag-cycle-max", "75", "integer", "1-75", "Maximal CPU percent spent defragmenting.",
       since="4.0.9"),
    _p("active-defrag-max-scan-fields", "1000", "integer", "1-1000000",
       "Fields of a big collection processed per defragmentation step.", since="5.0.0"),
    _p("active-expire-effort", "1", "integer", "1-10", "Effort of the active expiry cycle.", since="6.0.0"),
    _p("hash-max-listpack-entries", "512", "integer", "0-", "Hashes up to this many fields use a listpack.",
       since="7.0.0"),
    _p("hash-max-listpack-value", "64", "integer", "0-", "Hashes with values up to this size use a listpack.",
       since="7.0.0"),
    _p("zset-max-listpack-entries", "128", "integer", "0-",
       "Sorted sets up to this many members use a listpack.", since="7.0.0"),
    _p("zset-max-listpack-value", "64", "integer", "0-",
       "Sorted sets with members up to this size use a listpack.", since="7.0.0"),
    _p("set-max-intset-entries", "512", "integer", "0-", "Integer sets up to this size use an intset."),
    _p("list-compress-depth", "0", "integer", "0-", "List nodes left uncompressed at each end (0: none)."),
    _p("hll-sparse-max-bytes", "3000", "integer", "1-16000", "HyperLogLog sparse representation limit in bytes."),
    _p("stream-node-max-bytes", "4096", "integer", "0-", "Maximum bytes of a stream node.", since="5.0.0"),
    _p("stream-node-max-entries", "100", "integer", "0-", "Maximum entries of a stream node.", since="5.0.0"),
)

_BOOL01 = "0,1"

MEMCACHED16: tuple[ParameterDef, ...] = (
    _p("max_cache_memory", "", "integer", "0-", "Item memory of the node type in megabytes.", modifiable=False,
       node_type_specific=True, change=REQUIRES_REBOOT, since="1.4.5"),
    _p("max_item_size", "1048576", "integer", "1048576-104857600", "Largest item in bytes (-I).",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("chunk_size", "48", "integer", "1-1000", "Minimum space per item for key, value and flags (-n).",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("chunk_size_growth_factor", "1.25", "float", "1.01-2", "Growth factor of slab chunk sizes (-f).",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("cas_disabled", "0", "boolean", _BOOL01, "1 disables compare-and-swap (-C).",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("error_on_memory_exhausted", "0", "boolean", _BOOL01, "1 returns an error instead of evicting (-M).",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("binding_protocol", "auto", "string", "auto,ascii,binary",
       "Protocols accepted (-B); with an AuthToken, binary means SASL, anything else ASCII authentication.",
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("disable_flush_all", "0", "boolean", _BOOL01, "1 disables flush_all (-F).",
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("idle_timeout", "0", "integer", "0-86400", "Seconds before an idle connection is closed (0: never).",
       change=REQUIRES_REBOOT, since="1.4.33"),
    _p("hash_algorithm", "murmur3", "string", "jenkins,murmur3", "Hash table algorithm.",
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("lru_crawler", "1", "boolean", _BOOL01, "Background LRU crawler (changed live: lru_crawler enable|disable).",
       change=IMMEDIATE, since="1.4.24"),
    _p("lru_maintainer", "1", "boolean", _BOOL01, "Segmented LRU and its background thread.",
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("maxconns_fast", "1", "boolean", _BOOL01, "Close new connections at once when over the limit.",
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("slab_reassign", "1", "boolean", _BOOL01, "Slab pages may move between classes.",
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("slab_automove", "1", "integer", "0-2",
       "How aggressively slab pages are moved (0: never; changed live: slabs automove).",
       change=IMMEDIATE, since="1.4.24"),
    _p("track_sizes", "0", "boolean", _BOOL01, "Reports for 'stats sizes'.", change=REQUIRES_REBOOT, since="1.4.33"),
    _p("max_simultaneous_connections", "4096", "integer", "1-65000",
       "Maximum simultaneous connections (-c; sized to the usual open file limit).", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("memcached_connections_overhead", "0", "integer", "0-",
       "Megabytes of the node kept out of item memory (cachefleet reserves none).", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("num_threads", "4", "integer", "1-", "Worker threads (-t).", modifiable=False, change=REQUIRES_REBOOT,
       since="1.4.5"),
    _p("backlog_queue_limit", "1024", "integer", "1-10000", "Listen backlog (-b).", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("requests_per_event", "20", "integer", "1-1000", "Requests per connection per event (-R).",
       modifiable=False, change=REQUIRES_REBOOT, since="1.4.5"),
    _p("large_memory_pages", "0", "boolean", _BOOL01, "Large memory pages (-L).", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("lock_down_paged_memory", "0", "boolean", _BOOL01, "Lock paged memory (-k).", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.5"),
    _p("maximize_core_file_limit", "0", "boolean", _BOOL01, "Maximize the core file limit (-r).",
       modifiable=False, change=REQUIRES_REBOOT, since="1.4.5"),
    _p("hashpower_init", "16", "integer", "16", "Initial hash table power.", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.24"),
    _p("slab_chunk_max", "524288", "integer", "524288", "Largest slab chunk in bytes.", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.33"),
    _p("watcher_logbuf_size", "256", "integer", "256", "Per-watcher log buffer in kilobytes.", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.33"),
    _p("worker_logbuf_size", "64", "integer", "64", "Per-worker log buffer in kilobytes.", modifiable=False,
       change=REQUIRES_REBOOT, since="1.4.33"),
    _p("config_max", "16", "integer", "16", "Auto discovery configuration entries.", modifiable=False,
       since="1.4.5"),
    _p("config_size_max", "65536", "integer", "65536", "Auto discovery configuration size in bytes.",
       modifiable=False, since="1.4.5"),
    _p("no_modern", "0", "boolean", _BOOL01, "Pre-1.5 defaults (memcached 1.6 runs modern ones).",
       modifiable=False, change=REQUIRES_REBOOT, since="1.5.0"),
    _p("inline_ascii_resp", "0", "boolean", _BOOL01, "Inline ASCII responses (gone in memcached 1.6).",
       modifiable=False, change=REQUIRES_REBOOT, since="1.5.0"),
)

FAMILIES: Mapping[str, tuple[ParameterDef, ...]] = MappingProxyType(
    {"redis7": REDIS7, "valkey7": REDIS7, "valkey8": REDIS7, "memcached1.6": MEMCACHED16}
)
_INDEX: Mapping[str, Mapping[str, ParameterDef]] = MappingProxyType(
    {family: MappingProxyType({d.name: d for d in defs}) for family, defs in FAMILIES.items()}
)


def family_for(engine: str, version: str) -> str:
    """The parameter group family of an engine version: ``redis7``, ``valkey8``, ``memcached1.6``."""
    major, _, rest = version.partition(".")
    if engine == "memcached":
        return f"memcached{major}.{rest.partition('.')[0]}"
    return f"{engine}{major}"


def is_redis_family(family: str) -> bool:
    return not family.startswith("memcached")


def definitions(family: str) -> Mapping[str, ParameterDef]:
    """Every parameter of ``family`` by name; empty for a family we do not know."""
    return _INDEX.get(family, MappingProxyType({}))


def defaults(family: str) -> dict[str, str]:
    return {d.name: d.default for d in FAMILIES.get(family, ())}


def default_group_name(family: str, *, cluster_on: bool = False) -> str:
    return f"{DEFAULT_PREFIX}{family}{CLUSTER_ON_SUFFIX if cluster_on else ''}"


def default_groups() -> dict[str, tuple[str, dict[str, str]]]:
    """The read-only default groups: name -> (family, values that differ from the family's defaults)."""
    groups: dict[str, tuple[str, dict[str, str]]] = {}
    for family in FAMILIES:
        groups[default_group_name(family)] = (family, {})
        if is_redis_family(family):
            groups[default_group_name(family, cluster_on=True)] = (family, {"cluster-enabled": "yes"})
    return groups


def is_default_group(name: str) -> bool:
    return name in default_groups()


def effective(family: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """Family defaults with a group's values laid over them."""
    values = defaults(family)
    values.update({k: v for k, v in overrides.items() if k in values})
    return values


def reboot_parameters(family: str) -> frozenset[str]:
    return frozenset(d.name for d in FAMILIES.get(family, ()) if d.change_type == REQUIRES_REBOOT)


# -- validation --------------------------------------------------------------------------------

_INTEGER = re.compile(r"-?\d+")
_FLOAT = re.compile(r"\d+(\.\d+)?")
_RANGE = re.compile(r"(-?\d+(?:\.\d+)?)-(-?\d+(?:\.\d+)?)?")


def check_value(definition: ParameterDef, value: str) -> str:
    """``value`` in its canonical text, or ``InvalidParameterValue`` if the parameter does not allow it."""
    check = _CUSTOM.get(definition.name)
    if check is not None:
        if not check(value):
            raise _invalid(definition, value)
        return value
    if definition.data_type == "integer":
        if not _INTEGER.fullmatch(value):
            raise _invalid(definition, value)
        canonical = str(int(value))
        if not _within(definition.allowed, int(value)):
            raise _invalid(definition, value)
        return canonical
    if definition.data_type == "float":
        if not _FLOAT.fullmatch(value) or not _within(definition.allowed, float(value)):
            raise _invalid(definition, value)
        return value
    if definition.allowed in ("", "-"):
        return value
    if value not in definition.allowed.split(","):
        raise _invalid(definition, value)
    return value


def _within(allowed: str, number: float) -> bool:
    if allowed in ("", "-"):
        return True
    for alternative in allowed.split(","):
        if match := _RANGE.fullmatch(alternative):
            low, high = float(match.group(1)), match.group(2)
            if number >= low and (high is None or number <= float(high)):
                return True
        elif alternative and float(alternative) == number:
            return True
    return False


def _keyspace_flags(value: str) -> bool:
    return all(c in KEYSPACE_FLAGS for c in value) and len(set(value)) == len(value)


_CUSTOM: Mapping[str, Callable[[str], bool]] = MappingProxyType({"notify-keyspace-events": _keyspace_flags})


def _invalid(definition: ParameterDef, value: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Invalid value '{value}' for parameter {definition.name}: allowed values are {definition.allowed}."
    )


def check_change(family: str, name: str, value: str) -> tuple[str, str]:
    """A (name, canonical value) the user may set in a group of ``family``; InvalidParameterValue if not."""
    definition = definitions(family).get(name)
    if definition is None:
        raise InvalidParameterValue(f"Unknown parameter {name} for parameter group family {family}.")
    if not definition.modifiable:
        raise InvalidParameterValue(f"The parameter {name} is not modifiable.")
    return name, check_value(definition, value)
