"""Per-feature drift between a reference and a current sample: arrays in, verdicts out.

This module owns the statistics and nothing else. It reads no files and no logs: the caller
(``monitoring.service``) reads a window column by column and hands numpy arrays or category
counts here, and gets back a frozen ``FeatureDrift`` per feature and a ``DatasetDrift``.

Every statistic equals scipy's on the same data (the tests compare to 1e-9), because users check
our numbers against the tools they already trust:

- ``ks`` (numeric): p-value of ``scipy.stats.ks_2samp``; drift when p < threshold (0.05).
- ``wasserstein`` (numeric): ``scipy.stats.wasserstein_distance`` divided by the reference
  standard deviation (ddof=0), so one threshold (0.1) fits every unit; drift when above.
- ``psi`` (numeric and categorical): Population Stability Index on the reference's quantile bins
  or on the categories; drift when above 0.2.
- ``jensenshannon`` (numeric and categorical): ``scipy.spatial.distance.jensenshannon`` (base e)
  of the two histograms; drift when above 0.1.
- ``chisquare`` (categorical): p-value of ``scipy.stats.chi2_contingency`` on the 2 x k table of
  counts (with its Yates correction when k = 2); drift when p < 0.05.

Defaults follow Evidently, which is what users compare against: KS for numeric references of at
most 1000 values and normalised Wasserstein above; chi-square for categorical references of at
most 1000 counts and Jensen-Shannon above; a dataset drifts when at least half its features do.

Null, NaN and +/-inf are dropped before any statistic, as the reference profile does; the
current sample's count of them is reported as ``missing``. A current sample with nothing left is
"no data": never drift, and left out of the dataset share.

Speed: the caller feeds million-row columns, so nothing loops over values in Python. Wasserstein
sorts each side once and merges; PSI and Jensen-Shannon bin with one ``searchsorted``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats

from threadline.domain import errors

Kind = Literal["numeric", "categorical"]

METHODS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "numeric": ("ks", "wasserstein", "psi", "jensenshannon"),
    "categorical": ("chisquare", "jensenshannon", "psi"),
})
"""The methods each kind of feature accepts, by kind."""

DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType({
    "ks": 0.05, "chisquare": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.2,
})
"""Evidently's defaults: a p-value for the tests, a distance or index for the others."""

P_VALUE_METHODS = frozenset({"ks", "chisquare"})
"""Methods whose statistic is a p-value: drift when it falls *below* the threshold."""

SMALL_REFERENCE = 1000
"""References up to this size get a statistical test by default; larger ones a distance, since
a test on a large sample flags differences too small to matter."""

PSI_EPSILON = 1e-4
"""Proportion that replaces an empty bin in PSI, whose log ratio is otherwise infinite. It is
Evidently's value, so that PSI figures agree with theirs."""

