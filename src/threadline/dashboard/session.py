"""The dashboard's session cookie: the caller's API token, sealed, with a CSRF secret.

The cookie carries the token itself (encrypted and authenticated with Fernet under a key in
``<home>/session.key``, never in the database), so every page authenticates through the same
``Identity`` as the API: a revoked token or a disabled user is signed out on the next click,
not at the end of the session. Fernet's timestamp gives the absolute lifetime. The CSRF secret
is random per sign-in; forms echo it and a forged form from another site cannot know it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from threadline import files
from threadline.domain import errors

COOKIE = "tl_session"
LOGIN_COOKIE = "tl_login"  # the CSRF secret of the sign-in form, before any session exists


@dataclass(frozen=True)
class Session:
    token: str
    csrf: str


class SessionExpired(Exception):
    """The cookie is genuine but older than the session lifetime."""


class SessionInvalid(Exception):
    """The cookie was not made by this installation (or with a replaced key)."""


class SessionCodec:
    def __init__(self, key: bytes, lifetime_seconds: int) -> None:
        self._fernet = Fernet(key)
        self._lifetime = lifetime_seconds

    @classmethod
    def load_or_create(cls, path: Path, lifetime_seconds: int) -> "SessionCodec":
        if not path.exists():
            files.create_secret_file(path, Fernet.generate_key())
        try:
            return cls(path.read_bytes().strip(), lifetime_seconds)
        except (ValueError, OSError) as exc:
            raise errors.ConfigurationError(f"cannot read the session key {path}: {exc}") from exc

    @property
    def lifetime_seconds(self) -> int:
        return self._lifetime

    def seal(self, token: str, *, now: int | None = None) -> str:
        """A new session for ``token`` (``now``: the sign-in time, for tests of expiry)."""
        payload = orjson.dumps({"token": token, "csrf": secrets.token_urlsafe(32)})
        sealed = self._fernet.encrypt(payload) if now is None else self._fernet.encrypt_at_time(payload, now)
        return sealed.decode()

    def open(self, cookie: str) -> Session:
        sealed = cookie.encode()
        try:
            payload = self._fernet.decrypt(sealed, ttl=self._lifetime)
        except InvalidToken:
            try:
                self._fernet.decrypt(sealed)
            except InvalidToken:
                raise SessionInvalid() from None
            raise SessionExpired() from None
        data = orjson.loads(payload)
        return Session(token=data["token"], csrf=data["csrf"])


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a form's CSRF field with the session's."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
