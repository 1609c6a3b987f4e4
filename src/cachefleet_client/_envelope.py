"""How a cached value is laid out in Redis, and the key names around it (internal).

A value is stored as a 12-byte header and the codec's bytes. The header holds a magic tag, the
soft expiry (unix seconds, as a double) and flags (bit 0: a negative entry, meaning "the loader
found nothing"). The Redis TTL is the hard expiry: soft expiry plus a stale window during which
the old value may still be served while one caller reloads it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .codecs import Codec

_HEADER = struct.Struct(">3sdB")
_MAGIC = b"cf\x01"
_NEGATIVE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    value: Any
    soft_expiry: float
    negative: bool

    def fresh(self, now: float) -> bool:
        return now < self.soft_expiry


def pack(codec: Codec, value: Any, soft_expiry: float) -> bytes:
    if value is None:
        return _HEADER.pack(_MAGIC, soft_expiry, _NEGATIVE)
    return _HEADER.pack(_MAGIC, soft_expiry, 0) + codec.encode(value)


def unpack(codec: Codec, raw: bytes | str) -> Entry | None:
    """The entry, or None when `raw` was not written by this package (treated as a miss)."""
    if not isinstance(raw, bytes):
        raise TypeError("cache clients must return bytes: build them without decode_responses=True")
    if len(raw) < _HEADER.size or not raw.startswith(_MAGIC):
        return None
    _, soft_expiry, flags = _HEADER.unpack_from(raw)
    if flags & _NEGATIVE:
        return Entry(None, soft_expiry, True)
    return Entry(codec.decode(raw[_HEADER.size :]), soft_expiry, False)


def lock_key(full_key: str) -> str:
    """The lock key for a value key, in the same cluster slot so one script can touch both.

    Redis Cluster hashes only the first non-empty `{...}` of a key when there is one. If the
    value key has such a tag, appending keeps it; otherwise wrapping the whole key in braces makes
    the hashed part equal the value key itself.
    """
    start = full_key.find("{")
    if start != -1:
        end = full_key.find("}", start + 1)
        if end > start + 1:
            return full_key + ":lock"
    if "}" in full_key:
        # No valid tag but a stray brace: wrapping would cut the tag short. Same slot only outside
        # cluster mode; such keys are rare enough not to warrant an escape scheme.
        return full_key + ":lock"
    return "{" + full_key + "}:lock"
