from __future__ import annotations

import pytest

from threadline.domain import errors, lifecycle
from threadline.domain.lifecycle import Event


def test_happy_path() -> None:
    status = lifecycle.transition(lifecycle.REGISTERED, Event.VALIDATE)
    status = lifecycle.transition(status, Event.APPROVE, "staging")
    assert status == "approved:staging"
    status = lifecycle.transition(status, Event.APPROVE, "production")
    assert status == "approved:production"
    status = lifecycle.transition(status, Event.DEPRECATE)
    assert lifecycle.transition(status, Event.ARCHIVE) == lifecycle.ARCHIVED


@pytest.mark.parametrize("status,event", [
    (lifecycle.REGISTERED, Event.APPROVE),
    (lifecycle.REGISTERED, Event.ARCHIVE),
    (lifecycle.VALIDATED, Event.VALIDATE),
    (lifecycle.ARCHIVED, Event.DEPRECATE),
    (lifecycle.DEPRECATED, Event.APPROVE),
])
def test_illegal_moves_are_conflicts(status: str, event: Event) -> None:
    with pytest.raises(errors.Conflict, match=f"cannot {event.value}"):
        lifecycle.transition(status, event, "production")


def test_unknown_status_and_bad_environment_are_refused() -> None:
    with pytest.raises(errors.InvalidInput):
        lifecycle.parse("live")
    with pytest.raises(errors.InvalidInput):
        lifecycle.transition(lifecycle.VALIDATED, Event.APPROVE, "../prod")
