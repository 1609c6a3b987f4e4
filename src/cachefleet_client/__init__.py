"""Application-side patterns for caches run by cachefleet (never imports the server).

Async-first, on redis-py's asyncio client: connections with failover retries, lazy loading,
write-through, invalidation, server-side sessions and leaderboards. The Flask session interface
lives in `cachefleet_client.wsgi_sessions` so that Flask stays an optional dependency.

Memcached clusters: `cachefleet_client.memcached` (the optional `memcached` extra, pymemcache)
has a cluster client with auto discovery, and `MemcachedStore`, on which `Cache` and
`SessionStore` run as on Redis (they take a `CacheConnection` or any `CacheStore`).
"""

from .cache_aside import Cache, CachedFunction, CacheStats
from .codecs import Codec, JsonCodec, MsgpackCodec
from .connection import (
    RETRYABLE_ERRORS,
    CacheConnection,
    ConnectionOptions,
    ElastiCacheClient,
    Endpoint,
    RedisClient,
    ResolvedGroup,
    RetryPolicy,
    resolve_replication_group,
)
from .invalidation import Invalidation, PostgresInvalidationListener, invalidate
from .leaderboard import DAILY, WEEKLY, Leaderboard, Standing, Window
from .sessions import Session, SessionFormat, SessionMiddleware, SessionSigner, SessionStore
from .stores import CacheStore, RedisStore, store_for
from .write_through import CacheOutcome, WriteResult, WriteThrough

__all__ = [
    "DAILY",
    "RETRYABLE_ERRORS",
    "WEEKLY",
    "Cache",
    "CacheConnection",
    "CacheOutcome",
    "CacheStats",
    "CacheStore",
    "CachedFunction",
    "Codec",
    "ConnectionOptions",
    "ElastiCacheClient",
    "Endpoint",
    "Invalidation",
    "JsonCodec",
    "Leaderboard",
    "MsgpackCodec",
    "PostgresInvalidationListener",
    "RedisClient",
    "RedisStore",
    "ResolvedGroup",
    "RetryPolicy",
    "Session",
    "SessionFormat",
    "SessionMiddleware",
    "SessionSigner",
    "SessionStore",
    "Standing",
    "Window",
    "WriteResult",
    "WriteThrough",
    "invalidate",
    "resolve_replication_group",
    "store_for",
]
