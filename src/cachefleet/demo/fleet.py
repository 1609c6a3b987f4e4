"""The demo's side of the ElastiCache API: where the server is, and the Multi-AZ group it uses.

Everything here goes through the public API with boto3, as any application would: create the
group, wait for ``available``, read each member's ``CurrentRole``, ``TestFailover``, delete.

The group is secured as a production cache would be: TLS ``required`` (verified against the
installation's CA) and RBAC, with a user group holding the app's own ACL user (a password the demo
makes, handed to the app instances through their environment) and a ``default`` user that is off,
so that a client which does not log in can do nothing (``Access``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Access", "ApiAccess", "DemoError", "ElastiCacheApi", "Group"]

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
    def create_user(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_user(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def create_user_group(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_user_group(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def describe_user_groups(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ApiAccess:
    """Where the API is and the key to sign with: handed to the app instances through their env."""

    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    ca_file: str | None = None  # the installation's CA (DIR/ca.pem): TLS groups are verified against it

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
        env = {
            "CACHEFLEET_DEMO_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.ca_file is not None:
            env[ENV_CA_FILE] = self.ca_file
        return env


ENV_CA_FILE = "CACHEFLEET_DEMO_CA_FILE"
ENV_CACHE_USER = "CACHEFLEET_DEMO_CACHE_USER"
ENV_CACHE_PASSWORD = "CACHEFLEET_DEMO_CACHE_PASSWORD"
# What the app runs: every key and channel, every command an application may have on ElastiCache.
APP_ACCESS = "on ~* &* +@all"


class Access:
    """The demo group's RBAC: the app's user, a ``default`` user that is off, their user group."""

    def __init__(self, client: ElastiCacheApi, name: str) -> None:
        self.client = client
        self.app_user = f"{name}-app"
        self.default_user = f"{name}-default"
        self.user_group = f"{name}-users"
        self.password = secrets.token_urlsafe(24)  # lives in this process and the app's environment only
        self.made: list[tuple[str, str]] = []  # (kind, id), in creation order

    def env(self) -> dict[str, str]:
        return {ENV_CACHE_USER: self.app_user, ENV_CACHE_PASSWORD: self.password}

    async def create(self) -> None:
        await asyncio.to_thread(
            self.client.create_user,
            UserId=self.app_user,
            UserName=self.app_user,
            Engine="redis",
            AccessString=APP_ACCESS,
            Passwords=[self.password],
        )
        self.made.append(("user", self.app_user))
        await asyncio.to_thread(
            self.client.create_user,
            UserId=self.default_user,
            UserName="default",
            Engine="redis",
            AccessString="off -@all",
            NoPasswordRequired=True,
        )
        self.made.append(("user", self.default_user))
        await asyncio.to_thread(
            self.client.create_user_group,
            UserGroupId=self.user_group,
            Engine="redis",
            UserIds=[self.default_user, self.app_user],
        )
        self.made.append(("user-group", self.user_group))

    async def wait(self, *, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            answer = await asyncio.to_thread(self.client.describe_user_groups, UserGroupId=self.user_group)
            if answer["UserGroups"][0]["Status"] == "active":
                return
            if time.monotonic() >= deadline:
                raise DemoError(f"user group {self.user_group} not active after {within:.0f} s")
            await asyncio.sleep(0.1)

    async def delete(self, *, within: float = 30.0) -> None:
        """The user group, then the users (once the replication group that used them is gone): the
        group's ``default`` user can go only once the group has."""
        deadline = time.monotonic() + within
        for kind, resource_id in reversed(self.made):
            if kind == "user-group":
                await asyncio.to_thread(self.client.delete_user_group, UserGroupId=resource_id)
                while await self._exists(resource_id):
                    if time.monotonic() >= deadline:
                        raise DemoError(f"user group {resource_id} still there after {within:.0f} s")
                    await asyncio.sleep(0.1)
            else:
                await asyncio.to_thread(self.client.delete_user, UserId=resource_id)

    async def _exists(self, user_group: str) -> bool:
        try:
            await asyncio.to_thread(self.client.describe_user_groups, UserGroupId=user_group)
        except Exception as exc:
            if _error_code(exc) == "UserGroupNotFound":
                return False
            raise
        return True


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

    async def create(self, user_group: str) -> None:
        await self._call(
            self.client.create_replication_group,
            ReplicationGroupId=self.group_id,
            ReplicationGroupDescription="cachefleet demo: Multi-AZ, 1 primary + 2 replicas, TLS, RBAC",
            CacheNodeType=DEMO_NODE_TYPE,
            NumCacheClusters=3,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
            TransitEncryptionEnabled=True,
            UserGroupIds=[user_group],
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
