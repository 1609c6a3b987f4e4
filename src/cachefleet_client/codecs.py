"""Value serialization for the cache patterns: a codec turns a Python value into bytes and back.

JSON is the default because every language can read it. msgpack is smaller and faster for
binary-heavy values; it is an optional dependency and is imported only when a `MsgpackCodec`
is built, so applications that never ask for it do not need it installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Codec", "JsonCodec", "MsgpackCodec"]


class Codec(Protocol):
    """Anything with `encode(value) -> bytes` and `decode(bytes) -> value`."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class JsonCodec:
    """Compact UTF-8 JSON. `default` converts values json cannot (as in `json.dumps`)."""

    def __init__(self, *, default: Callable[[Any], Any] | None = None) -> None:
        self._encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=default)
        self._decoder = json.JSONDecoder()

    def encode(self, value: Any) -> bytes:
        return self._encoder.encode(value).encode()

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data.decode())


class MsgpackCodec:
    """msgpack (optional extra). Raises `ImportError` at construction when msgpack is missing."""

    def __init__(self) -> None:
        try:
            # Imported by name so that msgpack stays optional and untyped modules stay out of mypy's view.
            self._msgpack: Any = importlib.import_module("msgpack")
        except ImportError as exc:
            raise ImportError("MsgpackCodec needs the 'msgpack' package: pip install msgpack") from exc

    def encode(self, value: Any) -> bytes:
        data: bytes = self._msgpack.packb(value, use_bin_type=True)
        return data

    def decode(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False)