DECILES = 10
"""Bins computed from the reference when no profile edges are given, as the profile does."""


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature, with everything needed to explain and draw it.

    ``statistic`` is the number compared with ``threshold``: a p-value when ``higher_is_drift``
    is False (ks, chisquare), a distance or index otherwise. It is None when there was nothing
    to compare ("no data"). ``test_statistic`` is the other number users look for: the KS D or
    the chi-square statistic, or the Wasserstein distance before normalisation. Sizes count
    values (numeric) or counts (categorical) after dropping missing ones; ``missing`` counts the
    current sample's dropped values.
    """

    feature: str
    kind: str
    method: str
    statistic: float | None
    threshold: float | None
    drifted: bool
    reference_size: int
    current_size: int
    missing: int
    detail: str | None
    higher_is_drift: bool
    test_statistic: float | None = None


@dataclasses.dataclass(frozen=True)
class DatasetDrift:
    """The verdict on a set of features: drifted when at least ``share`` of those with data did."""

    drifted: bool
    share: float
    drifted_count: int
    considered: int
    features: tuple[FeatureDrift, ...]
    no_data: tuple[str, ...]

    @property
    def drifted_share(self) -> float:
        """The share of features with data that drifted (0 when none had data)."""
        return self.drifted_count / self.considered if self.considered else 0.0


class _Outcome(NamedTuple):
    statistic: float
    test_statistic: float | None = None
    detail: str | None = None


def numeric(reference: np.ndarray, current: np.ndarray, *, method: str | None = None,
            threshold: float | None = None, reference_edges: np.ndarray | None = None,
            feature: str = "") -> FeatureDrift:
    """Drift of a numeric feature from ``reference`` (a sample of values) to ``current``.

    ``reference_edges`` are the reference profile's quantile bin edges, used by psi and
    jensenshannon (the outer bins are open-ended, so current values outside the reference range
    still count); without them, or when empty, the reference sample's deciles are used. Other
    methods ignore them. ``method=None`` picks ks for a reference of at most 1000 values and
    wasserstein above. Raises ``InvalidInput`` for an unknown method, a threshold that is not
    positive, or values that are not numbers.
    """
    ref, _ = _finite(reference, "reference")
    cur, missing = _finite(current, "current")
    default = "ks" if ref.size <= SMALL_REFERENCE else "wasserstein"
    chosen, limit = _settle("numeric", method, threshold, default)
    base = _unjudged(feature, "numeric", chosen, limit, (ref.size, cur.size), missing)
    if cur.size == 0:
        return base
    if ref.size == 0:
        return dataclasses.replace(base, detail="no reference data")
    if chosen == "ks":
        result = stats.ks_2samp(ref, cur)
        return _judged(base, limit, _Outcome(float(result.pvalue), float(result.statistic)))
    if chosen == "wasserstein":
        return _judged(base, limit, _normalised_wasserstein(ref, cur))
    cuts = _cuts(_edges(ref, reference_edges))
    counts = _binned(ref, cuts), _binned(cur, cuts)
    if chosen == "psi":
        return _judged(base, limit, _Outcome(_psi(*counts)))
    return _judged(base, limit, _Outcome(_jensenshannon(*counts)))


def categorical(reference_counts: Mapping[str, int], current_counts: Mapping[str, int], *,
                method: str | None = None, threshold: float | None = None,
                feature: str = "") -> FeatureDrift:
    """Drift of a categorical feature from the reference's category counts to the current's.

    Statistics run over the union of categories; a category absent from both (count 0 on each
    side) is dropped, since it carries no information and would make chi-square's expected
    frequency zero. ``method=None`` picks chisquare for a reference of at most 1000 counts and
    jensenshannon above. Raises ``InvalidInput`` for an unknown method, a threshold that is not
    positive, or counts that are not non-negative integers.
    """
    categories, ref, cur = _aligned(reference_counts, current_counts)
    ref_total, cur_total = int(ref.sum()), int(cur.sum())
    default = "chisquare" if ref_total <= SMALL_REFERENCE else "jensenshannon"
    chosen, limit = _settle("categorical", method, threshold, default)
    base = _unjudged(feature, "categorical", chosen, limit, (ref_total, cur_total), 0)
    if cur_total == 0:
        return base
    if ref_total == 0:
        return dataclasses.replace(base, detail="no reference data")
    unseen = [categories[i] for i in np.flatnonzero(ref == 0)]
    detail = _unseen_detail(unseen) if unseen else None
    if chosen == "chisquare":
        result = stats.chi2_contingency(np.vstack((ref, cur)))
        return _judged(base, limit, _Outcome(float(result.pvalue), float(result.statistic), detail))
    if chosen == "psi":
        return _judged(base, limit, _Outcome(_psi(ref, cur), None, detail))
    return _judged(base, limit, _Outcome(_jensenshannon(ref, cur), None, detail))


def dataset(features: Sequence[FeatureDrift], share: float = 0.5) -> DatasetDrift:
    """Whether a dataset drifted: at least ``share`` (0 < share <= 1) of its features with data.

    Features without data (``statistic`` None) are not evidence either way, so they are left
    out of the share and listed in ``no_data``; with no feature left, nothing drifted.
    """
    if not (0.0 < share <= 1.0):
        raise errors.InvalidInput(f"must be in (0, 1], got {share!r}", field="share")
    every = tuple(features)
    judged = [f for f in every if f.statistic is not None]
    count = sum(1 for f in judged if f.drifted)
    # int / int is correctly rounded, so 3 of 30 against share 0.1 compares as equal.
    drifted = bool(judged) and count / len(judged) >= share
    no_data = tuple(f.feature for f in every if f.statistic is None)
    return DatasetDrift(drifted=drifted, share=share, drifted_count=count, considered=len(judged),
                        features=every, no_data=no_data)


def _settle(kind: Kind, method: str | None, threshold: float | None,
            default: str) -> tuple[str, float]:
    """The method (``default`` when None) and threshold to use, refused when unknown or <= 0."""
    chosen = default if method is None else method
    if chosen not in METHODS[kind]:
        known = ", ".join(METHODS[kind])
        raise errors.InvalidInput(f"unknown {kind} drift method {chosen!r}; known: {known}",
                                  field="method")
    if threshold is None:
        return chosen, DEFAULT_THRESHOLDS[chosen]
    try:
        limit = float(threshold)
    except (TypeError, ValueError):
        limit = math.nan
    if not (limit > 0.0 and math.isfinite(limit)):
        raise errors.InvalidInput(f"must be a positive number, got {threshold!r}",
                                  field="threshold")
    return chosen, limit


def _unjudged(feature: str, kind: Kind, method: str, limit: float, sizes: tuple[int, int],
              missing: int) -> FeatureDrift:
    """The "no data" result, which every judged result starts from."""
    return FeatureDrift(feature=feature, kind=kind, method=method, statistic=None, threshold=limit,
                        drifted=False, reference_size=int(sizes[0]), current_size=int(sizes[1]),
                        missing=int(missing), detail="no data",
                        higher_is_drift=method not in P_VALUE_METHODS)


def _judged(base: FeatureDrift, limit: float, outcome: _Outcome) -> FeatureDrift:
    value = outcome.statistic
    drifted = value > limit if base.higher_is_drift else value < limit
    return dataclasses.replace(base, statistic=value, test_statistic=outcome.test_statistic,
                               drifted=bool(drifted), detail=outcome.detail)


def _finite(values: np.ndarray, field: str) -> tuple[np.ndarray, int]:
    """The finite values as float64 (None becomes NaN on the way) and how many were dropped."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field=field) from None
    if array.ndim != 1:
        raise errors.InvalidInput(f"must be one-dimensional, got shape {array.shape}", field=field)
    keep = np.isfinite(array)
    if keep.all():
        return array, 0
    kept = array[keep]
    return kept, int(array.size - kept.size)


