"""Encryption at rest for secrets the control plane must read back (TOTP seeds).

Fernet (AES-128-CBC + HMAC-SHA256) with a key in a 0600 file beside the audit key, never in
the database: a copy of the database alone does not reveal anyone's second factor.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from threadline import files
from threadline.domain import errors


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, path: Path) -> "SecretBox":
        if not path.exists():
            files.create_secret_file(path, Fernet.generate_key())
        try:
            return cls(path.read_bytes().strip())
        except (ValueError, OSError) as exc:
            raise errors.ConfigurationError(f"cannot read the secrets key {path}: {exc}") from exc

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken as exc:
            raise errors.ConfigurationError(
                "a stored secret does not decrypt with this secrets key: was the key file replaced?") from exc
