"""Application-side patterns for caches run by cachefleet (never imports the server)."""
