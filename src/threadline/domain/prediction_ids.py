"""Prediction ids that carry their time, so a label finds its prediction without a full scan.

An id is 32 hex digits, like a UUID: the first 12 are the milliseconds since the epoch when the
prediction was made (as in UUIDv7), the other 20 are random (80 bits). Feedback for an id then
reads only the log's day folders around that time instead of the deployment's whole history.
Rows of one multi-row request share the id with ``-<row>`` appended. Ids of other shapes (from
before, or from elsewhere) still work; they only cost a full scan.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EARLIEST = datetime(2020, 1, 1, tzinfo=timezone.utc)


def new(now: datetime) -> str:
    millis = int((now - _EPOCH) / timedelta(milliseconds=1))
    return f"{millis:012x}{secrets.token_hex(10)}"


def time_of(prediction_id: str, *, now: datetime) -> datetime | None:
    """When the prediction was made, or None for an id that does not carry a plausible time."""
    base = prediction_id.split("-", 1)[0]
    if len(base) != 32:
        return None
    try:
        moment = _EPOCH + timedelta(milliseconds=int(base[:12], 16))
    except (ValueError, OverflowError):  # not hex, or beyond the year 9999
        return None
    return moment if _EARLIEST <= moment <= now + timedelta(days=1) else None
