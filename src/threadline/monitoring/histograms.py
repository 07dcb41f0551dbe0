"""Reference-against-current histograms of one feature, for the drift report and dashboards.

This module owns the binning that a picture of drift needs, and nothing else: counts in,
proportions out, ready to draw side by side. Proportions rather than counts, because a window
of a hundred requests is compared with a training set of a million rows.

Numeric features are binned on the reference profile's edges with ``np.histogram`` semantics
(half-open bins ``[a, b)``, the last one closed ``[a, b]``), so reference and current bars mean
the same thing. Current values outside the reference range are what drift looks like, so they
are kept as an underflow bin ``< first edge`` and an overflow bin ``> last edge``, shown when not
empty; NaN and +/-inf are dropped and counted in ``dropped``, as the drift statistics do.

Categorical features keep the ``top`` categories by reference count and fold the rest, on both
sides, into ``(other)`` (shown when not empty): a chart of ten thousand zip codes shows nothing.
A category only the current window has is in ``(other)``; the drift detail names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from threadline.domain import errors
from threadline.monitoring import drift

OTHER = "(other)"
"""The bin of every category past the top ones; the profile folds its tail under this name too."""

Kind = Literal["numeric", "categorical"]


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Two bar series over the same bins: the reference's and the current window's.

    ``reference`` and ``current`` are proportions of their totals (all 0 for an empty side);
    ``*_counts`` are the counts behind them, ``dropped`` the current values that were not
    finite numbers (numeric only).
    """

    feature: str
    kind: Kind
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]
    reference_total: int
    current_total: int
    reference_counts: tuple[int, ...] = ()
    current_counts: tuple[int, ...] = ()
    dropped: int = 0


def numeric(edges: np.ndarray, reference_counts: Sequence[int], current: np.ndarray, *,
            feature: str = "") -> Histogram:
    """The current values binned on the reference's ``edges``, next to ``reference_counts``.

    ``edges`` are at least two finite, non-decreasing numbers; ``reference_counts`` has one
    count per bin (``len(edges) - 1``). Raises ``InvalidInput`` otherwise.
    """
    cuts = _edges(edges)
    ref = _counts(reference_counts, "reference_counts")
    if ref.size != cuts.size - 1:
        raise errors.InvalidInput(f"must have one count per bin ({cuts.size - 1}), got "
                                  f"{ref.size}", field="reference_counts")
    values = _values(current)
    finite = values[np.isfinite(values)]
    inside, _ = np.histogram(finite, bins=cuts)
    below = int(np.count_nonzero(finite < cuts[0]))
    above = int(np.count_nonzero(finite > cuts[-1]))
    labels = [_bin_label(cuts[i], cuts[i + 1], last=i == cuts.size - 2)
              for i in range(cuts.size - 1)]
    ref_counts, cur_counts = ref.tolist(), inside.astype(np.int64).tolist()
    if below:
        labels.insert(0, f"< {_number(cuts[0])}")
        ref_counts.insert(0, 0)
        cur_counts.insert(0, below)
    if above:
        labels.append(f"> {_number(cuts[-1])}")
        ref_counts.append(0)
        cur_counts.append(above)
    return _histogram(feature, "numeric", labels, ref_counts, cur_counts,
                      int(values.size - finite.size))


def categorical(reference: Mapping[str, int], current: Mapping[str, int], top: int = 20, *,
                feature: str = "") -> Histogram:
    """The ``top`` categories by reference count (ties by name), then ``(other)``.

    Raises ``InvalidInput`` for ``top`` below 1 or counts that are not non-negative integers.
    """
    if top < 1:
        raise errors.InvalidInput(f"must be at least 1, got {top!r}", field="top")
    ref = _category_counts(reference, "reference")
    cur = _category_counts(current, "current")
    ranked = sorted((name for name, count in ref.items() if count > 0 and name != OTHER),
                    key=lambda name: (-ref[name], name))
    kept = ranked[:top]
    ref_counts = [ref[name] for name in kept]
    cur_counts = [cur.get(name, 0) for name in kept]
    ref_rest = sum(ref.values()) - sum(ref_counts)
    cur_rest = sum(cur.values()) - sum(cur_counts)
    labels = list(kept)
    if ref_rest or cur_rest:
        labels.append(OTHER)
        ref_counts.append(ref_rest)
        cur_counts.append(cur_rest)
    return _histogram(feature, "categorical", labels, ref_counts, cur_counts, 0)


def _histogram(feature: str, kind: Kind, labels: list[str], ref_counts: list[int],
               cur_counts: list[int], dropped: int) -> Histogram:
    ref_total, cur_total = sum(ref_counts), sum(cur_counts)
    return Histogram(feature=feature, kind=kind, labels=tuple(labels),
                     reference=_shares(ref_counts, ref_total),
                     current=_shares(cur_counts, cur_total),
                     reference_total=ref_total, current_total=cur_total,
                     reference_counts=tuple(ref_counts), current_counts=tuple(cur_counts),
                     dropped=dropped)


def _shares(counts: list[int], total: int) -> tuple[float, ...]:
    return tuple(c / total if total else 0.0 for c in counts)


def _bin_label(low: float, high: float, *, last: bool) -> str:
    return f"[{_number(low)}, {_number(high)}{']' if last else ')'}"


def _number(value: float) -> str:
    return f"{float(value):.4g}"


def _edges(edges: np.ndarray) -> np.ndarray:
    return drift.checked_edges(edges, field="edges")


def _values(current: np.ndarray) -> np.ndarray:
    return drift.numbers(current, field="current")


def _counts(counts: Sequence[int], field: str) -> np.ndarray:
    try:
        array = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field=field) from None
    if array.ndim != 1 or not _whole(array):
        raise errors.InvalidInput("must be non-negative integers", field=field)
    return array.astype(np.int64)


def _category_counts(counts: Mapping[str, int], field: str) -> dict[str, int]:
    names = [str(name) for name in counts]
    values = _counts(list(counts.values()), field)
    merged: dict[str, int] = {}
    for name, value in zip(names, values.tolist(), strict=True):
        merged[name] = merged.get(name, 0) + value
    return merged


def _whole(array: np.ndarray) -> bool:
    return bool((np.isfinite(array) & (array >= 0) & (array == np.floor(array))).all())
