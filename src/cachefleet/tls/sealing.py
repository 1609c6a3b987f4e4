"""Customer secrets the product must give back later, sealed with the installation's own key.

Redis checks passwords against SHA-256 hashes, so a Redis token is kept as a hash only. memcached
(its SASL database, its ASCII authentication file) checks a password as given: a Memcached node
started later (a replacement, a node added, a reboot) needs the AuthToken itself. The API seals it
at once and the spec keeps the sealed text; ``state.db`` never holds it plain. The key lives in
``DIR/tls/`` beside the CA key (0600), not in ``state.db``, so a copy of the database alone opens
nothing. Sealing is Fernet (AES-128-CBC with HMAC-SHA256) from ``cryptography``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from cachefleet.tls.files import TLS_DIR, write_atomic

SEAL_KEY_FILE = "seal.key"


@dataclass(frozen=True)
class Sealer:
    key: bytes = field(repr=False)

    def seal(self, secret: str) -> str:
        return Fernet(self.key).encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret back; ``ValueError`` for text this key did not seal (never the text itself)."""
        try:
            return Fernet(self.key).decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("a sealed secret does not open with this installation's key") from None

    def __repr__(self) -> str:
        return "Sealer(key=<hidden>)"


def seal_key_path(data_dir: Path) -> Path:
    return data_dir / TLS_DIR / SEAL_KEY_FILE


def ensure_sealer(data_dir: Path) -> Sealer:
    """The installation's sealing key, made on first use (0600 in ``DIR/tls/``)."""
    path = seal_key_path(data_dir)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        write_atomic(path, Fernet.generate_key(), 0o600)
    return Sealer(path.read_bytes().strip())