def _normalised_wasserstein(ref: np.ndarray, cur: np.ndarray) -> _Outcome:
    """scipy's 1-D Wasserstein (the area between the two empirical CDFs) over the reference std.

    Same steps as ``scipy.stats._stats_py._cdf_distance``, but the concatenation of two sorted
    arrays is sorted with the stable sort, which merges the two runs in linear time.
    """
    u, v = np.sort(ref), np.sort(cur)
    merged = np.concatenate((u, v))
    merged.sort(kind="stable")
    deltas = np.diff(merged)
    u_cdf = u.searchsorted(merged[:-1], "right") / u.size
    v_cdf = v.searchsorted(merged[:-1], "right") / v.size
    distance = float(np.abs(u_cdf - v_cdf) @ deltas)
    if u[0] == u[-1]:
        # A constant reference has no scale to normalise by; any move away from it is drift.
        scaled = 0.0 if distance == 0.0 else math.inf
        return _Outcome(scaled, distance, "reference is constant (std 0): 0 when the current "
                                          "sample equals it, otherwise inf")
    return _Outcome(distance / float(u.std()), distance)


def _edges(ref: np.ndarray, given: np.ndarray | None) -> np.ndarray:
    if given is None or np.size(given) == 0:
        return np.quantile(ref, np.linspace(0.0, 1.0, DECILES + 1))
    return checked_edges(given, field="reference_edges")


