"""Installation key, managed KMS keys and the sealed-file format, with real AES-GCM on real files."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachefleet.model.errors import InvalidKMSKey
from cachefleet.store import envelope
from cachefleet.store.keys import (
    DEFAULT_ALIAS,
    INSTALLATION,
    InstallationKey,
    Keyring,
    KmsKeys,
    MissingInstallationKey,
    Sealer,
    SealError,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
REGION, ACCOUNT = "us-east-1", "000000000000"


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def keyring(keys_dir: Path) -> Keyring:
    installation = InstallationKey.load(keys_dir, create=True)
    return Keyring(installation, KmsKeys(keys_dir, installation, REGION, ACCOUNT))


def test_the_installation_key_is_private_and_made_once(keys_dir: Path) -> None:
    first = InstallationKey.load(keys_dir, create=True)
    path = keys_dir / "installation.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    sealed = first.seal(b"secret", b"ctx")
    again = InstallationKey.load(keys_dir, create=True)
    assert again.open(sealed, b"ctx") == b"secret"
    assert len(path.read_bytes()) == 32


def test_a_missing_key_is_not_replaced_when_it_must_exist(keys_dir: Path) -> None:
    with pytest.raises(MissingInstallationKey, match="restore the key"):
        InstallationKey.load(keys_dir, create=False)
    assert not keys_dir.exists()


def test_sealed_values_are_bound_to_their_context_and_key(keys_dir: Path, tmp_path: Path) -> None:
    key = InstallationKey.load(keys_dir, create=True)
    sealed = key.seal(b"wJalrXUtnFEMI", b"iam-access-key/AKIA1")
    assert b"wJalrXUtnFEMI" not in sealed
    with pytest.raises(SealError):
        key.open(sealed, b"iam-access-key/AKIA2")
    with pytest.raises(SealError):
        key.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"iam-access-key/AKIA1")
    other = InstallationKey.load(tmp_path / "other", create=True)
    with pytest.raises(SealError):
        other.open(sealed, b"iam-access-key/AKIA1")


def test_kms_keys_resolve_by_id_arn_and_alias(keys_dir: Path, keyring: Keyring) -> None:
    kms = keyring.kms
    assert kms is not None
    default = kms.ensure_default(NOW)
    assert kms.ensure_default(NOW) == default  # made once
    other = kms.create(NOW, "alias/orders")
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{default.key_id}"
    assert kms.resolve(default.key_id) == default
    assert kms.resolve(arn) == default
    assert kms.resolve(DEFAULT_ALIAS) == default
    assert kms.resolve(f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders") == other
    assert stat.S_IMODE((keys_dir / "kms.json").stat().st_mode) == 0o600
    for text, message in [
        (f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{default.key_id}", "region"),
        (f"arn:aws:kms:{REGION}:123456789012:key/{default.key_id}", "account"),
        ("arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000", "does not exist"),
        ("alias/aws/elasticache", "Invalid KmsKeyId"),
        ("not a key", "Invalid KmsKeyId"),
    ]:
        with pytest.raises(InvalidKMSKey, match=message):
            kms.resolve(text)
    with pytest.raises(InvalidKMSKey, match="already names"):
        kms.create(NOW, "alias/orders")


def _seal(keyring: Keyring, data: bytes, kek: str = INSTALLATION, piece: int = 70_000) -> bytes:
    chunks = [data[i : i + piece] for i in range(0, len(data), piece)]
    return b"".join(envelope.seal(chunks, keyring, kek))


def _unseal(keyring: Keyring, sealed: bytes, piece: int = 4096) -> bytes:
    return b"".join(envelope.unseal([sealed[i : i + piece] for i in range(0, len(sealed), piece)], keyring))


@pytest.mark.parametrize("size", [0, 1, envelope.CHUNK - 1, envelope.CHUNK, envelope.CHUNK * 2 + 17])
def test_a_sealed_stream_round_trips_at_any_size(keyring: Keyring, size: int) -> None:
    data = os.urandom(size)
    sealed = _seal(keyring, data)
    assert envelope.is_sealed(sealed)
    assert envelope.header_of(sealed[:4096])["kek"] == INSTALLATION
    assert _unseal(keyring, sealed) == data


def test_a_kms_key_wraps_the_data_key(keyring: Keyring) -> None:
    assert keyring.kms is not None
    key = keyring.kms.create(NOW, "alias/x")
    marker = b"MARKER-1234567890" * 1000
    sealed = _seal(keyring, marker, kek=key.key_id)
    assert b"MARKER" not in sealed
    assert _unseal(keyring, sealed) == marker


def test_every_kind_of_tampering_is_detected(keyring: Keyring) -> None:
    data = os.urandom(envelope.CHUNK * 2 + 100)
    sealed = _seal(keyring, data)
    header_end = len(envelope.MAGIC) + 4 + int.from_bytes(sealed[8:12], "big")
    first_chunk = header_end + 4 + envelope.CHUNK + 16
    cases = {
        "a flipped byte": sealed[:-50] + bytes([sealed[-50] ^ 1]) + sealed[-49:],
        "cut short": sealed[:-1],
        "last chunk dropped": sealed[: first_chunk + 4 + envelope.CHUNK + 16],
        "bytes appended": sealed + b"x",
        "chunks swapped": sealed[:header_end]
        + sealed[first_chunk : first_chunk + 4 + envelope.CHUNK + 16]
        + sealed[header_end:first_chunk]
        + sealed[first_chunk + 4 + envelope.CHUNK + 16 :],
        "header changed": sealed.replace(b'"v": 1', b'"v": 1 ', 1),
        "not sealed at all": b"REDIS0011" + data,
    }
    refused = []
    for name, changed in cases.items():
        with pytest.raises(SealError):
            _unseal(keyring, changed)
        refused.append(name)
    assert len(refused) == len(cases)


def test_another_installations_key_cannot_open_a_file(keyring: Keyring, tmp_path: Path) -> None:
    sealed = _seal(keyring, b"data")
    stranger = Keyring(InstallationKey.load(tmp_path / "elsewhere", create=True))
    with pytest.raises(SealError):
        _unseal(stranger, sealed)


def test_a_sealed_secret_opens_with_its_key_only(keys_dir: Path, tmp_path: Path) -> None:
    sealer = Sealer(InstallationKey.load(keys_dir, create=True))
    sealed = sealer.seal("memcached-token-0123456789")
    assert "memcached-token" not in sealed
    assert sealer.open(sealed) == "memcached-token-0123456789"
    other = Sealer(InstallationKey.load(tmp_path / "other", create=True))
    for wrong in (sealed[:-4] + "AAAA", "not base64!", ""):
        with pytest.raises(ValueError, match="does not open") as refused:
            sealer.open(wrong)
        assert "memcached-token" not in str(refused.value)
    with pytest.raises(ValueError, match="does not open"):
        other.open(sealed)
