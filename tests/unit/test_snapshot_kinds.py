"""Snapshots as kinds, without an engine: the scheduler's requests, copies, usage, failures and deletes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from tests.support.fakes import ADDRESS, CREDENTIALS, Fleet

from cachefleet.control.kinds.snapshot import IN_USE_LOOK, SNAPSHOT_DEADLINE, ExportKind, SnapshotKind
from cachefleet.control.scheduler import SnapshotScheduler
from cachefleet.control.snapshots import SnapshotWorker
from cachefleet.model import snapshots as sn
from cachefleet.model.lifecycle import Event
from cachefleet.model.snapshots import NODE_GROUP
from cachefleet.model.specs import AUTOMATED, MANUAL, Export, SnapshotSpec
from cachefleet.model.status import ClusterState, GroupState, SnapshotState, SnapshotStatus
from cachefleet.store import statuses
from cachefleet.store.kinds import CLUSTERS, EXPORTS, GROUPS, SNAPSHOTS
from cachefleet.store.snapshots import LocalBuckets, LocalSnapshotFiles, SnapshotFiles

RDB = b"REDIS0011" + b"\x00" * 64


def worker(fleet: Fleet, tmp_path: Path) -> SnapshotWorker:
    return SnapshotWorker(
        store=fleet.store,
        hosts=fleet.hosts,
        files=LocalSnapshotFiles(tmp_path / "snapshots"),
        exports=LocalBuckets(tmp_path / "exports"),
        imports=LocalBuckets(tmp_path / "imports"),
        credentials=CREDENTIALS,
        local_address=ADDRESS,
        clock=lambda: fleet.clock,
    )


def snapshot(fleet: Fleet, name: str, status: SnapshotState = SnapshotState.AVAILABLE, **fields: object) -> None:
    spec = SnapshotSpec(name, MANUAL, "redis", "7.0.15", "cache.t3.micro", fleet.clock, replication_group_id="g")
    spec = replace(spec, **fields)  # type: ignore[arg-type]
    statuses.create(fleet.store, SNAPSHOTS, name, spec, SnapshotStatus(SnapshotState.CREATING))
    if status != SnapshotState.CREATING:
        fleet.put_status(SNAPSHOTS.name, name, SnapshotStatus(status, requested_at=fleet.clock.isoformat()))


def stored(fleet: Fleet, files: SnapshotFiles, name: str) -> None:
    """``name`` available, with its file in the store."""
    snapshot(fleet, name)
    saved = files.write(name, NODE_GROUP, iter([RDB]), {"spec": {}})
    status = SnapshotStatus(SnapshotState.AVAILABLE, size=saved.size, sha256=saved.sha256)
    fleet.put_status(SNAPSHOTS.name, name, status)


def events(fleet: Fleet) -> list[str]:
    return [e.message for e in fleet.store.events()]


def test_the_scheduler_asks_for_a_due_snapshot_and_shows_its_source_snapshotting() -> None:
    fleet = Fleet()
    fleet.group(snapshot_retention_limit=1, snapshot_window="11:30-13:00")
    SnapshotScheduler(fleet.store, schedule_clock=lambda: fleet.clock, clock=lambda: fleet.clock).tick()
    name = sn.automatic_name("g", fleet.clock)
    taken = SNAPSHOTS.get(fleet.store, name)
    assert (taken.spec.source, taken.status.status) == (AUTOMATED, SnapshotState.CREATING)
    assert taken.status.node_cluster_id == "g-002"  # a replica that serves, sparing the primary
    assert fleet.status(GROUPS.name, "g").status == GroupState.SNAPSHOTTING
    assert fleet.status(CLUSTERS.name, "g-002").status == ClusterState.SNAPSHOTTING


def test_the_scheduler_deletes_automatic_snapshots_past_their_retention() -> None:
    fleet = Fleet()
    fleet.group(snapshot_retention_limit=1, snapshot_window="01:00-02:00")
    old = fleet.clock - timedelta(days=3)
    snapshot(fleet, "automatic.g-old", source=AUTOMATED, created_at=old)
    SnapshotScheduler(fleet.store, schedule_clock=lambda: fleet.clock, clock=lambda: fleet.clock).tick()
    pruned = SNAPSHOTS.get(fleet.store, "automatic.g-old")
    assert (pruned.spec.deleting, pruned.status.status) == (True, SnapshotState.DELETING)
    assert events(fleet) == ["Automatic snapshot automatic.g-old deleted: older than the retention limit"]


def test_a_snapshot_whose_source_is_gone_fails_and_its_source_is_told(tmp_path: Path) -> None:
    fleet = Fleet()
    snapshot(fleet, "s1", SnapshotState.CREATING)
    kind = SnapshotKind(fleet.services, worker(fleet, tmp_path))
    assert asyncio.run(kind.work("s1")) is None
    failed = SNAPSHOTS.get(fleet.store, "s1").status
    assert (failed.status, failed.message) == (SnapshotState.FAILED, "replication group g no longer exists")
    assert events(fleet) == [
        "Snapshot failed for snapshot with ID 's1' of replication group with ID 'g': "
        "replication group g no longer exists"
    ]
    assert ("replication-group", "g") in fleet.woken


def test_a_snapshot_no_node_can_be_saved_for_fails_after_its_deadline(tmp_path: Path) -> None:
    fleet = Fleet()
    fleet.group(running=False)
    snapshot(fleet, "s1", SnapshotState.CREATING)
    late = (fleet.clock - SNAPSHOT_DEADLINE - timedelta(seconds=1)).isoformat()
    fleet.put_status(SNAPSHOTS.name, "s1", SnapshotStatus(SnapshotState.CREATING, requested_at=late))
    asyncio.run(SnapshotKind(fleet.services, worker(fleet, tmp_path)).work("s1"))
    failed = SNAPSHOTS.get(fleet.store, "s1").status
    assert failed.status == SnapshotState.FAILED
    assert failed.message.startswith("timed out: ")


def test_a_copy_is_written_and_its_source_shows_copying_until_then(tmp_path: Path) -> None:
    fleet = Fleet()
    files = worker(fleet, tmp_path)
    stored(fleet, files.files, "s1")
    snapshot(fleet, "s2", SnapshotState.CREATING, copy_of="s1")
    statuses.change(fleet.store, SNAPSHOTS, "s1", Event.COPY)
    kind = SnapshotKind(fleet.services, files)
    # While something reads it, it comes back soon by itself (the resync is slow); then not.
    assert asyncio.run(kind.work("s1")) == IN_USE_LOOK
    assert SNAPSHOTS.get(fleet.store, "s1").status.status == SnapshotState.COPYING  # a copy still reads it
    asyncio.run(kind.work("s2"))
    copy = SNAPSHOTS.get(fleet.store, "s2").status
    assert (copy.status, copy.sha256) == (SnapshotState.AVAILABLE, hashlib.sha256(RDB).hexdigest())
    assert "Snapshot s2 copied from snapshot s1" in events(fleet)
    assert asyncio.run(kind.work("s1")) is None
    assert SNAPSHOTS.get(fleet.store, "s1").status.status == SnapshotState.AVAILABLE


def test_an_export_writes_the_object_then_goes(tmp_path: Path) -> None:
    fleet = Fleet()
    work = worker(fleet, tmp_path)
    stored(fleet, work.files, "s1")
    (tmp_path / "exports" / "bucket").mkdir(parents=True)
    export = Export("s1", "bucket", "s1-copy.rdb", fleet.clock.isoformat())
    statuses.create(fleet.store, EXPORTS, export.id, export)
    asyncio.run(ExportKind(fleet.services, work).work(export.id))
    assert (tmp_path / "exports" / "bucket" / "s1-copy.rdb").read_bytes() == RDB
    assert EXPORTS.find(fleet.store, export.id) is None
    assert events(fleet)[-1].startswith("Snapshot s1 exported to s3://bucket/s1-copy.rdb")


def test_a_deleted_snapshot_loses_its_files_and_its_record(tmp_path: Path) -> None:
    fleet = Fleet()
    work = worker(fleet, tmp_path)
    stored(fleet, work.files, "s1")
    SNAPSHOTS.put_spec(fleet.store, "s1", replace(SNAPSHOTS.get(fleet.store, "s1").spec, deleting=True))
    asyncio.run(SnapshotKind(fleet.services, work).work("s1"))
    assert SNAPSHOTS.find(fleet.store, "s1") is None
    assert not (tmp_path / "snapshots" / "s1").exists()
    assert events(fleet) == ["Snapshot s1 deleted"]


def test_the_scheduler_looks_again_only_when_the_store_or_the_minute_changed() -> None:
    fleet = Fleet()
    fleet.group(snapshot_retention_limit=1, snapshot_window="01:00-02:00")  # not due: no writes of its own
    now = [fleet.clock.replace(second=10)]
    turned = asyncio.Event()  # set on each turn of the loop: it reads the clock once a turn

    def clock() -> datetime:
        turned.set()
        return now[0]

    class Counting(SnapshotScheduler):
        ticks = 0

        def tick(self) -> None:
            Counting.ticks += 1
            super().tick()

    scheduler = Counting(fleet.store, schedule_clock=clock, clock=lambda: fleet.clock, interval=0.001)

    async def turns(count: int) -> int:
        for _ in range(count):
            turned.clear()
            await turned.wait()
        return Counting.ticks

    async def scenario() -> list[int]:
        task = asyncio.get_running_loop().create_task(scheduler.run())
        try:
            seen = [await turns(20)]  # the first turn looks; the next 19 see nothing new
            fleet.store.add_event("g", "replication-group", "anything written", fleet.clock)
            seen.append(await turns(20))
            now[0] += timedelta(seconds=30)  # the same minute
            seen.append(await turns(20))
            now[0] += timedelta(minutes=1)
            seen.append(await turns(20))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return seen

    assert asyncio.run(scenario()) == [1, 2, 2, 3]
