"""TLS in transit: the installation's CA and the certificates it issues (``certs`` pure, ``files`` on disk)."""
