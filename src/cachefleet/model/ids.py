"""Identifier rules and ARNs, as ElastiCache applies them (names are stored lowercase)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cachefleet.model.errors import InvalidARN, InvalidParameterValue

_IDENTIFIER = re.compile(r"[a-z][a-z0-9-]*")

REPLICATION_GROUP_ID_MAX = 40
CACHE_CLUSTER_ID_MAX = 50


def check_identifier(param: str, value: str, max_length: int) -> str:
    """Return ``value`` lowercased, or raise the error AWS gives for a malformed identifier."""
    lowered = value.lower()
    if not 1 <= len(lowered) <= max_length:
        raise InvalidParameterValue(
            f"The parameter {param} must be between 1 and {max_length} characters long."
        )
    if not _IDENTIFIER.fullmatch(lowered) or lowered.endswith("-") or "--" in lowered:
        raise InvalidParameterValue(
            f"The parameter {param} is not a valid identifier. Identifiers must begin with a letter; "
            "must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen "
            "or contain two consecutive hyphens."
        )
    return lowered


def member_cluster_id(group_id: str, index: int) -> str:
    """The id of the ``index``-th (1-based) member cluster of a cluster-mode-disabled group."""
    return f"{group_id}-{index:03d}"


def node_id(index: int) -> str:
    return f"{index:04d}"


RESOURCE_TYPES = {
    "cluster": "cache-cluster",
    "replicationgroup": "replication-group",
    "snapshot": "snapshot",
    "parametergroup": "cache-parameter-group",
    "subnetgroup": "cache-subnet-group",
    "securitygroup": "cache-security-group",
    "user": "user",
    "usergroup": "user-group",
}
_KIND_TO_TOKEN = {kind: token for token, kind in RESOURCE_TYPES.items()}


@dataclass(frozen=True)
class Arn:
    region: str
    account: str
    kind: str  # one of RESOURCE_TYPES' values
    name: str

    def __str__(self) -> str:
        return f"arn:aws:elasticache:{self.region}:{self.account}:{_KIND_TO_TOKEN[self.kind]}:{self.name}"


def arn(region: str, account: str, kind: str, name: str) -> str:
    return str(Arn(region, account, kind, name))


def parse_arn(text: str) -> Arn:
    parts = text.split(":")
    if (
        len(parts) != 7
        or parts[0] != "arn"
        or not parts[1].startswith("aws")
        or parts[2] != "elasticache"
        or parts[5] not in RESOURCE_TYPES
        or not parts[6]
    ):
        raise InvalidARN(f"{text} is not a valid ElastiCache ARN.")
    return Arn(region=parts[3], account=parts[4], kind=RESOURCE_TYPES[parts[5]], name=parts[6].lower())