def numbers(values: object, *, field: str) -> np.ndarray:
    """``values`` as a one-dimensional float array, or InvalidInput naming ``field``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field=field) from None
    if array.ndim != 1:
        raise errors.InvalidInput(f"must be one-dimensional, got shape {array.shape}", field=field)
    return array


def checked_edges(given: object, *, field: str) -> np.ndarray:
    """Bin edges as a float array: at least two, finite and non-decreasing, or InvalidInput."""
    try:
        edges = np.asarray(given, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field=field) from None
    ordered = edges.ndim == 1 and edges.size >= 2 and not (np.diff(edges) < 0).any()
    if not (ordered and np.isfinite(edges).all()):
        raise errors.InvalidInput("must be at least two finite, non-decreasing bin edges", field=field)
    return edges


def _cuts(edges: np.ndarray) -> np.ndarray:
    """The inner cut points of the bins; the outermost bins run to -inf and +inf.

    A constant reference has edges ``[v, v]`` and one bin, which could never show drift, so it
    gets three instead: below v, exactly v, above v.
    """
    if edges[0] == edges[-1]:
        return np.array([edges[0], np.nextafter(edges[0], np.inf)])
    return edges[1:-1]


def _binned(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    # side="right" puts a value equal to a cut into the bin that starts there: np.histogram's
    # half-open [lo, hi) bins, so counts agree with the profile's bin_counts.
    return np.bincount(np.searchsorted(cuts, values, side="right"), minlength=cuts.size + 1)


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    ref = reference_counts / reference_counts.sum()
    cur = current_counts / current_counts.sum()
    ref = np.where(ref == 0.0, PSI_EPSILON, ref)
    cur = np.where(cur == 0.0, PSI_EPSILON, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _jensenshannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon`` (base e), step for step."""
    p = reference_counts / reference_counts.sum()
    q = current_counts / current_counts.sum()
    m = (p + q) / 2.0
    js = (float(np.sum(_rel_entr(p, m))) + float(np.sum(_rel_entr(q, m)))) / 2.0
    # Rounding can leave a hair below zero for equal histograms; scipy would return nan there.
    return math.sqrt(max(js, 0.0))


def _rel_entr(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0.0, x * np.log(x / m), 0.0)


def _aligned(reference_counts: Mapping[str, int],
             current_counts: Mapping[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both count vectors over the union of categories seen on either side."""
    union = list(dict.fromkeys([*reference_counts, *current_counts]))
    ref = _counts(reference_counts, union, "reference_counts")
    cur = _counts(current_counts, union, "current_counts")
    present = (ref > 0) | (cur > 0)
    return [c for c, seen in zip(union, present.tolist()) if seen], ref[present], cur[present]


def _counts(counts: Mapping[str, int], categories: list[str], field: str) -> np.ndarray:
    try:
        values = np.array([counts.get(c, 0) for c in categories], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"counts must be numbers ({exc})", field=field) from None
    if not (np.isfinite(values) & (values >= 0) & (values == np.floor(values))).all():
        raise errors.InvalidInput("counts must be non-negative integers", field=field)
    return values.astype(np.int64)


def _unseen_detail(unseen: list[str], shown: int = 5) -> str:
    names = ", ".join(repr(c) for c in unseen[:shown])
    more = f" and {len(unseen) - shown} more" if len(unseen) > shown else ""
    return f"categories not in the reference ({len(unseen)}): {names}{more}"
