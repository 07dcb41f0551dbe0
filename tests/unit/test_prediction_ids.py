"""Prediction ids carry their time, so feedback reads only the days around it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from threadline.domain import prediction_ids

NOW = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=timezone.utc)


def test_an_id_carries_its_time_to_the_millisecond_and_is_unique() -> None:
    first, second = prediction_ids.new(NOW), prediction_ids.new(NOW)
    assert first != second and len(first) == 32 and int(first, 16) >= 0
    assert prediction_ids.time_of(first, now=NOW) == NOW
    assert prediction_ids.time_of(f"{first}-3", now=NOW) == NOW  # a row of a multi-row request


def test_ids_without_a_plausible_time_say_so() -> None:
    assert prediction_ids.time_of("no-such-prediction", now=NOW) is None
    assert prediction_ids.time_of("f" * 32, now=NOW) is None  # far in the future
    assert prediction_ids.time_of("0" * 32, now=NOW) is None  # 1970
    later = prediction_ids.new(NOW + timedelta(days=3))
    assert prediction_ids.time_of(later, now=NOW) is None
