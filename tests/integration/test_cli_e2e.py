"""The `cachefleet` CLI against a real server: what a person types, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cachefleet", "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_create_list_describe_delete_with_the_cli(server: ServerProcess) -> None:
    created = _cli(server, "--json", "rg", "create", "shop", "--description", "shop cache", "--replicas", "1")
    assert created.returncode == 0, created.stderr
    # The CLI waits, then prints the group as it is once available.
    assert json.loads(created.stdout)["ReplicationGroup"]["Status"] == "available"

    listing = _cli(server, "rg", "list")
    assert listing.returncode == 0
    assert "shop" in listing.stdout
    assert "available" in listing.stdout

    described = json.loads(_cli(server, "--json", "rg", "describe", "shop").stdout)
    members = described["ReplicationGroups"][0]["NodeGroups"][0]["NodeGroupMembers"]
    assert [m["CurrentRole"] for m in members] == ["primary", "replica"]

    duplicate = _cli(server, "rg", "create", "shop", "--description", "again")
    assert duplicate.returncode == 1
    assert "ReplicationGroupAlreadyExists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr

    deleted = _cli(server, "rg", "delete", "shop")
    assert deleted.returncode == 0, deleted.stderr
    assert "No replication groups" in _cli(server, "rg", "list").stdout


def test_memcached_cluster_and_engines_with_the_cli(server: ServerProcess) -> None:
    created = _cli(server, "cluster", "create", "mc", "--engine", "memcached", "--num-nodes", "2")
    assert created.returncode == 0, created.stderr
    described = json.loads(_cli(server, "--json", "cluster", "describe", "mc").stdout)
    assert len(described["CacheClusters"][0]["CacheNodes"]) == 2
    engines = _cli(server, "engines")
    assert "memcached" in engines.stdout
    assert "redis" in engines.stdout
    assert _cli(server, "cluster", "delete", "mc").returncode == 0


def test_no_server_is_a_clear_error(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cachefleet", "--data-dir", str(tmp_path), "rg", "list"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "No cachefleet server" in result.stderr
