"""The store's transactions: all or nothing, and listeners told only after the outermost commit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.store.sqlite import Store

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


@pytest.fixture
def heard(store: Store) -> list[tuple[str, str]]:
    told: list[tuple[str, str]] = []
    store.subscribe(lambda kind, resource_id: told.append((kind, resource_id)))
    return told


def test_a_failed_transaction_leaves_nothing_and_tells_nobody(store: Store, heard: list[tuple[str, str]]) -> None:
    def fail() -> None:
        with store.transaction():
            store.create("k", "a", {"v": 1}, {})
            store.put_spec("k", "a", {"v": 2})
            store.add_event("a", "k", "made", NOW)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert store.get("k", "a") is None
    assert store.events() == []
    assert heard == []


def test_an_inner_failure_rolls_back_the_outer_transaction_too(store: Store, heard: list[tuple[str, str]]) -> None:
    store.create("k", "kept", {}, {})
    heard.clear()
    def fail() -> None:
        with store.transaction():
            store.create("k", "b", {}, {})
            with store.transaction():
                store.put_spec("k", "kept", {"v": 9})
                raise RuntimeError("inner")

    with pytest.raises(RuntimeError, match="inner"):
        fail()
    assert store.get("k", "b") is None
    record = store.get("k", "kept")
    assert record is not None
    assert (record.spec, record.generation) == ({}, 1)
    assert heard == []


def test_listeners_hear_after_the_outermost_commit_once_per_resource(
    store: Store, heard: list[tuple[str, str]]
) -> None:
    with store.transaction():
        store.create("k", "a", {}, {})
        with store.transaction():
            store.put_spec("k", "a", {"v": 1})
            store.put_spec("k", "b-missing", {"v": 1})
            assert heard == []  # not before the commit
        store.put_spec("k", "a", {"v": 2})
        assert heard == []
    assert heard == [("k", "a"), ("k", "b-missing")]


def test_a_status_write_wakes_nobody_and_a_spec_write_bumps_the_generation(
    store: Store, heard: list[tuple[str, str]]
) -> None:
    assert store.create("k", "a", {}, {"status": "x"})
    assert not store.create("k", "a", {}, {})  # taken
    heard.clear()
    store.write_status("k", "a", {"status": "y"})
    assert heard == []
    store.put_spec("k", "a", {"v": 1})
    record = store.get("k", "a")
    assert record is not None
    assert (record.status, record.generation) == ({"status": "y"}, 2)
    assert [r.id for r in store.records("k")] == ["a"]



def test_a_status_write_tells_nobody_but_a_wake_does_after_commit(store: Store, heard: list[tuple[str, str]]) -> None:
    store.create("k", "a", {"v": 1}, {"status": "active"})
    heard.clear()
    with store.transaction():
        store.write_status("k", "a", {"status": "deleting"})
        assert heard == []
        store.wake("k", "a")  # DeleteUser: a status alone, which the reconciler must carry out
        assert heard == []  # not before the commit
    assert heard == [("k", "a")]


def test_the_version_moves_with_every_write_and_only_then(store: Store) -> None:
    before = store.version()
    assert store.version() == before  # reading changes nothing
    store.get("k", "a")
    store.records("k")
    assert store.version() == before
    seen = [before]
    store.create("k", "a", {}, {"status": "x"})
    seen.append(store.version())
    store.write_status("k", "a", {"status": "y"})
    seen.append(store.version())
    store.put_spec("k", "a", {"v": 1})
    seen.append(store.version())
    store.delete("k", "a")
    seen.append(store.version())
    assert len(set(seen)) == len(seen)


def test_the_version_moves_when_another_connection_commits(tmp_path: Path) -> None:
    ours, theirs = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    try:
        before = ours.version()
        theirs.create("k", "a", {}, {})
        assert ours.version() != before
    finally:
        ours.close()
        theirs.close()


def test_ids_with_a_field_set_in_creation_order(store: Store) -> None:
    for resource_id, limit in (("b", 3), ("a", 0), ("c", None), ("d", 1)):
        spec = {} if limit is None else {"limit": limit}
        store.create("k", resource_id, spec, {})
    store.create("other", "e", {"limit": 5}, {})
    assert store.ids_with("k", "spec", "limit") == ["b", "d"]
    with pytest.raises(ValueError, match="not a JSON field"):
        store.ids_with("k", "spec", "limit') OR 1=1 --")


def test_json_pairs_put_a_spec_field_beside_each_element_of_a_status_array(store: Store) -> None:
    nodes = [{"placement": {"host": "h1"}}, {"placement": None, "moving_to": {"host": "h2"}}, {}]
    store.create("k", "a", {"type": "small"}, {"nodes": nodes})
    store.create("k", "b", {"type": "large"}, {"nodes": [{"placement": {"host": "h1"}}]})
    store.create("k", "c", {"type": "none"}, {})
    assert sorted(store.json_pairs("k", "type", "nodes", "placement.host")) == [("large", "h1"), ("small", "h1")]
    assert store.json_pairs("k", "type", "nodes", "moving_to.host") == [("small", "h2")]


def test_status_keys_give_each_key_of_a_status_object_beside_its_resource(store: Store) -> None:
    store.create("k", "a", {}, {"sentinels": {"shared-1": {"host": "local"}, "shared-2": {}}})
    store.create("k", "b", {}, {"sentinels": {}})
    store.create("k", "c", {}, {})
    store.create("other", "d", {}, {"sentinels": {"sentinel-1": {}}})
    assert sorted(store.status_keys("k", "sentinels")) == [("a", "shared-1"), ("a", "shared-2")]
    with pytest.raises(ValueError, match="not a JSON field"):
        store.status_keys("k", "sentinels') --")
