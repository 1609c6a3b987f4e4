"""``cachefleet audit``: the audit trail of calls that changed something (``DIR/audit/``).

Read from the data directory on this machine (the server writes one JSON object per line, rotated
by size); filters select by time, identity, action, service and outcome, ``--follow`` waits for
new records, and ``--json`` prints the records as they are (one per line, as CloudTrail's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from cachefleet.cli.context import CliState, pass_state, stdout
from cachefleet.cli.options import data_dir_option, json_option
from cachefleet.settings import default_data_dir
from cachefleet.store.audit import follow as follow_records
from cachefleet.store.audit import read_records

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    match = _DURATION.fullmatch(value)
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a duration (30m, 2h, 7d) or an ISO 8601 time, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    user: str | None = None
    action: str | None = None
    service: str | None = None
    errors_only: bool = False

    def __call__(self, record: dict[str, Any]) -> bool:
        identity = record.get("userIdentity") or {}
        if self.since is not None and _time(record) < self.since:
            return False
        if self.user is not None and self.user not in (identity.get("userName"), identity.get("arn"),
                                                       identity.get("accessKeyId")):  # fmt: skip
            return False
        if self.action is not None and str(record.get("eventName", "")).lower() != self.action.lower():
            return False
        if self.service is not None and not str(record.get("eventSource", "")).startswith(self.service + "."):
            return False
        return not (self.errors_only and "errorCode" not in record)


def _time(record: dict[str, Any]) -> datetime:
    try:
        return datetime.strptime(str(record.get("eventTime")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _who(record: dict[str, Any]) -> str:
    identity = record.get("userIdentity") or {}
    if identity.get("type") == "Root":
        return "root"
    return str(identity.get("userName") or identity.get("accessKeyId") or "?")


def _outcome(record: dict[str, Any]) -> str:
    return f"{record['errorCode']}" if "errorCode" in record else "ok"


def _table(records: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="Audit trail", title_justify="left")
    for column in ("Time", "Identity", "Action", "Resource", "From", "Result", "Request id"):
        table.add_column(column, overflow="fold")
    for record in records:
        resources = record.get("resources") or []
        table.add_row(
            str(record.get("eventTime", "")),
            _who(record),
            f"{str(record.get('eventSource', '')).split('.')[0]}:{record.get('eventName', '')}",
            ", ".join(r.get("ARN", "") for r in resources) or "-",
            str(record.get("sourceIPAddress", "")),
            _outcome(record),
            str(record.get("requestID", "")),
        )
    return table


def _line(record: dict[str, Any]) -> str:
    resources = ", ".join(r.get("ARN", "") for r in record.get("resources") or []) or "-"
    action = f"{str(record.get('eventSource', '')).split('.')[0]}:{record.get('eventName', '')}"
    return f"{record.get('eventTime')} {_who(record)} {action} {resources} {_outcome(record)}"


@click.command("audit")
@click.option("--since", callback=parse_since, help="Only records this recent: 30m, 2h, 7d, or an ISO 8601 time.")
@click.option("--user", help="Only calls by this user name, identity ARN or access key id.")
@click.option("--action", help="Only this action (e.g. CreateReplicationGroup).")
@click.option("--service", type=click.Choice(["elasticache", "iam", "sts"]), help="Only calls to this service.")
@click.option("--errors", "errors_only", is_flag=True, help="Only calls that were refused or failed.")
@click.option("--follow", is_flag=True, help="Print the matching records, then keep printing new ones.")
@data_dir_option
@json_option
@pass_state
def audit(
    state: CliState,
    *,
    since: datetime | None,
    user: str | None,
    action: str | None,
    service: str | None,
    errors_only: bool,
    follow: bool,
) -> None:
    """Show the audit trail: every call that changed something, who made it, and how it ended."""
    directory = (state.data_dir or default_data_dir()) / "audit"
    wanted = Filter(since=since, user=user, action=action, service=service, errors_only=errors_only)
    records = [r for r in read_records(directory) if wanted(r)]
    if state.json:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True))
    elif not follow:
        stdout().print(_table(records))
    else:
        for record in records:
            click.echo(_line(record))
    if follow:
        for record in _new(directory, wanted):
            click.echo(json.dumps(record, sort_keys=True) if state.json else _line(record))


def _new(directory: Path, wanted: Filter) -> Iterator[dict[str, Any]]:
    return (r for r in follow_records(directory) if wanted(r))
