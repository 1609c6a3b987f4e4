"""At-rest encryption as a replication group and its snapshots carry it (``AtRestEncryptionEnabled``,
``KmsKeyId``), and what ``StorageEncryptionType`` then says.

What it covers on this host is in docs/api-security.md: every snapshot, copy and export file is sealed
whatever this says; with it on, the RDB a snapshot leaves in a node's directory is removed once
sealed. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from cachefleet.model.errors import InvalidParameterCombination

NONE = "none"
SSE_ELASTICACHE = "sse-elasticache"
SSE_KMS = "sse-kms"


@dataclass(frozen=True)
class AtRest:
    enabled: bool = False
    kms_key_id: str | None = None  # the id of a key this installation manages

    @property
    def storage_type(self) -> str:
        if not self.enabled:
            return NONE
        return SSE_KMS if self.kms_key_id else SSE_ELASTICACHE

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Self:
        """Specs written before encryption existed have none."""
        return cls(**(data or {}))


def requested(engine: str, enabled: bool | None, kms_key_id: str | None) -> AtRest:
    """``AtRestEncryptionEnabled`` and a resolved ``KmsKeyId`` of a CreateReplicationGroup call.

    The default is ElastiCache's: on for Valkey, off for Redis OSS. A key asks for encryption, so a
    key with encryption turned off is a contradiction.
    """
    on = enabled if enabled is not None else engine == "valkey"
    if kms_key_id is not None and not on:
        raise InvalidParameterCombination("KmsKeyId can only be given with AtRestEncryptionEnabled set to true.")
    return AtRest(enabled=on, kms_key_id=kms_key_id)
