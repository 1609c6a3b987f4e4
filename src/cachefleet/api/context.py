"""What every API handler is given: passed in from the composition root, never global."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cachefleet.engines.installed import EngineBinary
from cachefleet.model.ids import arn
from cachefleet.settings import Settings
from cachefleet.store.snapshots import Buckets
from cachefleet.store.sqlite import Store


@dataclass(frozen=True)
class Context:
    store: Store
    settings: Settings
    engines: Sequence[EngineBinary]
    clock: Callable[[], datetime]
    # The export area (CopySnapshot TargetBucket): the API checks that a bucket exists, as S3 would.
    exports: Buckets | None = None

    def arn(self, kind: str, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, kind, name)
