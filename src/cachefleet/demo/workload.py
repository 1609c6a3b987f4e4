"""The scripted workload: a fixed, seeded list of requests, replayed by a few concurrent clients.

`plan()` draws the requests once from a seed, so the run without the cache and the run with it
send exactly the same requests. Product ids follow a Zipf law (a few products get most views);
each request goes to one of the app instances, as a round-robin load balancer would send it.

One browser holds a session: it logs in on the first instance and then asks `/me` on both, one
request at a time (a person does not send two at once). Product writes come from one admin, also
one at a time: concurrent write-throughs of one key may finish out of order (see
`cachefleet_client.write_through`), which is a property of the pattern, not of the demo.

Every request counts: a non-2xx status or an exception is a failed request, with a sample of the
first few kept for the report.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from cachefleet.demo.database import user_name

__all__ = ["Op", "PhaseResult", "WorkloadSpec", "Zipf", "percentile", "plan", "run_phase"]

Kind = Literal["read", "write", "score", "board", "me", "login"]
FAILURE_SAMPLES = 10


class Zipf:
    """Ranks 1..n with P(k) proportional to 1 / k**s, drawn by bisecting the cumulative weights."""

    def __init__(self, n: int, s: float) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.s = s
        self._weights = [1.0 / float(k) ** s for k in range(1, n + 1)]
        self._cumulative = list(itertools.accumulate(self._weights))

    def sample(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1]) + 1

    def expected_distinct(self, draws: int) -> float:
        """How many different ranks `draws` draws are expected to hit: a cold cache's misses."""
        total = self._cumulative[-1]
        return float(sum(1.0 - (1.0 - w / total) ** draws for w in self._weights))


@dataclass(frozen=True)
class WorkloadSpec:
    requests: int = 3000
    products: int = 1000
    users: int = 2000
    zipf_s: float = 1.5
    write_ratio: float = 0.01
    score_ratio: float = 0.04
    board_ratio: float = 0.01
    session_ratio: float = 0.02
    players: int = 20
    instances: int = 2
    concurrency: int = 4
    time_limit: float = 45.0
    seed: int = 7

    @property
    def session_user(self) -> str:
        return user_name(1 + self.seed % self.users)


@dataclass(frozen=True)
class Op:
    kind: Kind
    instance: int
    product: int = 0
    player: str = ""
    value: int = 0


def plan(spec: WorkloadSpec) -> list[Op]:
    rng = random.Random(spec.seed)
    zipf = Zipf(spec.products, spec.zipf_s)
    cuts = list(itertools.accumulate([spec.write_ratio, spec.score_ratio, spec.board_ratio, spec.session_ratio]))
    ops: list[Op] = []
    for i in range(spec.requests):
        instance = i % spec.instances
        roll = rng.random()
        if roll < cuts[0]:
            ops.append(Op("write", instance, product=zipf.sample(rng), value=rng.randrange(0, 500)))
        elif roll < cuts[1]:
            player = f"player{rng.randrange(spec.players):02d}"
            ops.append(Op("score", instance, player=player, value=rng.randint(1, 10)))
        elif roll < cuts[2]:
            ops.append(Op("board", instance))
        elif roll < cuts[3]:
            ops.append(Op("me", instance))
        else:
            ops.append(Op("read", instance, product=zipf.sample(rng)))
    return ops


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class PhaseResult:
    name: str
    planned: int
    sent: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    read_latencies: list[float] = field(default_factory=list)
    scores_acked: dict[str, float] = field(default_factory=dict)
    scores_sent: dict[str, float] = field(default_factory=dict)
    written: dict[int, dict[str, Any]] = field(default_factory=dict)
    login_instance: int | None = None
    session_answers: list[tuple[int, str | None, int]] = field(default_factory=list)
    elapsed: float = 0.0

    def fail(self, started: float, what: str) -> None:
        self.failed += 1
        if len(self.failures) < FAILURE_SAMPLES:
            self.failures.append(f"{self.name} +{time.monotonic() - started:.2f}s {what}")

    def session_moved(self, user: str) -> bool:
        """Logged in on one instance and recognised, with the same session, on another."""
        if self.login_instance is None or not self.session_answers:
            return False
        right_user = all(answered == user for _, answered, _ in self.session_answers)
        elsewhere = any(i != self.login_instance for i, _, _ in self.session_answers)
        return right_user and elsewhere

    def session_updates_lost(self) -> int:
        """How many acknowledged /me updates (each adds 1 to `views`) a later /me did not see."""
        lost = 0
        previous = 0
        for _, _, views in self.session_answers:
            lost += max(0, previous + 1 - views)
            previous = views
        return lost


