"""Application-side patterns for caches run by cachefleet (never imports the server).

Async-first, on redis-py's asyncio client: connections with failover retries, lazy loading,
write-through, invalidation, server-side sessions and leaderboards. The Flask session interface
lives in `cachefleet_client.wsgi_sessions` so that Flask stays an optional dependency.
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
from .write_through import CacheOutcome, WriteResult, WriteThrough

__all__ = [
    "DAILY",
    "RETRYABLE_ERRORS",
    "WEEKLY",
    "Cache",
    "CacheConnection",
    "CacheOutcome",
    "CacheStats",
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
]
