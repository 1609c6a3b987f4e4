"""cachefleet: a self-hosted Amazon ElastiCache."""

__version__ = "0.1.0"
