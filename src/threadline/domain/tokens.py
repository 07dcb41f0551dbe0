"""API token format: random, high entropy, stored only as a hash.

Tokens carry 256 random bits, so a single SHA-256 is enough to store them (no password
stretching is needed for secrets nobody can guess); the short prefix lets a user tell their
tokens apart in listings without exposing them.
"""

from __future__ import annotations

import hashlib
import secrets

_SCHEME = "tl_"
PREFIX_LENGTH = len(_SCHEME) + 8


def generate() -> str:
    return _SCHEME + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def prefix(token: str) -> str:
    return token[:PREFIX_LENGTH]


def looks_valid(token: str) -> bool:
    """Cheap shape check before touching the database."""
    return token.startswith(_SCHEME) and 40 <= len(token) <= 64
