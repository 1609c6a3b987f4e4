"""The request script and the report: pure, no processes."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from cachefleet.demo.report import Report
from cachefleet.demo.workload import PhaseResult, WorkloadSpec, Zipf, percentile, plan


def test_zipf_ranks_follow_the_law() -> None:
    zipf = Zipf(100, 1.2)
    rng = random.Random(1)
    counts = Counter(zipf.sample(rng) for _ in range(50_000))
    assert set(counts) <= set(range(1, 101))
    # P(1) / P(2) = 2**1.2 ~ 2.30
    assert counts[1] / counts[2] == pytest.approx(2**1.2, rel=0.08)
    assert counts[1] > counts[10] > counts[100]


def test_expected_distinct_bounds_a_cold_cache() -> None:
    zipf = Zipf(10_000, 1.1)
    assert zipf.expected_distinct(1) == pytest.approx(1.0)
    # The bench's workload: 20k reads over 10k keys touch ~3.4k distinct keys.
    assert 3000 < zipf.expected_distinct(20_000) < 3700


def test_plan_is_deterministic_and_mixed() -> None:
    spec = WorkloadSpec(requests=2000, seed=3)
    ops = plan(spec)
    assert ops == plan(spec)
    assert ops != plan(WorkloadSpec(requests=2000, seed=4))
    kinds = Counter(op.kind for op in ops)
    assert kinds["read"] > 1700
    assert all(kinds[k] > 0 for k in ("write", "score", "board", "me"))
    assert {op.instance for op in ops} == {0, 1}
    assert all(1 <= op.product <= spec.products for op in ops if op.kind in ("read", "write"))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


def test_session_checks() -> None:
    phase = PhaseResult("p", planned=3, login_instance=0)
    phase.session_answers = [(1, "u", 1), (0, "u", 2), (1, "u", 3)]
    assert phase.session_moved("u")
    assert phase.session_updates_lost() == 0
    phase.session_answers = [(1, "u", 1), (0, "u", 2), (1, "u", 2)]  # the second update was lost
    assert phase.session_updates_lost() == 1
    assert not PhaseResult("p", planned=1, login_instance=0, session_answers=[(0, "u", 1)]).session_moved("u")
    assert not PhaseResult("p", planned=1, login_instance=0, session_answers=[(1, "v", 1)]).session_moved("u")


def _report(**overrides: object) -> Report:
    fields: dict[str, object] = {
        "database": "sqlite",
        "db_query_cost_ms": 5.0,
        "products": 1000,
        "zipf_s": 1.5,
        "requests_per_run": 3000,
        "db_queries_without_cache": 2000,
        "db_queries_with_cache": 150,
        "hit_rate": 0.93,
        "read_p50_ms_without_cache": 10.0,
        "read_p99_ms_without_cache": 30.0,
        "read_p50_ms_with_cache": 5.0,
        "read_p99_ms_with_cache": 20.0,
        "requests_without_cache": 3001,
        "requests_with_cache": 3001,
        "failed_requests_without_cache": 0,
        "failed_requests_with_cache": 2,
        "session_moved": True,
        "session_updates_lost": 0,
        "leaderboard_top3": [{"player": "p1", "score": 10.0, "rank": 1}],
        "leaderboard_points_lost": 0.0,
        "failover_happened": True,
        "primary_before": "g-001",
        "primary_after": "g-002",
        "cache_errors_served_by_db": 0,
        "stale_products": 0,
        "group_id": "g",
        "elapsed_s": 30.0,
    }
    fields.update(overrides)
    return Report(**fields)  # type: ignore[arg-type]


def test_report_json_is_one_line_with_the_required_keys() -> None:
    text = _report().to_json()
    assert "\n" not in text
    data = json.loads(text)
    for key in (
        "db_queries_without_cache",
        "db_queries_with_cache",
        "hit_rate",
        "failed_requests",
        "session_moved",
        "failover_happened",
    ):
        assert key in data
    assert data["failed_requests"] == 2
    assert data["db_query_reduction"] == 0.925


def test_report_renders(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console  # noqa: PLC0415

    Console(width=160, force_terminal=False).print(_report(failure_samples=["with cache +1.00s GET /x: 503"]).render())
    out = capsys.readouterr().out
    assert "database queries saved" in out
    assert "92.5%" in out
    assert "GET /x: 503" in out
