"""Settings of one cachefleet installation, built once by the composition root and passed down."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:8787"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_PORT_RANGE = (21000, 29999)
# Per access key: calls per second, and calls at once (AWS's Throttling beyond); generous on purpose.
DEFAULT_API_RATE = 400.0
DEFAULT_API_BURST = 2000
DEFAULT_MAX_REQUEST_BYTES = 1 << 20


def default_data_dir() -> Path:
    home = os.environ.get("CACHEFLEET_HOME")
    return Path(home) if home else Path.home() / ".cachefleet"


def default_azs(region: str) -> tuple[str, ...]:
    return tuple(f"{region}{suffix}" for suffix in "abc")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    listen: str = DEFAULT_LISTEN
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT
    availability_zones: tuple[str, ...] = ()
    # Node ports are taken from this range at run time; each node keeps its port for life.
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    # The address nodes bind to and endpoints advertise.
    node_host: str = "127.0.0.1"
    # How often every resource is observed again even when nothing asked for it (seconds): a safety
    # net behind what wakes a resource at once (process exits, Sentinel events, API changes).
    resync_interval: float = 60.0
    # How many groups one set of the embedded host's shared Sentinels watches before the next set
    # starts: a Sentinel's every change costs what it watches (docs/decisions.md, "Shared Sentinels").
    # And how many groups one endpoint proxy (HAProxy) serves before the next one starts: a reload
    # costs what its proxy serves (docs/decisions.md, "The shared endpoint proxy"). 25 and 25 against
    # 50 and 50, at 200 groups: creation 0.33 s against 0.41 s, for 2.8% of a core and ~220 MiB more
    # when idle (docs/benchmarks.md, "Endpoint proxies of a bounded size").
    sentinel_set_size: int = 25
    endpoint_proxy_size: int = 25
    # Sentinel's down-after-milliseconds: failover takes about this plus 1.3 s on a 2-core host.
    sentinel_down_after_ms: int = 1000
    # Seconds a registered host may not answer before it is lost and its nodes are replaced elsewhere.
    host_lost_after: float = 30.0
    # Stand-ins for S3 (one directory per bucket): where CopySnapshot TargetBucket exports to, and
    # where SnapshotArns (arn:aws:s3:::bucket/key.rdb) are read from. Default DIR/exports, DIR/imports.
    export_dir: Path | None = None
    import_dir: Path | None = None
    # How long the certificates of nodes, endpoints and Sentinels live (renewed with a third left);
    # tests shorten it to see renewals happen.
    tls_certificate_validity: dt.timedelta = dt.timedelta(days=365)
    # Throttling per access key (api_rate 0 turns it off) and the largest request body accepted.
    api_rate: float = DEFAULT_API_RATE
    api_burst: int = DEFAULT_API_BURST
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # The audit trail (DIR/audit/audit.log): rotated past this size, this many old files kept.
    audit_max_bytes: int = 10 * 1024 * 1024
    audit_backups: int = 5
    # The IAM endpoint for Redis (HOST:PORT; port 0 picks one at start, written to server.json), and
    # how long an IAM-authenticated connection lives (12 hours, as ElastiCache; tests shorten it).
    redis_iam_listen: str = "127.0.0.1:0"
    redis_iam_connection_lifetime: dt.timedelta = dt.timedelta(hours=12)

    @property
    def snapshots_path(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def exports_path(self) -> Path:
        return self.export_dir or self.data_dir / "exports"

    @property
    def imports_path(self) -> Path:
        return self.import_dir or self.data_dir / "imports"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys"

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit"

    @property
    def azs(self) -> tuple[str, ...]:
        return self.availability_zones or default_azs(self.region)

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def redis_iam_host(self) -> str:
        return self.redis_iam_listen.rsplit(":", 1)[0]

    @property
    def redis_iam_port(self) -> int:
        return int(self.redis_iam_listen.rsplit(":", 1)[1])
