"""Reads that cost by what they return: the store's queries by id and by page, events by window and
source, and the markers of the Describe calls (api/paging.py), with their edge cases.

Every query a test makes is also checked to go through an index (``no_scans``): a page must never
read the whole table to find its rows.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cachefleet.api import paging
from cachefleet.model.errors import InvalidParameterValue
from cachefleet.store.kinds import RecordKind
from cachefleet.store.sqlite import INDEXED, Match, Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KIND = "thing"


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store(":memory:")
    yield store
    store.close()


def _plans(store: Store) -> list[str]:
    """Every SELECT the store runs from now on, with SQLite's plan for it, collected in a list."""
    statements: list[str] = []
    db: sqlite3.Connection = store._db

    def trace(sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append(sql)

    db.set_trace_callback(trace)
    return statements


def no_scans(store: Store, statements: list[str]) -> None:
    """No statement run reads a whole table (SQLite's plan says SCAN for that, SEARCH for an index)."""
    db: sqlite3.Connection = store._db
    db.set_trace_callback(None)
    assert statements
    for sql in statements:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [step for step in plan if step.startswith("SCAN") and "VIRTUAL TABLE" not in step]  # json_each
        assert not scans, f"{sql}\n{plan}"


@pytest.fixture
def traced(store: Store) -> Iterator[list[str]]:
    statements = _plans(store)
    yield statements
    no_scans(store, statements)


def _seq(store: Store, thing: str) -> int:
    record = store.get(KIND, thing)
    assert record is not None
    return record.seq


def _things(store: Store, count: int, **spec: Any) -> list[str]:
    ids = [f"t{i:03d}" for i in range(count)]
    for i, thing in enumerate(ids):
        store.create(KIND, thing, {"n": i, **spec}, {})
    return ids


# -- resources -----------------------------------------------------------------------------------


def test_a_page_follows_creation_order_from_its_start(store: Store, traced: list[str]) -> None:
    _things(store, 5)
    first = store.page(KIND, limit=2)
    assert [r.id for r in first] == ["t000", "t001"]
    after = store.page(KIND, start=first[-1].seq + 1, limit=10)
    assert [r.id for r in after] == ["t002", "t003", "t004"]
    assert store.page(KIND, start=after[-1].seq + 1, limit=10) == []
    assert store.page("other", limit=10) == []
    assert [r.id for r in store.page(KIND, limit=None)] == [f"t{i:03d}" for i in range(5)]


def test_a_kinds_page_says_where_the_next_starts_and_none_on_the_last(store: Store, traced: list[str]) -> None:
    kind = _kind()
    _things(store, 5)
    first = kind.page(store, limit=2)
    assert [r.spec["n"] for r in first.items] == [0, 1]
    assert first.next_seq == _seq(store, "t002")
    second = kind.page(store, start=first.next_seq or 0, limit=3)
    assert [r.spec["n"] for r in second.items] == [2, 3, 4]
    assert second.next_seq is None  # exactly full: no empty page after it
    assert kind.page(store, limit=5).next_seq is None
    assert kind.page(store, limit=4).next_seq == _seq(store, "t004")


def test_filters_go_through_their_indexes_or_or_and(store: Store, traced: list[str]) -> None:
    store.create(KIND, "a", {"replication_group_id": "g1", "source": "manual"}, {})
    store.create(KIND, "b", {"replication_group_id": None, "cache_cluster_id": "c1"}, {})
    store.create(KIND, "c", {"replication_group_id": "g1", "source": "automated"}, {"node_cluster_id": "c1"})
    store.create(KIND, "d", {"cache_cluster_id": "c2"}, {})  # the field absent counts as null
    store.create("other", "e", {"replication_group_id": "g1"}, {})

    def ids(*where: list[Match]) -> list[str]:
        return [r.id for r in store.page(KIND, limit=10, where=where)]

    assert ids([Match("spec", "replication_group_id", "g1")]) == ["a", "c"]
    assert ids([Match("spec", "replication_group_id", None)]) == ["b", "d"]
    on_c1 = [Match("spec", "cache_cluster_id", "c1"), Match("status", "node_cluster_id", "c1")]
    assert ids(on_c1) == ["b", "c"]
    assert ids(on_c1, [Match("spec", "replication_group_id", "g1")]) == ["c"]
    assert ids([Match("spec", "replication_group_id", "g1")], [Match("spec", "source", "manual")]) == ["a"]
    assert ids([Match("spec", "replication_group_id", "g2")]) == []
    assert [r.id for r in store.page(KIND, start=_seq(store, "c"), limit=10, where=[on_c1])] == ["c"]


def test_a_filter_on_a_field_without_an_index_is_refused() -> None:
    with pytest.raises(ValueError, match="no index"):
        Match("spec", "engine", "redis")
    assert ("spec", "replication_group_id") in INDEXED


def test_many_reads_the_named_in_the_order_asked(store: Store, traced: list[str]) -> None:
    _things(store, 4)
    assert [r.id for r in store.many(KIND, ["t003", "missing", "t000", "t003"])] == ["t003", "t000"]
    assert store.many(KIND, []) == []
    kind = _kind(lowercase=True)
    assert [r.spec["n"] for r in kind.many(store, ["T001", "t002"])] == [1, 2]


def test_ids_count_and_json_values_read_no_whole_record(store: Store, traced: list[str]) -> None:
    store.create(KIND, "a", {}, {"port": 7000, "nodes": [{"port": 1}, {"port": None}, {"port": 2}]})
    store.create(KIND, "b", {}, {"nodes": []})
    assert store.ids(KIND) == ["a", "b"]
    assert store.count(KIND) == 2
    assert store.count("other") == 0
    assert sorted(store.json_values(KIND, "status", "port", each="nodes")) == [1, 2]
    assert store.json_values(KIND, "status", "port") == [7000]
    with pytest.raises(ValueError, match="not a JSON field"):
        store.json_values(KIND, "status", "port') --")


def test_a_deletion_or_a_creation_between_two_pages_shifts_nothing(store: Store) -> None:
    kind = _kind()
    _things(store, 6)
    first = kind.page(store, limit=3)
    store.delete(KIND, "t001")  # on the page already read
    store.create(KIND, "late", {"n": 99}, {})
    second = kind.page(store, start=first.next_seq or 0, limit=3)
    assert [r.spec["n"] for r in second.items] == [3, 4, 5]
    third = kind.page(store, start=second.next_seq or 0, limit=3)
    assert [r.spec["n"] for r in third.items] == [99]


# -- events ----------------------------------------------------------------------------------------


def _events(store: Store) -> None:
    for minutes, source, kind in [
        (0, "a", "cache-cluster"),
        (1, "b", "replication-group"),
        (2, "a", "cache-cluster"),
        (2, "c", "cache-cluster"),  # the same time as the one before: written later, listed first
        (3, "b", "replication-group"),
    ]:
        store.add_event(source, kind, f"{source}@{minutes}", NOW + timedelta(minutes=minutes))


def _messages(events: list[Any]) -> list[str]:
    return [e.message for e in events]


def test_events_come_newest_first_within_the_window_by_source(store: Store, traced: list[str]) -> None:
    _events(store)
    everything = store.recent_events(start=NOW, end=NOW + timedelta(minutes=3))
    assert _messages(everything) == ["b@3", "c@2", "a@2", "b@1", "a@0"]
    inner = store.recent_events(start=NOW + timedelta(minutes=1), end=NOW + timedelta(minutes=2))
    assert _messages(inner) == ["c@2", "a@2", "b@1"]  # both bounds included
    by_type = store.recent_events(start=NOW, source_type="cache-cluster")
    assert _messages(by_type) == ["c@2", "a@2", "a@0"]
    by_source = store.recent_events(start=NOW, source_type="cache-cluster", source_id="a", limit=1)
    assert _messages(by_source) == ["a@2"]
    assert store.recent_events(start=NOW + timedelta(minutes=4)) == []


def test_an_events_position_resumes_at_the_event_it_names(store: Store, traced: list[str]) -> None:
    _events(store)
    first = store.recent_events(start=NOW, limit=3)
    assert _messages(first) == ["b@3", "c@2", "a@2"]
    nxt = store.recent_events(start=NOW, limit=3, before=(first[2].date, first[2].seq))
    assert _messages(nxt) == ["a@2", "b@1", "a@0"]  # inclusive: the marker names the next page's first


def test_event_dates_in_another_zone_are_stored_as_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.add_event("a", "cache-cluster", "zoned", (NOW + timedelta(hours=2)).replace(tzinfo=plus_two))
    store.add_event("a", "cache-cluster", "naive", (NOW + timedelta(seconds=1)).replace(tzinfo=None))
    assert [(e.message, e.date) for e in store.recent_events(start=NOW)] == [
        ("naive", NOW + timedelta(seconds=1)),
        ("zoned", NOW),
    ]


def test_event_dates_of_earlier_versions_are_rewritten_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    with sqlite3.connect(path) as db:  # as earlier versions wrote them: isoformat(), whole seconds bare
        for i, date in enumerate([NOW, NOW + timedelta(microseconds=5), NOW + timedelta(seconds=1)]):
            db.execute(
                "INSERT INTO events (source_id, source_type, message, date) VALUES ('a', 'cache-cluster', ?, ?)",
                (f"e{i}", date.isoformat()),
            )
    db.close()
    store = Store(path)
    try:
        with sqlite3.connect(path) as raw:
            dates = [row[0] for row in raw.execute("SELECT date FROM events ORDER BY seq")]
        raw.close()
        assert dates == [
            "2026-11-26T12:00:00.000000+00:00",
            "2026-11-26T12:00:00.000005+00:00",
            "2026-11-26T12:00:01.000000+00:00",
        ]
        # The bound at a whole second includes the event at that second, as it did before.
        assert _messages(store.recent_events(start=NOW, end=NOW)) == ["e0"]
        assert _messages(store.recent_events(start=NOW)) == ["e2", "e1", "e0"]
    finally:
        store.close()


# -- markers (api/paging.py) -----------------------------------------------------------------------


def _marker(*fields: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode()


def test_resource_pages_follow_each_others_markers(store: Store, traced: list[str]) -> None:
    kind = _kind()
    _things(store, 45)
    seen: list[int] = []
    params: dict[str, Any] = {"MaxRecords": 20}
    pages = 0
    while True:
        items, marker = paging.resources(kind, store, params)
        seen += [r.spec["n"] for r in items]
        pages += 1
        if marker is None:
            break
        params = {"MaxRecords": 20, "Marker": marker}
    assert (seen, pages) == (list(range(45)), 3)
    items, marker = paging.resources(kind, store, {})
    assert (len(items), marker) == (45, None)  # the default page is 100


def test_one_checks_the_paging_members_and_honours_the_marker(store: Store) -> None:
    kind = _kind()
    _things(store, 30)
    last = kind.get(store, "t029")
    _, marker = paging.resources(kind, store, {"MaxRecords": 20})
    assert marker is not None
    assert paging.one(last, {"Marker": marker}) == [last]  # the marker starts before it
    early = kind.get(store, "t000")
    assert paging.one(early, {"Marker": marker}) == []
    with pytest.raises(InvalidParameterValue, match="MaxRecords"):
        paging.one(last, {"MaxRecords": 19})


@pytest.mark.parametrize(
    "marker",
    [
        "garbage",
        "",
        _marker("cf2e", "2026-11-26T12:00:00+00:00", 3),  # an events marker given to a resource list
        _marker("cf1", 20),  # an offset marker
        _marker("cf2r"),
        _marker("cf2r", 0),
        _marker("cf2r", -5),
        _marker("cf2r", True),
        _marker("cf2r", "7"),
        _marker("cf2r", 1 << 70),  # more than SQLite holds
        _marker("cf2r", 3, 4),
        base64.urlsafe_b64encode(b"[" * 100_000).decode()[:600],  # too long to be ours
        base64.urlsafe_b64encode(b"[" * 300).decode(),  # nested deeper than it should
        base64.urlsafe_b64encode("\udcff".encode("utf-8", "surrogatepass")).decode(),
    ],
)
def test_a_resource_marker_that_is_not_one_of_ours_is_refused(store: Store, marker: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Marker is not valid"):
        paging.resources(_kind(), store, {"Marker": marker})


@pytest.mark.parametrize(
    "marker",
    [
        _marker("cf2r", 3),
        _marker("cf2e", "2026-11-26T12:00:00", 3),  # no zone
        _marker("cf2e", "yesterday", 3),
        _marker("cf2e", 12, 3),
        _marker("cf2e", "2026-11-26T12:00:00+00:00", 0),
        _marker("cf2e", "2026-11-26T12:00:00+00:00"),
    ],
)
def test_an_event_marker_that_is_not_one_of_ours_is_refused(store: Store, marker: str) -> None:
    with pytest.raises(InvalidParameterValue, match="Marker is not valid"):
        paging.events(store, {"Marker": marker}, start=NOW, end=NOW, source_type=None, source_id=None)


def test_event_pages_follow_each_others_markers(store: Store, traced: list[str]) -> None:
    for i in range(45):
        store.add_event(f"s{i % 3}", "cache-cluster", f"m{i}", NOW + timedelta(seconds=i // 2))
    window = {"start": NOW, "end": NOW + timedelta(hours=1), "source_type": None, "source_id": None}
    seen: list[str] = []
    params: dict[str, Any] = {"MaxRecords": 20}
    while True:
        found, marker = paging.events(store, params, **window)
        seen += [e.message for e in found]
        if marker is None:
            break
        params = {"MaxRecords": 20, "Marker": marker}
    assert seen == [f"m{i}" for i in reversed(range(45))]
    found, marker = paging.events(store, {"MaxRecords": 20}, **{**window, "source_id": "s1"})
    assert ([e.message for e in found], marker) == ([f"m{i}" for i in reversed(range(45)) if i % 3 == 1], None)


def test_fixed_lists_page_by_offset_and_check_their_markers() -> None:
    items = list(range(50))
    first, marker = paging.page(items, {"MaxRecords": 20})
    assert (list(first), marker is not None) == (list(range(20)), True)
    rest, last = paging.page(items, {"MaxRecords": 40, "Marker": marker})
    assert (list(rest), last) == (list(range(20, 50)), None)
    for bad in (_marker("cf1", 51), _marker("cf1", -1), _marker("cf2r", 3), "garbage"):
        with pytest.raises(InvalidParameterValue, match="Marker is not valid"):
            paging.page(items, {"Marker": bad})
    for size in (19, 101):
        with pytest.raises(InvalidParameterValue, match="between 20 and 100"):
            paging.page(items, {"MaxRecords": size})


def _kind(*, lowercase: bool = False) -> RecordKind[Any, Any]:
    class Plain(dict[str, Any]):
        def to_json(self) -> dict[str, Any]:
            return dict(self)

    return RecordKind(
        KIND, Plain, Plain, Plain, lambda i: InvalidParameterValue(f"{i} not found"), lowercase_ids=lowercase
    )
