"""``cachefleet event list``: what happened to groups, clusters and parameter groups (DescribeEvents).

``--follow`` keeps polling and prints each new event once, oldest first, until Ctrl-C, like
``tail -f``. DescribeEvents' ``StartTime`` is inclusive, so every poll from the newest event seen
returns that event again; events already printed are remembered (only those at or after that time).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from cachefleet.cli import render
from cachefleet.cli.connection import ElastiCache, collect
from cachefleet.cli.context import CliState, emit, pass_state
from cachefleet.cli.groups import noun
from cachefleet.cli.options import client_options, request

# DescribeEvents' SourceType values (the service model's enum).
SOURCE_TYPES = (
    "cache-cluster",
    "cache-parameter-group",
    "cache-security-group",
    "cache-subnet-group",
    "replication-group",
    "serverless-cache",
    "serverless-cache-snapshot",
    "user",
    "user-group",
)
RETENTION_MINUTES = 14 * 24 * 60

Event = Mapping[str, Any]
EventKey = tuple[datetime, str, str, str]


def parse_time(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601 (``2026-01-02T03:04:05Z``, ``2026-01-02 03:04``); without a zone it is UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected an ISO 8601 time such as 2026-01-02T03:04:05Z, got {value!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@noun("event")
def event() -> None:
    """Events: failovers, node recoveries, snapshots, parameter changes, ..."""


@event.command("list")
@click.option("--source-type", type=click.Choice(SOURCE_TYPES), help="SourceType: only events of this kind.")
@click.option("--source-id", metavar="ID", help="SourceIdentifier (needs --source-type).")
@click.option(
    "--duration",
    type=click.IntRange(1, RETENTION_MINUTES),
    metavar="MINUTES",
    help="Events of the last MINUTES [default: 60].",
)
@click.option("--start-time", callback=parse_time, metavar="TIME", help="StartTime, ISO 8601 (UTC without a zone).")
@click.option("--end-time", callback=parse_time, metavar="TIME", help="EndTime, ISO 8601.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen, until Ctrl-C.")
@client_options
@pass_state
def list_events(
    state: CliState,
    *,
    source_type: str | None,
    source_id: str | None,
    duration: int | None,
    start_time: datetime | None,
    end_time: datetime | None,
    follow: bool,
) -> None:
    """List events, oldest first (--json: the API's answer, newest first; with --follow one JSON
    object per line)."""
    if follow and end_time is not None:
        raise click.UsageError("--follow shows events as they come: it takes no --end-time")
    client = state.client()
    filters = request(SourceType=source_type, SourceIdentifier=source_id)
    window = request(Duration=duration, StartTime=start_time, EndTime=end_time)
    events = collect(client.describe_events, "Events", **filters, **window)
    if not follow:
        emit(state, {"Events": events}, lambda: render.events_table(events) if events else "No events.")
        return
    show = _line_printer(state)
    try:
        follow_events(client, filters, window, events, show=show, sleep=lambda: time.sleep(state.poll_interval))
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends: not a failure


def follow_events(
    client: ElastiCache,
    filters: dict[str, Any],
    window: dict[str, Any],
    first: Sequence[Event],
    *,
    show: Callable[[Event], None],
    sleep: Callable[[], None],
) -> None:
    """Show ``first`` (an answer, newest first), then poll forever, showing each new event once."""
    seen: set[EventKey] = set()
    since: datetime | None = None
    events: Sequence[Event] = first
    while True:
        for item in render.chronological(events):
            key = _key(item)
            if key in seen:
                continue
            seen.add(key)
            show(item)
            since = item["Date"] if since is None else max(since, item["Date"])
        if since is not None:
            # Only events at or after ``since`` come back from now on; older keys are dead weight.
            seen = {key for key in seen if key[0] >= since}
        sleep()
        # Until the first event, the same window (it slides with the clock); then from the newest one.
        params = {**filters, **({"StartTime": since} if since is not None else window)}
        events = collect(client.describe_events, "Events", **params)


def _key(item: Event) -> EventKey:
    return item["Date"], item.get("SourceType", ""), item.get("SourceIdentifier", ""), item.get("Message", "")


def _line_printer(state: CliState) -> Callable[[Event], None]:
    def show(item: Event) -> None:
        # One line per event, flushed at once: --follow is read through pipes (grep, tee) as it runs.
        text = render.to_json_line(item) if state.json else render.event_line(item)
        click.echo(text)
        sys.stdout.flush()

    return show
