"""The forms a ``KmsKeyId`` takes, and which of them name a key this installation manages.

AWS accepts a key id (``1234abcd-...``), a key ARN (``arn:aws:kms:<region>:<account>:key/<id>``), an
alias name (``alias/name``) or an alias ARN. cachefleet manages its own keys (``store.keys``): an id
or alias of one of them, in this installation's region and account, names it; anything else, an
AWS KMS key in particular, is refused with ``InvalidKMSKeyFault`` since this server cannot use it.
Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cachefleet.model.errors import InvalidKMSKey

_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ALIAS = re.compile(r"alias/[A-Za-z0-9/_-]{1,250}")
_ARN = re.compile(r"arn:aws:kms:([a-z0-9-]*):([0-9]{12}):(key/.+|alias/.+)")


@dataclass(frozen=True)
class KeyRef:
    """What a KmsKeyId names: a key id or an alias (exactly one is set)."""

    key_id: str | None = None
    alias: str | None = None


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, alias: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{alias}"


def is_key_id(text: str) -> bool:
    return _KEY_ID.fullmatch(text) is not None


def is_alias(text: str) -> bool:
    return _ALIAS.fullmatch(text) is not None and not text.startswith("alias/aws/")


def parse_key_ref(text: str, region: str, account: str) -> KeyRef:
    """The key ``text`` names, or ``InvalidKMSKeyFault`` when it cannot be one of ours."""
    match = _ARN.fullmatch(text)
    if match is not None:
        if (match.group(1), match.group(2)) != (region, account):
            raise InvalidKMSKey(
                f"The KMS key {text} is not in this installation's region {region} and account {account}: "
                "cachefleet can only use the keys it manages (cachefleet kms list)."
            )
        text = match.group(3)
    if text.startswith("key/"):
        text = text[len("key/") :]
    if is_key_id(text):
        return KeyRef(key_id=text)
    if is_alias(text):
        return KeyRef(alias=text)
    raise InvalidKMSKey(f"Invalid KmsKeyId {text[:256]}: use the id, ARN or alias of a key cachefleet manages.")
