"""The exception tree of Threadline: every error a caller can handle, in one place.

Adapters translate foreign exceptions (SQLAlchemy, boto3, OS errors) into these, and the
API maps each class to one HTTP status in ``api/errors.py``. Nothing is ever built from a
name received over the wire.

    ThreadlineError
    ├── InvalidInput           bad request data: names the field, file or line that is wrong
    │   └── PayloadTooLarge    a body or upload over its size limit
    ├── NotFound               the object does not exist
    ├── Conflict               the request clashes with the current state (duplicate, illegal transition)
    ├── Unauthorized           missing, wrong, expired or revoked credentials
    ├── Forbidden              authenticated, but not allowed to do this
    │   └── PolicyViolation    a governance rule refuses it
    ├── IntegrityError         stored data does not match its digest or signature: stop and investigate
    └── ConfigurationError     the installation is wrong (missing extra, unreadable key): an operator must act
        └── MissingExtra       an optional dependency group is not installed
"""

from __future__ import annotations


class ThreadlineError(Exception):
    """Base of every error Threadline raises on purpose; ``str(err)`` is safe to show a user."""


class InvalidInput(ThreadlineError):
    """The caller sent something malformed; retrying the same request will fail again."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class PayloadTooLarge(InvalidInput):
    """A request body or an upload exceeds its configured limit."""


class NotFound(ThreadlineError):
    """The named object does not exist (or the caller may not know that it does)."""


class Conflict(ThreadlineError):
    """The request is valid but contradicts the current state, e.g. a duplicate name."""


class Unauthorized(ThreadlineError):
    """No valid credentials: the caller must authenticate (again)."""


class Forbidden(ThreadlineError):
    """Valid credentials that do not carry the right to do this."""


class PolicyViolation(Forbidden):
    """A governance rule refuses the action; the message says which rule and what satisfies it."""


class IntegrityError(ThreadlineError):
    """Stored bytes or records fail verification (digest, hash chain, signature)."""


class DigestMismatch(IntegrityError):
    """Bytes read back do not hash to the digest they were stored under."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"artifact digest mismatch: expected sha256:{expected}, got sha256:{actual}")
        self.expected = expected
        self.actual = actual


class ConfigurationError(ThreadlineError):
    """The installation or settings are wrong; an operator must fix them before retrying."""


class MissingExtra(ConfigurationError):
    """An optional dependency group is needed for this feature and is not installed."""

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependencies of threadline[{extra}]: "
            f"run  pip install 'threadline[{extra}]'"
        )
        self.extra = extra


def require_module(module: str, *, extra: str, feature: str) -> object:
    """Import an optional module, or raise MissingExtra naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(extra, feature) from exc


class RuntimeFailure(ThreadlineError):
    """A runtime could not bring a workload up (replicas never became ready); what ran before
    keeps running. ``evidence`` says what was seen (exit codes, log tails, probe results)."""

    def __init__(self, message: str, evidence: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.evidence = dict(evidence or {})
