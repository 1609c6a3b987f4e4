"""How the CLI finds a cachefleet server and builds a boto3 ElastiCache client for it.

The server writes ``DIR/server.json`` (where it listens, which region) and ``DIR/credentials`` (an AWS
shared-credentials INI) on first start; flags override either. The CLI speaks only the public API,
exactly as boto3 or the AWS CLI would, so it needs no server internals.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cachefleet.cli.errors import AdminRefused, ServerNotFound
from cachefleet.settings import DEFAULT_REGION, default_data_dir

DEFAULT_PROFILE = "cachefleet"


class ElastiCache(Protocol):
    """The part of boto3's ElastiCache client the CLI uses; tests hand in a stub with these methods."""

    def describe_replication_groups(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_replication_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def modify_replication_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_replication_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def test_failover(self, **kwargs: Any) -> dict[str, Any]: ...
    def increase_replica_count(self, **kwargs: Any) -> dict[str, Any]: ...
    def decrease_replica_count(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_cache_clusters(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_cache_cluster(self, **kwargs: Any) -> dict[str, Any]: ...
    def modify_cache_cluster(self, **kwargs: Any) -> dict[str, Any]: ...
    def reboot_cache_cluster(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_cache_cluster(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_snapshots(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_snapshot(self, **kwargs: Any) -> dict[str, Any]: ...
    def copy_snapshot(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_snapshot(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_cache_parameter_groups(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_cache_parameters(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def modify_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def reset_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_cache_parameter_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_events(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_cache_engine_versions(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_cache_subnet_groups(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_cache_subnet_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def modify_cache_subnet_group(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_cache_subnet_group(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ConnectionOptions:
    """What the user said on the command line; ``None`` means "read it from the data dir"."""

    data_dir: Path | None = None
    endpoint_url: str | None = None
    profile: str = DEFAULT_PROFILE
    region: str | None = None


@dataclass(frozen=True)
class Endpoint:
    url: str
    region: str
    access_key_id: str
    secret_access_key: str
    redis_iam_endpoint: str | None = None  # HOST:PORT of the IAM endpoint for Redis, as server.json says


def resolve(options: ConnectionOptions) -> Endpoint:
    data_dir = options.data_dir or default_data_dir()
    server = _read_server_json(data_dir / "server.json")
    url = options.endpoint_url or server.get("endpoint_url")
    if not url:
        raise ServerNotFound(f"No cachefleet server found at {data_dir}: start it with ./run.sh")
    region = options.region or server.get("region") or DEFAULT_REGION
    access_key, secret_key = _read_credentials(data_dir / "credentials", options.profile)
    return Endpoint(
        url=url,
        region=region,
        access_key_id=access_key,
        secret_access_key=secret_key,
        redis_iam_endpoint=server.get("redis_iam_endpoint"),
    )


def make_client(options: ConnectionOptions) -> ElastiCache:
    """The real client factory: a boto3 client signed with the installation's own admin key."""
    # Imported here so that `cachefleet --help` and the unit tests do not pay for boto3's start-up.
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    endpoint = resolve(options)
    session = boto3.session.Session(
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        region_name=endpoint.region,
    )
    # The server is local: a refused connection should fail at once, not after botocore's backoff.
    config = Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1})
    client: ElastiCache = session.client("elasticache", endpoint_url=endpoint.url, config=config)
    return client


class Admin(Protocol):
    """The installation's admin API (hosts): JSON in and out; tests hand in a stub."""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...




@dataclass(frozen=True)
class AdminClient:
    """Calls ``/admin/v1/...`` signed with SigV4 (service ``cachefleet``), as the server checks it."""

    endpoint: Endpoint
    timeout: float = 30.0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # Imported here so that `cachefleet --help` does not pay for botocore's start-up.
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        from botocore.auth import SigV4Auth  # noqa: PLC0415
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415
        from botocore.credentials import Credentials  # noqa: PLC0415

        url = self.endpoint.url.rstrip("/") + "/admin/v1/" + path.lstrip("/")
        data = json.dumps(body).encode() if body is not None else b""
        signed = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        credentials = Credentials(self.endpoint.access_key_id, self.endpoint.secret_access_key)
        SigV4Auth(credentials, ADMIN_SERVICE, self.endpoint.region).add_auth(signed)
        request = urllib.request.Request(url, data=data or None, headers=dict(signed.headers.items()), method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise AdminRefused(str(exc.code), exc.reason) from None
            raise AdminRefused(str(error.get("code", exc.code)), str(error.get("message", ""))) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerNotFound(f"No cachefleet server answers at {self.endpoint.url}: {exc}") from exc
        return dict(answer)


ADMIN_SERVICE = "cachefleet"


def make_admin(options: ConnectionOptions) -> Admin:
    return AdminClient(resolve(options))


def _read_server_json(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ServerNotFound(f"Cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ServerNotFound(f"Cannot read {path}: expected a JSON object")
    return {key: value for key, value in raw.items() if isinstance(value, str)}


def _read_credentials(path: Path, profile: str) -> tuple[str, str]:
    # Read with configparser and pass the keys explicitly: no AWS_* environment to mutate, and the
    # user's own ~/.aws files are never consulted by accident.
    parser = configparser.ConfigParser()
    try:
        read = parser.read(path)
    except configparser.Error as exc:
        raise ServerNotFound(f"Cannot read {path}: {exc}") from exc
    if not read:
        raise ServerNotFound(f"No credentials at {path}: start the server once with ./run.sh")
    if not parser.has_section(profile):
        raise ServerNotFound(f"No profile [{profile}] in {path}")
    section = parser[profile]
    try:
        return section["aws_access_key_id"], section["aws_secret_access_key"]
    except KeyError as exc:
        raise ServerNotFound(f"Profile [{profile}] in {path} lacks {exc.args[0]}") from exc


def collect(call: Callable[..., dict[str, Any]], key: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a Describe call, following its ``Marker``, as one list."""
    items: list[dict[str, Any]] = []
    marker: str | None = None
    while True:
        page = call(**params, Marker=marker) if marker else call(**params)
        items.extend(page.get(key) or [])
        marker = page.get("Marker")
        if not marker:
            return items
