"""TLS in transit of a replication group: ``TransitEncryptionEnabled`` and ``TransitEncryptionMode``.

``required`` takes TLS only; ``preferred`` takes TLS and plain text on the same endpoints. A group
created with TLS is ``required`` unless told otherwise. A running group moves step by step, as on
ElastiCache: off -> ``preferred`` (enabling needs ``preferred`` in the same call) -> ``required``, and
back the same way (``preferred`` first, then ``TransitEncryptionEnabled=false``). A group with access
control (an AUTH token or a user group) keeps its TLS setting: the token would otherwise cross the
network in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cachefleet.model.errors import InvalidParameterCombination, InvalidParameterValue


class TransitMode(StrEnum):
    PREFERRED = "preferred"
    REQUIRED = "required"


@dataclass(frozen=True)
class Transit:
    enabled: bool = False
    mode: TransitMode | None = None  # None exactly when not enabled

    def __post_init__(self) -> None:
        if self.enabled != (self.mode is not None):
            raise ValueError("a transit mode goes with transit encryption, and only with it")

    @property
    def accepts_plaintext(self) -> bool:
        return self.mode is not TransitMode.REQUIRED


OFF = Transit()


def parse_mode(value: str | None) -> TransitMode | None:
    if value is None:
        return None
    try:
        return TransitMode(value)
    except ValueError:
        raise InvalidParameterValue(
            f"Invalid TransitEncryptionMode {value!r}: expected preferred or required."
        ) from None


def at_creation(enabled: bool | None, mode: str | None) -> Transit:
    """The TLS setting of a new group (``CreateReplicationGroup``, ``CreateCacheCluster``)."""
    chosen = parse_mode(mode)
    if not enabled:
        if chosen is not None:
            raise InvalidParameterCombination("TransitEncryptionMode requires TransitEncryptionEnabled to be true.")
        return OFF
    return Transit(True, chosen or TransitMode.REQUIRED)


def modified(current: Transit, enabled: bool | None, mode: str | None, *, access_control: bool) -> Transit:
    """The TLS setting after ``ModifyReplicationGroup``; AWS's errors for a step it does not allow."""
    chosen = parse_mode(mode)
    if enabled is None and chosen is None:
        return current
    target_enabled = current.enabled if enabled is None else enabled
    if not target_enabled:
        if chosen is not None:
            raise InvalidParameterCombination("TransitEncryptionMode requires TransitEncryptionEnabled to be true.")
        target = OFF
    else:
        target = Transit(True, chosen or current.mode or TransitMode.REQUIRED)
    if target == current:
        return current
    if access_control:
        raise InvalidParameterCombination(
            "Modification of transit encryption is not supported for access control enabled clusters."
        )
    if not current.enabled and chosen is not TransitMode.PREFERRED:
        raise InvalidParameterCombination(
            "To enable encryption in transit on a running group, set TransitEncryptionMode to preferred in the "
            "same call; set it to required in a later call."
        )
    if current.mode is TransitMode.REQUIRED and not target.enabled:
        raise InvalidParameterCombination(
            "To disable encryption in transit, set TransitEncryptionMode to preferred first."
        )
    return target