class _Runner:
    def __init__(self, name: str, urls: Sequence[str], ops: Sequence[Op], spec: WorkloadSpec) -> None:
        self.urls = urls
        self.ops = ops
        self.spec = spec
        self.result = PhaseResult(name, planned=len(ops))
        self.next = 0
        self.started = time.monotonic()
        self.session_lock = asyncio.Lock()
        self.admin_lock = asyncio.Lock()

    async def request(self, client: httpx.AsyncClient, op: Op, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer, or None after counting a failure."""
        self.result.sent += 1
        try:
            response = await client.request(method, self.urls[op.instance] + path, **kw)
        except httpx.HTTPError as exc:
            self.result.fail(self.started, f"{method} {path} on #{op.instance}: {exc!r}")
            return None
        if not response.is_success:
            self.result.fail(self.started, f"{method} {path} on #{op.instance}: {response.status_code} {response.text}")
            return None
        return response.json()

    async def run_op(self, client: httpx.AsyncClient, browser: httpx.AsyncClient, op: Op) -> None:
        result = self.result
        if op.kind == "read":
            t0 = time.perf_counter()
            answer = await self.request(client, op, "GET", f"/product/{op.product}")
            if answer is not None:
                result.read_latencies.append(time.perf_counter() - t0)
        elif op.kind == "write":
            async with self.admin_lock:
                answer = await self.request(client, op, "PUT", f"/product/{op.product}", json={"stock": op.value})
                if answer is not None:
                    result.written[op.product] = answer
        elif op.kind == "score":
            result.scores_sent[op.player] = result.scores_sent.get(op.player, 0) + op.value
            answer = await self.request(client, op, "POST", "/score", json={"player": op.player, "points": op.value})
            if answer is not None:
                result.scores_acked[op.player] = result.scores_acked.get(op.player, 0) + op.value
        elif op.kind == "board":
            await self.request(client, op, "GET", "/leaderboard", params={"n": 3})
        else:
            async with self.session_lock:
                answer = await self.request(browser, op, "GET", "/me")
                if answer is not None:
                    result.session_answers.append((op.instance, answer.get("user"), int(answer.get("views", 0))))

    async def worker(
        self, client: httpx.AsyncClient, browser: httpx.AsyncClient, midway: asyncio.Event, deadline: float
    ) -> None:
        while self.next < len(self.ops) and time.monotonic() < deadline:
            index = self.next
            self.next += 1
            if index == len(self.ops) // 2:
                midway.set()
            await self.run_op(client, browser, self.ops[index])


async def run_phase(
    name: str,
    urls: Sequence[str],
    ops: Sequence[Op],
    spec: WorkloadSpec,
    *,
    midway: Callable[[], Awaitable[None]] | None = None,
) -> PhaseResult:
    """Replay `ops` with `spec.concurrency` clients; call `midway` (concurrently) at the halfway mark."""
    runner = _Runner(name, urls, ops, spec)
    limits = httpx.Limits(max_connections=spec.concurrency * 2, max_keepalive_connections=spec.concurrency * 2)
    reached = asyncio.Event()
    async with (
        httpx.AsyncClient(timeout=30.0, limits=limits) as client,
        httpx.AsyncClient(timeout=30.0) as browser,
    ):
        login = Op("login", 0)
        answer = await runner.request(browser, login, "POST", "/login", json={"user": spec.session_user})
        if answer is not None:
            runner.result.login_instance = 0
        side: asyncio.Task[None] | None = None

        async def on_midway() -> None:
            await reached.wait()
            if midway is not None:
                await midway()

        side = asyncio.create_task(on_midway())
        deadline = runner.started + spec.time_limit
        try:
            await asyncio.gather(*(runner.worker(client, browser, reached, deadline) for _ in range(spec.concurrency)))
            if reached.is_set():
                await side  # its errors (a failed TestFailover call) are the caller's to see
        finally:
            if not side.done():
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side
    runner.result.elapsed = time.monotonic() - runner.started
    return runner.result
