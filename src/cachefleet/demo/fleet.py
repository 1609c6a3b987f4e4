"""The demo's side of the ElastiCache API: where the server is, and the Multi-AZ group it uses.

Everything here goes through the public API with boto3, as any application would: create the
group, wait for ``available``, read each member's ``CurrentRole``, ``TestFailover``, delete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ApiAccess", "DemoError", "ElastiCacheApi", "Group"]

NOT_FOUND = "ReplicationGroupNotFoundFault"
DEMO_NODE_TYPE = "cache.t4g.micro"  # ElastiCache has no default node type; the smallest is plenty here
BUSY = "InvalidReplicationGroupState"  # e.g. still creating: DeleteReplicationGroup must wait


class DemoError(RuntimeError):
    """The demo could not go on (a process did not start, the group did not become available...)."""


class ElastiCacheApi(Protocol):
    """The boto3 ElastiCache client methods the demo calls (so tests may pass a stub)."""

    def describe_replication_groups(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def create_replication_group(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_replication_group(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def test_failover(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ApiAccess:
    """Where the API is and the key to sign with: handed to the app instances through their env."""

    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str

    def client(self) -> ElastiCacheApi:
        import boto3  # noqa: PLC0415  # slow to import; only needed once the demo really runs
        from botocore.config import Config  # noqa: PLC0415

        # One attempt per call: the server is local, a failure should show rather than hide.
        config = Config(connect_timeout=5, read_timeout=60, retries={"total_max_attempts": 1})
        client: ElastiCacheApi = boto3.client(
            "elasticache",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=config,
        )
        return client

    def env(self) -> dict[str, str]:
        return {
            "CACHEFLEET_DEMO_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code"))
    return None


class Group:
    """A Multi-AZ replication group (1 primary + 2 replicas, automatic failover) made for the demo."""

    def __init__(self, client: ElastiCacheApi, group_id: str) -> None:
        self.client = client
        self.group_id = group_id
        self.created = False

    async def _call(self, method: Callable[..., Mapping[str, Any]], **params: Any) -> Mapping[str, Any]:
        return await asyncio.to_thread(method, **params)

    async def create(self) -> None:
        await self._call(
            self.client.create_replication_group,
            ReplicationGroupId=self.group_id,
            ReplicationGroupDescription="cachefleet demo: Multi-AZ, 1 primary + 2 replicas",
            CacheNodeType=DEMO_NODE_TYPE,
            NumCacheClusters=3,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
        )
        self.created = True

    async def describe(self) -> Mapping[str, Any] | None:
        try:
            answer = await self._call(self.client.describe_replication_groups, ReplicationGroupId=self.group_id)
        except Exception as exc:
            if _error_code(exc) == NOT_FOUND:
                return None
            raise
        groups = answer.get("ReplicationGroups") or []
        return groups[0] if groups else None

    async def status(self) -> str | None:
        group = await self.describe()
        return None if group is None else str(group.get("Status"))

    async def wait(self, target: str | None, *, within: float, show: Callable[[str | None], None]) -> None:
        """Poll until Status is `target` (None: until the group is gone)."""
        deadline = time.monotonic() + within
        while True:
            status = await self.status()
            show(status)
            if status == target:
                return
            if status is None:
                raise DemoError(f"replication group {self.group_id} disappeared while waiting for {target}")
            if status == "create-failed":
                raise DemoError(f"replication group {self.group_id} is {status}")
            if time.monotonic() >= deadline:
                raise DemoError(f"replication group {self.group_id} still {status} after {within:.0f} s")
            await asyncio.sleep(0.25)

    async def roles(self) -> dict[str, str]:
        """CacheClusterId -> CurrentRole ("primary" / "replica") from DescribeReplicationGroups."""
        group = await self.describe()
        if group is None:
            return {}
        members = (group.get("NodeGroups") or [{}])[0].get("NodeGroupMembers") or []
        return {str(m["CacheClusterId"]): str(m.get("CurrentRole", "")) for m in members}

    async def primary(self) -> str | None:
        return next((member for member, role in (await self.roles()).items() if role == "primary"), None)

    async def test_failover(self) -> None:
        await self._call(self.client.test_failover, ReplicationGroupId=self.group_id, NodeGroupId="0001")

    async def wait_for_new_primary(self, old: str | None, *, within: float) -> str | None:
        """The primary once Describe names one other than `old`; after `within` seconds, whatever it names."""
        deadline = time.monotonic() + within
        while True:
            current = await self.primary()
            if (current is not None and current != old) or time.monotonic() >= deadline:
                return current
            await asyncio.sleep(0.25)

    async def delete(self, *, within: float, show: Callable[[str | None], None]) -> None:
        """Delete and wait until gone; a group still ``creating`` (Ctrl-C early on) is waited for first."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self._call(self.client.delete_replication_group, ReplicationGroupId=self.group_id)
                break
            except Exception as exc:
                code = _error_code(exc)
                if code == NOT_FOUND:
                    return
                if code != BUSY or time.monotonic() >= deadline:
                    raise
            show(await self.status())
            await asyncio.sleep(0.25)
        await self.wait(None, within=max(1.0, deadline - time.monotonic()), show=show)
