"""``cachefleet agent``: a host's own supervisor of engine processes, commanded by the control plane
over HTTPS with mutual TLS (docs/architecture.md, "Host agents")."""
