"""Key material of one installation, kept in ``DIR/keys/`` and never in ``state.db``.

``installation.key`` (32 random bytes, 0600, in a 0700 directory) is made on first start. It
encrypts, with AES-256-GCM, everything secret the product stores elsewhere: IAM users' secret
access keys in ``state.db``, the managed KMS keys, and the data key of every snapshot and export.
Losing it makes those unreadable, so it is never made again over data that needs it: a data
directory whose store holds sealed secrets but whose key is gone refuses to start
(``MissingInstallationKey``).

``kms.json`` lists the KMS keys this installation manages (id, aliases, key material sealed by the
installation key). ``KmsKeyId`` names one of them; a snapshot's data key is then wrapped by it.

Sealed values are ``nonce (12 bytes) || ciphertext || tag``; the caller's ``context`` (what the value
is and which record it belongs to) is authenticated too, so a sealed value moved to another
record does not open.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cachefleet.model.errors import InvalidKMSKey
from cachefleet.model.kms import KeyRef, alias_arn, key_arn, parse_key_ref

KEY_BYTES = 32
NONCE_BYTES = 12
INSTALLATION_KEY = "installation.key"
KMS_FILE = "kms.json"
INSTALLATION = "installation"  # the key-encryption-key id of the installation key itself
DEFAULT_ALIAS = "alias/cachefleet/default"


class SealError(Exception):
    """A sealed value does not open: wrong key, wrong context, or changed bytes."""


class MissingInstallationKey(Exception):
    """Sealed data exists but the key that opens it is gone."""


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if exclusive:
        # Never replace an existing key: link fails if another process made one meanwhile.
        try:
            os.link(tmp, path)
        finally:
            tmp.unlink()
    else:
        os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class InstallationKey:
    """AES-256-GCM with the installation's key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the installation key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, keys_dir: Path, *, create: bool) -> InstallationKey:
        """The key in ``keys_dir``; made there (0600) when missing and ``create`` allows it."""
        path = keys_dir / INSTALLATION_KEY
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            if not create:
                raise MissingInstallationKey(
                    f"{path} is missing, but this data directory holds secrets sealed by it; restore the key "
                    "file from your backup (a new key cannot open them)"
                ) from None
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(keys_dir, 0o700)
        with contextlib.suppress(FileExistsError):
            _write_private(path, AESGCM.generate_key(bit_length=256), exclusive=True)
        return cls(path.read_bytes())

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + 16:
            raise SealError("sealed value is too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
        except InvalidTag:
            raise SealError("sealed value does not open with this installation's key") from None


@dataclass(frozen=True)
class Sealer:
    """Short secrets the product must give back plain later, sealed as text by the installation key.

    A Memcached AuthToken is one: memcached checks a password as given (its SASL database, its ASCII
    authentication file), so a node started later needs the token itself, while Redis keeps hashes
    only. The spec holds the sealed text; ``state.db`` never holds the token plain.
    """

    key: InstallationKey = field(repr=False)
    context: bytes = b"cachefleet secret"

    def seal(self, secret: str) -> str:
        return base64.b64encode(self.key.seal(secret.encode(), self.context)).decode()

    def open(self, sealed: str) -> str:
        """The secret back; ``ValueError`` for text this key did not seal (never the text itself)."""
        try:
            return self.key.open(base64.b64decode(sealed, validate=True), self.context).decode()
        except (SealError, binascii.Error, UnicodeDecodeError):
            raise ValueError("a sealed secret does not open with this installation's key") from None


@dataclass(frozen=True)
class KmsKey:
    key_id: str
    aliases: tuple[str, ...]
    created_at: str
    sealed_material: bytes

    def arn(self, region: str, account: str) -> str:
        return key_arn(region, account, self.key_id)


class KmsKeys:
    """The KMS keys this installation manages (``DIR/keys/kms.json``), and wrapping by key id.

    The file is read again on every lookup (it is tiny and changes only through ``create``), so keys
    that ``cachefleet kms create-key`` adds while the server runs are usable at once.
    """

    def __init__(self, keys_dir: Path, installation: InstallationKey, region: str, account: str) -> None:
        self.path = keys_dir / KMS_FILE
        self._installation = installation
        self.region = region
        self.account = account

    def all(self) -> list[KmsKey]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [
            KmsKey(
                key_id=item["key_id"],
                aliases=tuple(item.get("aliases", ())),
                created_at=item["created_at"],
                sealed_material=base64.b64decode(item["material"]),
            )
            for item in raw.get("keys", [])
        ]

    def create(self, created_at: datetime, alias: str | None = None) -> KmsKey:
        keys = self.all()
        if alias is not None and any(alias in k.aliases for k in keys):
            raise InvalidKMSKey(f"The alias {alias} already names a key.")
        key_id = str(uuid.uuid4())
        material = AESGCM.generate_key(bit_length=256)
        key = KmsKey(
            key_id=key_id,
            aliases=(alias,) if alias else (),
            created_at=created_at.isoformat(),
            sealed_material=self._installation.seal(material, _kms_context(key_id)),
        )
        self._save([*keys, key])
        return key

    def ensure_default(self, created_at: datetime) -> KmsKey:
        for key in self.all():
            if DEFAULT_ALIAS in key.aliases:
                return key
        return self.create(created_at, DEFAULT_ALIAS)

    def _save(self, keys: list[KmsKey]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = {
            "keys": [
                {
                    "key_id": k.key_id,
                    "aliases": list(k.aliases),
                    "created_at": k.created_at,
                    "material": base64.b64encode(k.sealed_material).decode(),
                }
                for k in keys
            ]
        }
        _write_private(self.path, (json.dumps(document, indent=2) + "\n").encode())

    def resolve(self, text: str) -> KmsKey:
        """The managed key a ``KmsKeyId`` names, or ``InvalidKMSKeyFault``."""
        ref = parse_key_ref(text, self.region, self.account)
        for key in self.all():
            if _names(ref, key):
                return key
        raise InvalidKMSKey(
            f"The KMS key {text[:256]} does not exist in this installation (cachefleet kms list shows its keys)."
        )

    def arn(self, key: KmsKey) -> str:
        return key.arn(self.region, self.account)

    def alias_arns(self, key: KmsKey) -> list[str]:
        return [alias_arn(self.region, self.account, a) for a in key.aliases]

    def material(self, key_id: str) -> bytes:
        for key in self.all():
            if key.key_id == key_id:
                return self._installation.open(key.sealed_material, _kms_context(key_id))
        raise SealError(f"KMS key {key_id} is not managed by this installation")


def _names(ref: KeyRef, key: KmsKey) -> bool:
    return ref.key_id == key.key_id if ref.key_id is not None else ref.alias in key.aliases


def _kms_context(key_id: str) -> bytes:
    return f"cachefleet/kms-key/{key_id}".encode()


class Keyring:
    """Wraps and unwraps data keys under a key-encryption key: the installation key, or a KMS key."""

    def __init__(self, installation: InstallationKey, kms: KmsKeys | None = None) -> None:
        self.installation = installation
        self.kms = kms

    def wrap(self, kek: str, data_key: bytes, context: bytes) -> bytes:
        return self._aead(kek)(data_key, context)

    def unwrap(self, kek: str, wrapped: bytes, context: bytes) -> bytes:
        if kek == INSTALLATION:
            return self.installation.open(wrapped, context)
        material = self._kms_material(kek)
        if len(wrapped) < NONCE_BYTES + 16:
            raise SealError("wrapped key is too short")
        try:
            return AESGCM(material).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag:
            raise SealError(f"the data key does not open with KMS key {kek}") from None

    def _aead(self, kek: str) -> Callable[[bytes, bytes], bytes]:
        if kek == INSTALLATION:
            return self.installation.seal
        aead = AESGCM(self._kms_material(kek))

        def seal(plaintext: bytes, context: bytes) -> bytes:
            nonce = os.urandom(NONCE_BYTES)
            return nonce + aead.encrypt(nonce, plaintext, context)

        return seal

    def _kms_material(self, kek: str) -> bytes:
        if self.kms is None:
            raise SealError(f"no KMS keys are available to open a key wrapped by {kek}")
        return self.kms.material(kek)
