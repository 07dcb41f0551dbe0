"""The version lifecycle as a pure state machine.

    registered ──validate──▶ validated ──approve(env)──▶ approved:<env> ──approve(env2)──▶ approved:<env2>
         │                       │                            │
         └───────────────────────┴──────deprecate─────────────┴──▶ deprecated ──archive──▶ archived

A version's bytes never change; only its status moves, and only along these edges. Approval
for a further environment replaces the status with the newest approval (the approval records
themselves keep the full history).
"""

from __future__ import annotations

import enum

from threadline.domain import errors, names

REGISTERED = "registered"
VALIDATED = "validated"
DEPRECATED = "deprecated"
ARCHIVED = "archived"
_APPROVED_PREFIX = "approved:"


class Event(str, enum.Enum):
    VALIDATE = "validate"
    APPROVE = "approve"
    DEPRECATE = "deprecate"
    ARCHIVE = "archive"


def approved(environment: str) -> str:
    return _APPROVED_PREFIX + names.environment_name(environment)


def is_approved(status: str) -> bool:
    return status.startswith(_APPROVED_PREFIX)


def parse(status: str) -> str:
    """Validate a stored or user-given status string."""
    if status in (REGISTERED, VALIDATED, DEPRECATED, ARCHIVED):
        return status
    if is_approved(status):
        names.environment_name(status[len(_APPROVED_PREFIX):], field="status")
        return status
    raise errors.InvalidInput(
        f"unknown status {status!r}: expected registered, validated, approved:<env>, deprecated or archived",
        field="status",
    )


def transition(status: str, event: Event, environment: str | None = None) -> str:
    """Return the status after ``event``, or raise Conflict naming the illegal move."""
    status = parse(status)
    if event is Event.VALIDATE and status == REGISTERED:
        return VALIDATED
    if event is Event.APPROVE and (status == VALIDATED or is_approved(status)):
        if environment is None:
            raise errors.InvalidInput("approval needs an environment", field="environment")
        return approved(environment)
    if event is Event.DEPRECATE and status not in (DEPRECATED, ARCHIVED):
        return DEPRECATED
    if event is Event.ARCHIVE and status == DEPRECATED:
        return ARCHIVED
    raise errors.Conflict(f"cannot {event.value} a version whose status is {status}")
