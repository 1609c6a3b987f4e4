"""What the demo found, as one JSON object (``--json``) or as rich tables for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Group as Stack
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["Report"]


@dataclass
class Report:
    database: str
    db_query_cost_ms: float
    products: int
    zipf_s: float
    requests_per_run: int
    db_queries_without_cache: int
    db_queries_with_cache: int
    hit_rate: float
    read_p50_ms_without_cache: float | None
    read_p99_ms_without_cache: float | None
    read_p50_ms_with_cache: float | None
    read_p99_ms_with_cache: float | None
    requests_without_cache: int
    requests_with_cache: int
    failed_requests_without_cache: int
    failed_requests_with_cache: int
    session_moved: bool
    session_updates_lost: int
    leaderboard_top3: list[dict[str, Any]]
    leaderboard_points_lost: float  # acknowledged points the board does not show
    failover_happened: bool
    primary_before: str | None
    primary_after: str | None
    cache_errors_served_by_db: int
    stale_products: int
    group_id: str
    elapsed_s: float
    failure_samples: list[str] = field(default_factory=list)
    # How the app reached the cache: TLS mode and the ACL user it logged in as (RBAC).
    transit_encryption: str = ""
    cache_user: str = ""

    @property
    def failed_requests(self) -> int:
        return self.failed_requests_without_cache + self.failed_requests_with_cache

    @property
    def db_query_reduction(self) -> float:
        if not self.db_queries_without_cache:
            return 0.0
        return 1.0 - self.db_queries_with_cache / self.db_queries_without_cache

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_requests"] = self.failed_requests
        data["db_query_reduction"] = round(self.db_query_reduction, 4)
        data["hit_rate"] = round(self.hit_rate, 4)
        return data

    def to_json(self) -> str:
        """One line: scripts read the last line of stdout."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def render(self) -> RenderableType:
        cost = f", +{self.db_query_cost_ms:g} ms per query (artificial)" if self.db_query_cost_ms else ""
        title = (
            f"cachefleet demo: {self.requests_per_run} requests per run, {self.products} products "
            f"(Zipf s={self.zipf_s:g}), {self.database}{cost}"
        )
        runs = Table(title=title, title_justify="left")
        runs.add_column("")
        runs.add_column("without cache", justify="right")
        runs.add_column("with cache", justify="right")
        runs.add_row("database queries", str(self.db_queries_without_cache), str(self.db_queries_with_cache))
        runs.add_row("hit rate", "-", f"{self.hit_rate:.1%}")
        runs.add_row("GET /product p50 (ms)", _fmt(self.read_p50_ms_without_cache), _fmt(self.read_p50_ms_with_cache))
        runs.add_row("GET /product p99 (ms)", _fmt(self.read_p99_ms_without_cache), _fmt(self.read_p99_ms_with_cache))
        runs.add_row("requests sent", str(self.requests_without_cache), str(self.requests_with_cache))
        runs.add_row(
            "failed requests",
            _flag(self.failed_requests_without_cache, 0),
            _flag(self.failed_requests_with_cache, 0),
        )

        facts = Table(show_header=False, title="With the cache", title_justify="left")
        facts.add_column("")
        facts.add_column("")
        facts.add_row("database queries saved", f"{self.db_query_reduction:.1%}")
        moved = f"{self.primary_before} -> {self.primary_after}"
        facts.add_row("failover mid-run (TestFailover)", _yes(self.failover_happened, moved))
        facts.add_row("session moved between instances", _yes(self.session_moved))
        facts.add_row("acknowledged session updates lost", _flag(self.session_updates_lost, 0))
        top = ", ".join(f"{e['rank']}. {e['player']} ({e['score']:g})" for e in self.leaderboard_top3) or "-"
        facts.add_row("leaderboard top 3", top)
        facts.add_row("acknowledged leaderboard points lost", _flag(round(self.leaderboard_points_lost), 0))
        facts.add_row("products stale in the cache", _flag(self.stale_products, 0))
        facts.add_row("cache errors (served by the database)", _flag(self.cache_errors_served_by_db, 0))
        if self.transit_encryption:
            facts.add_row("cache connections", f"TLS {self.transit_encryption}, ACL user {self.cache_user}")
        facts.add_row("elapsed", f"{self.elapsed_s:.1f} s")
        parts: list[RenderableType] = [runs, Text(""), facts]
        if self.failure_samples:
            parts.append(Text("\nFirst failed requests:\n" + "\n".join(self.failure_samples), style="red"))
        return Stack(*parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _flag(value: int, good: int) -> Text:
    return Text(str(value), style="green" if value == good else "red")


def _yes(value: bool, detail: str = "") -> Text:
    text = "yes" if value else "NO"
    return Text(f"{text} ({detail})" if detail else text, style="green" if value else "red")
