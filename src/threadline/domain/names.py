"""Validation of the names users choose: models, aliases, environments, teams.

Names end up in URLs, file paths, Kubernetes object names and audit records, so they are
held to DNS-label rules: nothing that could traverse a path (``..``, ``/``), carry a URL
fragment or query, or be mistaken for a version number.
"""

from __future__ import annotations

import re

from threadline.domain import errors

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_RESERVED_ALIASES = frozenset({"latest"})


def _check_label(value: object, *, what: str, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise errors.InvalidInput(f"{what} must be a non-empty string", field=field)
    if not _LABEL.match(value):
        raise errors.InvalidInput(
            f"invalid {what} {value!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (no '/', '..', '#', '%' or spaces)",
            field=field,
        )
    return value


def model_name(value: object, *, field: str = "name") -> str:
    return _check_label(value, what="model name", field=field)


def team_name(value: object, *, field: str = "owner") -> str:
    return _check_label(value, what="team name", field=field)


def environment_name(value: object, *, field: str = "environment") -> str:
    return _check_label(value, what="environment name", field=field)


def alias_name(value: object, *, field: str = "alias") -> str:
    name = _check_label(value, what="alias", field=field)
    if name.isdigit():
        raise errors.InvalidInput(f"alias {name!r} would be mistaken for a version number", field=field)
    if name in _RESERVED_ALIASES:
        raise errors.InvalidInput(f"alias {name!r} is reserved: it always means the newest version", field=field)
    return name


def user_name(value: object, *, field: str = "name") -> str:
    return _check_label(value, what="user name", field=field)


_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sha256_digest(value: object, *, field: str = "digest") -> str:
    """Accept ``sha256:<hex>`` or bare hex; return the bare lowercase hex."""
    if isinstance(value, str) and value.startswith("sha256:"):
        value = value[len("sha256:"):]
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise errors.InvalidInput("must be a SHA-256 digest: 64 lowercase hex characters", field=field)
    return value


def version_ref(value: str) -> tuple[str, str]:
    """Split ``NAME@VERSION`` or ``NAME@ALIAS`` (``NAME`` alone means latest)."""
    name, sep, ref = value.partition("@")
    model_name(name, field="model")
    if not sep:
        return name, "latest"
    if not ref:
        raise errors.InvalidInput(f"{value!r}: nothing after '@'; use NAME@VERSION or NAME@ALIAS", field="model")
    if not ref.isdigit() and ref != "latest":
        alias_name(ref)
    return name, ref
