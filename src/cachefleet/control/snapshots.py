"""Taking, copying, exporting and seeding snapshots: the file and engine effects of the snapshot kinds.

A snapshot is taken on one node: a replica of a group when one serves in sync (ElastiCache spares
the primary), the primary for a final snapshot, the node a request named otherwise. The node saves
(``BGSAVE`` through the internal admin user, waited for by ``engines.redis.bgsave``), then its
``dump.rdb`` is streamed into the snapshot store, which commits the file only once its size and
sha256 are known and it is on disk. Every step can be repeated from the start: a control plane that
dies half-way takes the whole snapshot again on its next pass, and what it left is a temporary file
that the next write replaces, never a file under its final name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cachefleet.control.security import Links
from cachefleet.engines import redis
from cachefleet.engines.resp import ClientTls
from cachefleet.hosts.base import Host, Hosts
from cachefleet.model.credentials import Credentials
from cachefleet.model.errors import Fatal, RestoreFailed, Retry
from cachefleet.model.hosts import LOCAL_HOST
from cachefleet.model.nodes import MEMBER_NODE_ID, NodeKey, Placement, member_key
from cachefleet.model.snapshots import NODE_GROUP
from cachefleet.model.specs import CacheClusterSpec, Export
from cachefleet.model.status import ClusterState, SnapshotState, SnapshotStatus
from cachefleet.store.records import (
    Snapshot,
    all_clusters,
    all_exports,
    all_snapshots,
    find_cluster,
    find_group,
    find_snapshot,
)
from cachefleet.store.snapshots import (
    Buckets,
    SnapshotFileError,
    SnapshotFiles,
    StoredFile,
    check_rdb_header,
    write_file,
)
from cachefleet.store.sqlite import Store

log = logging.getLogger(__name__)

# Written in a node's directory once its seed is in place, before its first start.
SEED_MARKER = "seed.json"
USABLE = frozenset({SnapshotState.AVAILABLE, SnapshotState.COPYING, SnapshotState.RESTORING})


def stored_file(status: SnapshotStatus) -> StoredFile | None:
    if status.size is None or status.sha256 is None:
        return None
    return StoredFile(status.size, status.sha256)


@dataclass(frozen=True)
class SnapshotWorker:
    """Takes snapshots on the node's host, wherever it runs: BGSAVE at the node's address, then its
    RDB file linked (the embedded host) or streamed (a remote host) into the snapshot store; seeds a
    restoring node's directory the same two ways."""

    store: Store
    hosts: Hosts
    files: SnapshotFiles
    exports: Buckets
    imports: Buckets
    credentials: Credentials
    local_address: str  # the embedded host's: where a node recorded before hosts existed runs
    clock: Callable[[], datetime]
    rdb_checker: str | None = None  # redis-check-rdb, run on imported files before a restore
    links: Links | None = None  # how nodes answer (TLS or plain text); None: plain text

    def _tls(self, address: str, port: int) -> ClientTls | None:
        return self.links.tls_for(address, port) if self.links is not None else None

    # -- taking --------------------------------------------------------------------------------

    async def take(self, snapshot: Snapshot) -> SnapshotStatus:
        """Take (or copy) a snapshot in ``creating``: its status once available.

        Raises ``Retry`` while no node can be saved now, ``Fatal`` when it never can.
        """
        spec = snapshot.spec
        if spec.copy_of is not None:
            return await self._copy(snapshot)
        started = time.perf_counter()
        cluster_id = await self._node(snapshot)
        key = member_key(cluster_id)
        at = self._placement(cluster_id)
        host = self.hosts.get(at.host)
        port = await host.port_of(key)
        if port is None:
            raise Retry(f"node {cluster_id} has no port")
        chosen = time.perf_counter()
        await redis.bgsave(
            at.address,
            port,
            user=self.credentials.user,
            password=self.credentials.password,
            tls=self._tls(at.address, port),
        )
        saved = time.perf_counter()
        taken_at = self.clock().isoformat()
        metadata = {"spec": spec.to_json(), "node_cluster_id": cluster_id, "snapshot_created_at": taken_at}
        try:
            async with _node_file(host, key, redis.RDB_FILE) as rdb:
                stored = await asyncio.to_thread(self.files.save, spec.name, NODE_GROUP, rdb, metadata)
        except SnapshotFileError as exc:
            raise Retry(f"the RDB of {cluster_id} could not be stored: {exc}") from exc
        except FileNotFoundError as exc:
            raise Retry(f"the RDB of {cluster_id} is not there yet: {exc}") from exc
        if spec.encryption.enabled:
            # At rest, the data is in the sealed snapshot only: the plain RDB BGSAVE left goes. (On an
            # agent host it stays: the agent's API has no call to delete a node file yet.)
            plain = host.local_path(key, redis.RDB_FILE)
            if plain is not None:
                with contextlib.suppress(FileNotFoundError):
                    plain.unlink()
        log.info(
            "snapshot %s of %s: node chosen in %.3fs, BGSAVE %.3fs, stored %d bytes in %.3fs",
            spec.name,
            cluster_id,
            chosen - started,
            saved - chosen,
            stored.size,
            time.perf_counter() - saved,
        )
        cluster = find_cluster(self.store, cluster_id)
        node = cluster.status.node(MEMBER_NODE_ID) if cluster else None
        return replace(
            snapshot.status,
            status=SnapshotState.AVAILABLE,
            message="",
            node_cluster_id=cluster_id,
            node_created_at=node.created_at if node else None,
            snapshot_created_at=taken_at,
            size=stored.size,
            sha256=stored.sha256,
        )

    async def _node(self, snapshot: Snapshot) -> str:
        """The cluster whose node is saved: one that serves in its role now."""
        spec = snapshot.spec
        if spec.replication_group_id is None:
            cluster = find_cluster(self.store, spec.cache_cluster_id or "")
            if cluster is None:
                raise Fatal(f"cache cluster {spec.cache_cluster_id} no longer exists")
            if await self._serves(cluster.spec.id, primary=True):
                return cluster.spec.id
            raise Retry(f"cache cluster {cluster.spec.id} does not serve yet")
        group = find_group(self.store, spec.replication_group_id)
        if group is None:
            raise Fatal(f"replication group {spec.replication_group_id} no longer exists")
        primary = group.status.primary_cluster_id or group.spec.primary_cluster_id
        if spec.final:
            candidates = [primary]  # the freshest data, as ElastiCache takes a final snapshot
        elif spec.cache_cluster_id:
            candidates = [spec.cache_cluster_id]
        else:
            preferred = snapshot.status.node_cluster_id
            replicas = [m for m in group.spec.members if m != primary]
            candidates = list(dict.fromkeys([*([preferred] if preferred else []), *replicas, primary]))
        for candidate in candidates:
            if candidate in group.spec.members and await self._serves(candidate, primary=candidate == primary):
                return candidate
        raise Retry(f"no member of {group.spec.id} can be saved now")

    def _placement(self, cluster_id: str) -> Placement:
        """Where the cluster's (first) node runs, as its status records it."""
        cluster = find_cluster(self.store, cluster_id)
        node = cluster.status.node(MEMBER_NODE_ID) if cluster else None
        if node is not None and node.placement is not None:
            return node.placement
        return Placement(LOCAL_HOST, self.local_address, "")  # recorded before hosts existed

    async def _serves(self, cluster_id: str, *, primary: bool) -> bool:
        at = self._placement(cluster_id)
        try:
            port = await self.hosts.get(at.host).port_of(member_key(cluster_id))
        except Retry:
            return False  # its host is out of reach
        if port is None:
            return False
        seen = await redis.probe(
            at.address,
            port,
            user=self.credentials.user,
            password=self.credentials.password,
            tls=self._tls(at.address, port),
        )
        if seen is None or seen.loading:
            return False
        return seen.role == "master" if primary else seen.role == "slave" and seen.master_link_up

    async def _copy(self, snapshot: Snapshot) -> SnapshotStatus:
        spec = snapshot.spec
        source = find_snapshot(self.store, spec.copy_of or "")
        expected = stored_file(source.status) if source else None
        if source is None or expected is None or source.status.status not in USABLE:
            raise Fatal(f"source snapshot {spec.copy_of} is not available")
        metadata = {"spec": spec.to_json(), "copy_of": source.spec.name}
        try:
            chunks = self.files.read(source.spec.name, NODE_GROUP, expected)
            stored = await asyncio.to_thread(self.files.write, spec.name, NODE_GROUP, chunks, metadata)
        except SnapshotFileError as exc:
            raise Fatal(f"source snapshot {source.spec.name} cannot be copied: {exc}") from exc
        return replace(
            source.status,
            status=SnapshotState.AVAILABLE,
            message="",
            requested_at=snapshot.status.requested_at,
            size=stored.size,
            sha256=stored.sha256,
        )

    # -- exporting -----------------------------------------------------------------------------

    async def export(self, export: Export) -> StoredFile:
        source = find_snapshot(self.store, export.source)
        expected = stored_file(source.status) if source else None
        if source is None or expected is None:
            raise Fatal(f"snapshot {export.source} is not available")
        try:
            chunks = self.files.read(source.spec.name, NODE_GROUP, expected)
            return await asyncio.to_thread(self.exports.put, export.bucket, export.key, chunks)
        except SnapshotFileError as exc:
            raise Fatal(str(exc)) from exc

    # -- the status a usable snapshot shows ----------------------------------------------------

    def usage(self, name: str) -> SnapshotState:
        """``copying`` while a copy or export reads it, ``restoring`` while a new cluster is seeded
        from it, ``available`` otherwise."""
        copying = any(
            s.spec.copy_of == name and s.status.status == SnapshotState.CREATING for s in all_snapshots(self.store)
        )
        if copying or any(e.spec.source == name for e in all_exports(self.store)):
            return SnapshotState.COPYING
        restoring = any(
            c.spec.seed_snapshot == name and c.status.status == ClusterState.CREATING for c in all_clusters(self.store)
        )
        return SnapshotState.RESTORING if restoring else SnapshotState.AVAILABLE

    # -- seeding a new node --------------------------------------------------------------------

    async def seed(self, key: NodeKey, host: Host) -> None:
        """Put a restoring cluster's RDB in its new node's directory before the node's first start.

        Only a node that has never served and has no seed yet gets one: a node that served has its
        own data, which a seed must never replace. Raises ``RestoreFailed`` when the snapshot or
        object is missing, corrupted or not an RDB; nothing is left in the node's directory then.
        """
        cluster = find_cluster(self.store, key.cluster_id)
        if cluster is None:
            return
        spec = cluster.spec
        if spec.seed_snapshot is None and spec.seed_object is None:
            return
        node = cluster.status.node(key.node_id)
        if (node is not None and node.created_at) or await host.read_file(key, SEED_MARKER) is not None:
            return
        local = host.local_path(key, redis.RDB_FILE)
        with tempfile.TemporaryDirectory(prefix="cachefleet-seed-") as staging:
            dest = local if local is not None else Path(staging) / redis.RDB_FILE
            if local is not None:
                host.local_path(key, SEED_MARKER)  # checks the names before anything is written
                local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                origin = await asyncio.to_thread(self._place, spec, dest)
                if local is None:
                    await host.put_file(key, redis.RDB_FILE, dest)
            except SnapshotFileError as exc:
                with contextlib.suppress(OSError):
                    dest.unlink()
                raise RestoreFailed(spec.id, str(exc)) from exc
        marker = json.dumps({"seed": origin, "at": self.clock().isoformat()}) + "\n"
        await host.write_new(key, SEED_MARKER, marker.encode())

    def _place(self, spec: CacheClusterSpec, dest: Path) -> str:
        if spec.seed_snapshot is not None:
            snapshot = find_snapshot(self.store, spec.seed_snapshot)
            expected = stored_file(snapshot.status) if snapshot else None
            if snapshot is None or expected is None:
                raise SnapshotFileError(f"snapshot {spec.seed_snapshot} is not available")
            self.files.restore(spec.seed_snapshot, NODE_GROUP, expected, dest)
            return f"snapshot:{spec.seed_snapshot}"
        bucket, _, key = (spec.seed_object or "").partition("/")
        write_file(dest, self.imports.get(bucket, key), durable=False)
        check_rdb_header(dest)
        if self.rdb_checker:
            problem = redis.check_rdb(self.rdb_checker, dest)
            if problem is not None:
                raise SnapshotFileError(f"s3://{bucket}/{key} is not a valid RDB file: {problem}")
        return f"s3://{bucket}/{key}"


@contextlib.asynccontextmanager
async def _node_file(host: Host, key: NodeKey, name: str) -> AsyncIterator[Path]:
    """A node file as a local path: the file itself on the embedded host, else a copy fetched into a
    temporary directory beside the snapshots (removed afterwards)."""
    local = host.local_path(key, name)
    if local is not None:
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="cachefleet-fetch-") as staging:
        dest = Path(staging) / name
        await host.fetch_file(key, name, dest)
        yield dest
