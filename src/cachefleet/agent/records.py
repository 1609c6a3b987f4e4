"""What the agent supervises, persisted so that a restarted agent knows it again.

One JSON file per node, ``<root>/<cluster id>/<node id>.json`` (root ``DIR/supervised``, mode 0700;
files 0600): the argv of its last start, its restart policy, and whether it should run. Only the
argv is kept, not the files of the spec: they are in the node directory already, and a process may
have rewritten them since (Sentinel rewrites its config as it learns), so a restart must not put the
rendered ones back. A record is written only when it changes, atomically, and synced: after a power
loss it is what tells the agent which nodes to start again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from cachefleet.hosts.agent_api import NAME, policy_from_json, policy_to_json
from cachefleet.hosts.base import RestartPolicy
from cachefleet.model.nodes import NodeKey, node_key
from cachefleet.tls.files import write_atomic


@dataclass(frozen=True)
class Record:
    argv: tuple[str, ...]
    restart: RestartPolicy | None
    run: bool


class Records:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._known: dict[NodeKey, Record] = {}

    def load(self) -> dict[NodeKey, Record]:
        """Every readable record; an unreadable one (a torn write cannot happen, a hand edit can) is
        skipped, so its node is left alone rather than started from a guess."""
        found: dict[NodeKey, Record] = {}
        if self._root.is_dir():
            for path in sorted(self._root.glob("*/*.json")):
                cluster, node = path.parent.name, path.stem
                if not (NAME.fullmatch(cluster) and NAME.fullmatch(node)):
                    continue
                try:
                    data = json.loads(path.read_text())
                    record = Record(
                        argv=tuple(str(arg) for arg in data["argv"]),
                        restart=policy_from_json(data.get("restart")),
                        run=bool(data["run"]),
                    )
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                found[node_key(cluster, node)] = record
        self._known = dict(found)
        return found

    def put(self, key: NodeKey, record: Record) -> None:
        if self._known.get(key) == record:
            return
        directory = self._root / key.cluster_id
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{key.node_id}.json"
        text = json.dumps({"argv": list(record.argv), "restart": policy_to_json(record.restart), "run": record.run})
        write_atomic(path, text.encode(), 0o600)  # synced: it outlives a power loss
        self._known[key] = record

    def delete(self, key: NodeKey) -> None:
        path = self._root / key.cluster_id / f"{key.node_id}.json"
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only once the cluster has no record left
        self._known.pop(key, None)
