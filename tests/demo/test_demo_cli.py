"""`cachefleet demo` end to end, as a user runs it: a subprocess, the report's JSON on the last line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cachefleet.demo.processes import processes_under
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 150


def _demo(tmp_path: Path, *args: str, path: str | None = None) -> tuple[dict[str, Any], str]:
    """Run the demo with its temp files under `tmp_path`; (the last stdout line as JSON, stderr)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    if path is not None:
        env["PATH"] = path
    done = subprocess.run(
        [sys.executable, "-m", "cachefleet", "demo", "--json", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_demo_json_report(tmp_path: Path) -> None:
    report, stderr = _demo(tmp_path)
    assert report["failover_happened"], stderr[-3000:]
    assert report["primary_before"] != report["primary_after"]
    assert report["session_moved"]
    assert report["failed_requests"] == 0, report["failure_samples"]
    assert report["db_queries_with_cache"] <= 0.10 * report["db_queries_without_cache"]
    assert report["hit_rate"] > 0.8
    assert report["requests_with_cache"] == report["requests_without_cache"] == report["requests_per_run"] + 1
    assert len(report["leaderboard_top3"]) == 3
    # Everything it started is gone: server, nodes, app instances, and the work dir itself.
    assert processes_under(tmp_path) == []
    assert list(tmp_path.glob("cachefleet-demo-*")) == []


def test_demo_runs_with_a_users_path_that_lacks_sbin(tmp_path: Path) -> None:
    # Debian's PATH for a user; haproxy lives in /usr/sbin. The interpreter is sys.executable, absolute.
    user_path = "/usr/local/bin:/usr/bin:/bin"
    assert shutil.which("haproxy", path=user_path) is None  # else this test would prove nothing
    report, stderr = _demo(tmp_path, "--requests", "300", path=user_path)
    assert report["failover_happened"], stderr[-3000:]
    assert report["failed_requests"] == 0, report["failure_samples"]
    assert processes_under(tmp_path) == []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "cf")
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


def test_demo_uses_a_running_server_and_deletes_only_its_group(tmp_path: Path, server: ServerProcess) -> None:
    client = server.client()
    client.create_replication_group(
        CacheNodeType="cache.t4g.micro",
        ReplicationGroupId="mine", ReplicationGroupDescription="not the demo's", NumCacheClusters=1
    )
    work = tmp_path / "work"
    work.mkdir()
    report, _ = _demo(work, "--data-dir", str(server.data_dir), "--requests", "600")
    assert report["failed_requests"] == 0, report["failure_samples"]
    assert report["failover_happened"]
    with pytest.raises(ClientError, match="ReplicationGroupNotFound"):
        client.describe_replication_groups(ReplicationGroupId=report["group_id"])
    assert client.describe_replication_groups(ReplicationGroupId="mine")["ReplicationGroups"]
    assert server.process is not None
    assert server.process.poll() is None  # the server it was given keeps running
    assert processes_under(work) == []


def test_bad_database_url_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cachefleet", "demo", "--database-url", "mysql://x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 64  # a usage error
    assert "--database-url" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_stops_everything_it_started(tmp_path: Path, signum: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cachefleet", "demo"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # progress lines; the first run starts once everything is up
            seen.append(line)
            if line.startswith("run 1, cache off"):
                break
        else:
            pytest.fail("the demo ended before its first run: " + "".join(seen[-20:]))
        assert processes_under(tmp_path), "nothing running yet?"
        process.send_signal(signum)
        process.stderr.read()
        assert process.wait(60) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    assert processes_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
