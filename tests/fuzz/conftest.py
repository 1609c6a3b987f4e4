"""Fuzz settings and the shared in-process server.

Two hypothesis profiles: ``ci`` (the default: a fixed, derandomized budget of 150 examples per
test that runs in seconds with every ``./test.sh``) and ``long`` (``scripts/fuzz.sh``: many more
examples, ``$CACHEFLEET_FUZZ_EXAMPLES``, with random seeds).
The counts of what was tried go to ``$CACHEFLEET_FUZZ_REPORT`` (JSON) when it is set, for
docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings

from cachefleet.store.records import CLUSTER, GROUP, PARAMETER_GROUP, SNAPSHOT
from tests.fuzz.targets import ELASTICACHE
from tests.support.inprocess import NODE_TYPE, InProcessApi

_COMMON: dict[str, Any] = {
    "deadline": None,  # no timed assertions; hangs are pytest-timeout's and the long run's to report
    "database": None,  # nothing written under the work tree
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("CACHEFLEET_FUZZ_EXAMPLES", "5000")), **_COMMON)
settings.load_profile(os.environ.get("CACHEFLEET_FUZZ_PROFILE", "ci"))

_READ_POLICY = (
    '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "elasticache:Describe*", "Resource": "*"}}'
)
_FUZZER_POLICY = (
    '{"Version": "2012-10-17", "Statement": ['
    '{"Effect": "Allow", "Action": "*", "Resource": "*"},'
    '{"Effect": "Deny", "Action": "iam:*", "Resource": "arn:aws:iam::*:user/fuzzer"}]}'
)

FIGURES: Counter[str] = Counter()
SECONDS: list[float] = []  # of every request into the app


def record(kind: str, status: int | None, seconds: float) -> None:
    """Count one request (or verifier call) and its outcome, for the long run's figures."""
    FIGURES[f"{kind}.tried"] += 1
    if status is not None and status >= 500:
        FIGURES[f"{kind}.5xx"] += 1
    if kind == "http":
        SECONDS.append(seconds)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("CACHEFLEET_FUZZ_REPORT")
    if target and FIGURES:
        figures: dict[str, Any] = {**dict(FIGURES), "exit": int(exitstatus)}
        if SECONDS:
            ordered = sorted(SECONDS)
            figures["request_seconds"] = {
                "median": round(statistics.median(ordered), 4),
                "p99": round(ordered[int(len(ordered) * 0.99)], 4),
                "max": round(ordered[-1], 3),
            }
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


class FuzzServer:
    """The in-process app with a few resources in every state a handler looks for, healed between
    examples the way the reconciler would settle them (nothing reconciles here)."""

    def __init__(self, api: InProcessApi) -> None:
        self.api = api
        self.target = ELASTICACHE
        self.client = api.client()
        self.iam = api.client("iam")
        # A second caller, an IAM user, so that requests also go through policy evaluation. Its
        # policy allows everything but touching itself, so a fuzzed call cannot take its key away.
        self.iam.create_user(UserName="fuzzer")
        self.iam.put_user_policy(UserName="fuzzer", PolicyName="all", PolicyDocument=_FUZZER_POLICY)
        made = self.iam.create_access_key(UserName="fuzzer")["AccessKey"]
        self.user_key: tuple[str, str] = (made["AccessKeyId"], made["SecretAccessKey"])
        self.heal()

    def heal(self) -> None:
        """Finish what the API asked for (deletions done, everything else available), and bring back
        the fixture's resources that a fuzzed call deleted."""
        store = self.api.store
        for kind in (GROUP, CLUSTER, SNAPSHOT):
            for record in store.records(kind):
                if record.spec.get("deleting") or record.status.get("status") == "deleting":
                    store.delete(kind, record.id)
        groups = {record.id for record in store.records(GROUP)}
        for record in store.records(CLUSTER):
            # A primary kept by DeleteReplicationGroup RetainPrimaryCluster leaves its group.
            if record.spec.get("replication_group_id") not in (None, *groups):
                store.put_spec(CLUSTER, record.id, {**record.spec, "replication_group_id": None})
        for kind in (GROUP, CLUSTER, SNAPSHOT):
            for record in store.records(kind):
                if record.status.get("status") != "available":
                    self.api.mark_available(kind, record.id)
        for name, kind, create in self._fixture():
            if store.get(kind, name) is None:
                try:
                    create()
                except ClientError:
                    continue  # a fuzzed call took its name (a cluster id, say); the next heal tries again
                self.heal()
        self._heal_iam()

    def _heal_iam(self) -> None:
        """The IAM fixture (a user with an inline policy, a group, a managed policy) back if a
        fuzzed call deleted or renamed it."""
        identities = self.api.api_security.identities
        if identities.user("fuzz-user") is None:
            try:
                self.iam.create_user(UserName="fuzz-user")
                self.iam.put_user_policy(UserName="fuzz-user", PolicyName="fuzz-inline", PolicyDocument=_READ_POLICY)
            except ClientError:
                pass  # the next heal tries again
        if identities.group("fuzz-group") is None:
            with contextlib.suppress(ClientError):
                self.iam.create_group(GroupName="fuzz-group")
        if identities.policy_named("fuzz-policy") is None:
            with contextlib.suppress(ClientError):
                self.iam.create_policy(PolicyName="fuzz-policy", PolicyDocument=_READ_POLICY)

    def _fixture(self) -> list[tuple[str, str, Callable[[], Any]]]:
        client = self.client
        return [
            (
                "fuzz-pg",
                PARAMETER_GROUP,
                lambda: client.create_cache_parameter_group(
                    CacheParameterGroupName="fuzz-pg", CacheParameterGroupFamily="redis7", Description="fuzz"
                ),
            ),
            (
                "fuzz-rg",
                GROUP,
                lambda: client.create_replication_group(
                    ReplicationGroupId="fuzz-rg",
                    ReplicationGroupDescription="fuzz",
                    CacheNodeType=NODE_TYPE,
                    NumCacheClusters=3,
                    AutomaticFailoverEnabled=True,
                    SnapshotRetentionLimit=1,
                ),
            ),
            (
                "fuzz-redis",
                CLUSTER,
                lambda: client.create_cache_cluster(
                    CacheClusterId="fuzz-redis", Engine="redis", CacheNodeType=NODE_TYPE
                ),
            ),
            (
                "fuzz-mc",
                CLUSTER,
                lambda: client.create_cache_cluster(
                    CacheClusterId="fuzz-mc", Engine="memcached", CacheNodeType=NODE_TYPE, NumCacheNodes=2
                ),
            ),
            (
                "fuzz-snap",
                SNAPSHOT,
                lambda: client.create_snapshot(ReplicationGroupId="fuzz-rg", SnapshotName="fuzz-snap"),
            ),
        ]

    def send(self, method: str, **request: Any) -> Any:
        started = time.monotonic()
        response = self.api.send(method, **request)
        record("http", response.status_code, time.monotonic() - started)
        return response

    def raw(self, method: str, **request: Any) -> Any:
        started = time.monotonic()
        response = self.api.raw(method, **request)
        record("http", response.status_code, time.monotonic() - started)
        return response


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    api = InProcessApi(tmp_path_factory.mktemp("fuzz"))
    try:
        yield FuzzServer(api)
    finally:
        api.close()
