"""Authenticated encryption of snapshot and export files, streamed chunk by chunk.

Every file gets its own random data key, wrapped by a key-encryption key (the installation key or a
managed KMS key, ``store.keys.Keyring``) and stored in the file's header. The layout::

    b"CFSEAL1\\n"                              magic
    u32 header length, header (JSON)           {"kek": ..., "wrapped_key": ..., "nonce_prefix": ...}
    chunks: u32 length|final bit, ciphertext   AES-256-GCM, at most CHUNK bytes of plaintext each

Each chunk's nonce is the header's random 8-byte prefix plus the chunk number, and its associated
data binds the header's sha256, the chunk number and whether it is the last one. So a changed byte
anywhere, chunks reordered, removed or added, or a file cut short all fail authentication
(``SealError``), and the reader raises before it yields anything that was not authenticated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cachefleet.store.keys import Keyring, SealError

MAGIC = b"CFSEAL1\n"
CHUNK = 1 << 20
_FINAL = 0x80000000
_MAX_HEADER = 64 * 1024
_TAG = 16
_DATA_KEY_CONTEXT = b"cachefleet/file-data-key"


def is_sealed(head: bytes) -> bool:
    """Whether a file starting with ``head`` (at least 8 bytes of it) is one of ours."""
    return head[: len(MAGIC)] == MAGIC


def header_of(first: bytes) -> dict[str, Any]:
    """The header of a sealed file, from its first bytes (enough to hold the header)."""
    if not is_sealed(first) or len(first) < len(MAGIC) + 4:
        raise SealError("not a cachefleet sealed file")
    (length,) = struct.unpack(">I", first[len(MAGIC) : len(MAGIC) + 4])
    raw = first[len(MAGIC) + 4 : len(MAGIC) + 4 + length]
    if length > _MAX_HEADER or len(raw) != length:
        raise SealError("the sealed file's header is cut short")
    return _parse_header(raw)


def seal(chunks: Iterable[bytes], keyring: Keyring, kek: str) -> Iterator[bytes]:
    """The sealed form of the bytes of ``chunks``, under a new data key wrapped by ``kek``."""
    data_key = AESGCM.generate_key(bit_length=256)
    prefix = os.urandom(8)
    header = json.dumps(
        {
            "v": 1,
            "kek": kek,
            "wrapped_key": base64.b64encode(keyring.wrap(kek, data_key, _DATA_KEY_CONTEXT)).decode(),
            "nonce_prefix": base64.b64encode(prefix).decode(),
        },
        sort_keys=True,
    ).encode()
    yield MAGIC + struct.pack(">I", len(header)) + header
    aead = AESGCM(data_key)
    digest = hashlib.sha256(header).digest()
    index = 0
    pending = b""
    for chunk in _rechunk(chunks):
        if pending:
            yield _frame(aead, prefix, digest, index, pending, final=False)
            index += 1
        pending = chunk
    yield _frame(aead, prefix, digest, index, pending, final=True)


def _rechunk(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    if buffer:
        yield bytes(buffer)


def _frame(aead: AESGCM, prefix: bytes, digest: bytes, index: int, plaintext: bytes, *, final: bool) -> bytes:
    ciphertext = aead.encrypt(_nonce(prefix, index), plaintext, _aad(digest, index, final))
    return struct.pack(">I", len(ciphertext) | (_FINAL if final else 0)) + ciphertext


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(digest: bytes, index: int, final: bool) -> bytes:
    return digest + struct.pack(">QB", index, 1 if final else 0)


def unseal(chunks: Iterable[bytes], keyring: Keyring) -> Iterator[bytes]:
    """The plaintext of a sealed file, authenticated chunk by chunk; ``SealError`` on any change."""
    reader = _Reader(iter(chunks))
    if reader.take(len(MAGIC)) != MAGIC:
        raise SealError("not a cachefleet sealed file")
    (length,) = struct.unpack(">I", reader.exact(4))
    if length > _MAX_HEADER:
        raise SealError("the sealed file's header is too long")
    raw = reader.exact(length)
    header = _parse_header(raw)
    try:
        wrapped = base64.b64decode(header["wrapped_key"], validate=True)
        prefix = base64.b64decode(header["nonce_prefix"], validate=True)
    except (ValueError, TypeError) as exc:
        raise SealError("the sealed file's header is damaged") from exc
    if len(prefix) != 8:
        raise SealError("the sealed file's header is damaged")
    data_key = keyring.unwrap(str(header["kek"]), wrapped, _DATA_KEY_CONTEXT)
    aead = AESGCM(data_key)
    digest = hashlib.sha256(raw).digest()
    index = 0
    while True:
        (word,) = struct.unpack(">I", reader.exact(4))
        final = bool(word & _FINAL)
        size = word & ~_FINAL
        if size < _TAG or size > CHUNK + _TAG:
            raise SealError(f"chunk {index} of the sealed file has an impossible length")
        ciphertext = reader.exact(size)
        try:
            plaintext = aead.decrypt(_nonce(prefix, index), ciphertext, _aad(digest, index, final))
        except InvalidTag:
            raise SealError(f"chunk {index} of the sealed file fails authentication (the file was changed)") from None
        yield plaintext
        if final:
            break
        index += 1
    if reader.take(1):
        raise SealError("the sealed file has bytes after its last chunk")


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SealError("the sealed file's header is damaged") from exc
    if (
        not isinstance(header, dict)
        or header.get("v") != 1
        or not {"kek", "wrapped_key", "nonce_prefix"} <= set(header)
    ):
        raise SealError("the sealed file's header is damaged")
    return header


class _Reader:
    """Exact reads over an iterator of byte chunks of any size."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def exact(self, size: int) -> bytes:
        out = self.take(size)
        if len(out) != size:
            raise SealError("the sealed file is cut short")
        return out
