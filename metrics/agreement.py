"""Inter-rater agreement for blinded expert ratings: Krippendorff's alpha, Fleiss' kappa,
pairwise Cohen's kappa and accuracy on gold units.

Every statistic returns ``None`` with a ``reason`` when the data cannot define it (one
rater, no overlap, no variation) instead of raising or reporting a misleading number.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import krippendorff
import numpy as np
import scipy.stats as sps

from metrics.stats import Rate, StatResult, wilson_interval

Record = tuple[Hashable, Hashable, Any]
"""One rating: ``(unit_id, rater_id, value)``; a ``None`` value counts as missing."""

Level = Literal["nominal", "ordinal", "interval", "ratio"]
KappaWeights = Literal["linear", "quadratic"] | None
KappaInterval = Literal["bounded", "asymptotic"]
"""Cohen's kappa's 95% interval: "bounded" is the asymptotic (Wald) interval kappa -+ 1.96 se
truncated to kappa's range [-1, 1]; "asymptotic" is the Wald interval as is, which passes 1 on few
units with high agreement (reports frozen before the bound were computed with it)."""


@dataclass(frozen=True, eq=False)
class RatingsMatrix:
    """Reliability data: ``values[r, u]`` is rater r's value for unit u, NaN when missing.

    When the raw values were labels (``"a"``, ``"b"``, ``"tie"``) they are stored as codes
    0..k-1 and ``categories[code]`` gives the label back.
    """

    unit_ids: tuple[Hashable, ...]
    rater_ids: tuple[Hashable, ...]
    values: np.ndarray
    categories: tuple[Any, ...] | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def ratings_matrix(records: Iterable[Record], *, categories: Sequence[Any] | None = None) -> RatingsMatrix:
    """Build a raters x units matrix from ``(unit_id, rater_id, value)`` records.

    Numeric values are kept as they are unless ``categories`` is given; labels are coded in
    the order of ``categories`` (pass it for ordered labels: the order is the ordinal scale),
    otherwise in sorted order. Units and raters keep their order of first appearance.
    Two records for the same unit and rater are an error in the caller's data.
    """
    rows = [(unit, rater, value) for unit, rater, value in records]
    units = list(dict.fromkeys(unit for unit, _, _ in rows))
    raters = list(dict.fromkeys(rater for _, rater, _ in rows))
    present = [value for _, _, value in rows if value is not None]
    if categories is None and not all(_is_number(v) for v in present):
        categories = sorted(set(present), key=str)
    codes = {label: code for code, label in enumerate(categories)} if categories is not None else None

    unit_index = {unit: i for i, unit in enumerate(units)}
    rater_index = {rater: i for i, rater in enumerate(raters)}
    values = np.full((len(raters), len(units)), np.nan)
    seen: set[tuple[Hashable, Hashable]] = set()
    for unit, rater, value in rows:
        if (unit, rater) in seen:
            raise ValueError(f"rater {rater!r} rated unit {unit!r} more than once")
        seen.add((unit, rater))
        if value is None:
            continue
        if codes is not None:
            if value not in codes:
                raise ValueError(f"value {value!r} is not one of the categories {list(codes)}")
            values[rater_index[rater], unit_index[unit]] = codes[value]
        else:
            values[rater_index[rater], unit_index[unit]] = float(value)
    return RatingsMatrix(
        unit_ids=tuple(units),
        rater_ids=tuple(raters),
        values=values,
        categories=tuple(categories) if categories is not None else None,
    )


def _first_appearance_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 for ``ids`` in order of first appearance, and the distinct ids in that order."""
    distinct, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], distinct[order]


def ratings_matrix_from_arrays(
    units: np.ndarray | Sequence[Hashable],
    raters: np.ndarray | Sequence[Hashable],
    values: np.ndarray | Sequence[float],
    *,
    categories: Sequence[Any] | None = None,
) -> RatingsMatrix:
    """``ratings_matrix`` for column data: record i is ``(units[i], raters[i], values[i])``.

    Ids are integers or strings (compared as numpy values); ``values`` are numbers, NaN where
    missing, or with ``categories`` the codes 0..k-1 of those labels. Units and raters keep their
    order of first appearance, so the matrix equals the one ``ratings_matrix`` builds from the
    same records, without a Python loop per record.
    """
    unit_arr, rater_arr = np.asarray(units), np.asarray(raters)
    vals = np.asarray(values, dtype=float)
    if not unit_arr.shape == rater_arr.shape == vals.shape or vals.ndim != 1:
        raise ValueError("units, raters and values must be 1-D and of the same length")
    unit_idx, unit_ids = _first_appearance_codes(unit_arr)
    rater_idx, rater_ids = _first_appearance_codes(rater_arr)
    n_units, n_raters = unit_ids.size, rater_ids.size
    flat = rater_idx.astype(np.int64) * n_units + unit_idx
    _, first, counts = np.unique(flat, return_index=True, return_counts=True)
    if np.any(counts > 1):
        k = int(first[np.argmax(counts > 1)])
        raise ValueError(f"rater {rater_arr[k].item()!r} rated unit {unit_arr[k].item()!r} more than once")
    if categories is not None:
        coded = vals[~np.isnan(vals)]
        bad = (coded < 0) | (coded >= len(categories)) | (coded != np.floor(coded))
        if np.any(bad):
            raise ValueError(f"codes {sorted(set(coded[bad].tolist()))} are not codes of {list(categories)}")
    matrix = np.full((n_raters, n_units), np.nan)
    matrix[rater_idx, unit_idx] = vals
    return RatingsMatrix(
        unit_ids=tuple(unit_ids.tolist()),
        rater_ids=tuple(rater_ids.tolist()),
        values=matrix,
        categories=tuple(categories) if categories is not None else None,
    )


MatrixLike = RatingsMatrix | np.ndarray | Sequence[Sequence[float | None]]
"""A ``RatingsMatrix`` or a raw **raters x units** array (Krippendorff's layout); convert a
units x raters array with ``ratings_matrix_from_units``."""


def ratings_matrix_from_units(
    values: np.ndarray | Sequence[Sequence[float | None]],
    *,
    unit_ids: Sequence[Hashable] | None = None,
    rater_ids: Sequence[Hashable] | None = None,
) -> RatingsMatrix:
    """A ``RatingsMatrix`` from a numeric **units x raters** array (one row per unit, None or
    NaN where a rater did not rate it), the layout of statsmodels' ``aggregate_raters``."""
    by_unit = np.array(
        [[np.nan if v is None else float(v) for v in row] for row in values], dtype=float
    ).reshape(len(values), -1)
    units = tuple(unit_ids) if unit_ids is not None else tuple(range(by_unit.shape[0]))
    raters = tuple(rater_ids) if rater_ids is not None else tuple(range(by_unit.shape[1]))
    if (len(units), len(raters)) != by_unit.shape:
        raise ValueError("unit_ids and rater_ids must match the array's shape")
    return RatingsMatrix(unit_ids=units, rater_ids=raters, values=by_unit.T.copy())


def _as_matrix(data: MatrixLike) -> RatingsMatrix:
    if isinstance(data, RatingsMatrix):
        return data
    values = np.array(
        [[np.nan if v is None else float(v) for v in row] for row in np.asarray(data, dtype=object)],
        dtype=float,
    )
    if values.ndim != 2:
        raise ValueError("reliability data must be a raters x units matrix")
    return RatingsMatrix(
        unit_ids=tuple(range(values.shape[1])), rater_ids=tuple(range(values.shape[0])), values=values
    )


@dataclass(frozen=True)
class AlphaResult(StatResult):
    """Krippendorff's alpha over the units with at least two values (pairable units)."""

    alpha: float | None
    level: str
    n_units: int
    n_raters: int
    n_values: int
    reason: str | None = None


def krippendorff_alpha(data: MatrixLike, *, level: Level = "ordinal") -> AlphaResult:
    """Krippendorff's alpha (``krippendorff`` package) on raters x units data.

    Use ``level="ordinal"`` for 1-5 scales and ``"nominal"`` for preferences (a/b/tie).
    Missing values are allowed; units with fewer than two values carry no information
    and are left out of the counts, as in Krippendorff (2011).
    """
    matrix = _as_matrix(data)
    values = matrix.values
    pairable = np.sum(~np.isnan(values), axis=0) >= 2
    used = values[:, pairable]
    n_raters = int(np.sum(np.any(~np.isnan(used), axis=1))) if used.size else 0

    def result(alpha: float | None, reason: str | None = None) -> AlphaResult:
        return AlphaResult(
            alpha=alpha,
            level=level,
            n_units=int(pairable.sum()),
            n_raters=n_raters,
            n_values=int(np.sum(~np.isnan(used))),
            reason=reason,
        )

    if int(np.sum(np.any(~np.isnan(values), axis=1))) < 2:
        return result(None, "fewer than two raters")
    if not pairable.any():
        return result(None, "no unit was rated by two or more raters")
    if np.unique(used[~np.isnan(used)]).size < 2:
        return result(None, "all ratings are identical: expected disagreement is zero, so alpha is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alpha = float(krippendorff.alpha(reliability_data=used, level_of_measurement=level))
    if not math.isfinite(alpha):
        return result(None, "alpha is undefined for these data")
    return result(alpha)


@dataclass(frozen=True)
class FleissKappaResult(StatResult):
    """Fleiss' kappa over units that each received ``ratings_per_unit`` ratings."""

    kappa: float | None
    n_units: int
    ratings_per_unit: int
    n_categories: int
    n_units_dropped: int
    reason: str | None = None


def fleiss_kappa_from_table(counts: np.ndarray | Sequence[Sequence[int]]) -> FleissKappaResult:
    """Fleiss' kappa from a units x categories table of rating counts (statsmodels)."""
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return FleissKappaResult(None, 0, 0, 0, 0, "no units")
    per_unit = table.sum(axis=1)
    m = int(per_unit[0])
    common: dict[str, Any] = {
        "n_units": int(table.shape[0]),
        "ratings_per_unit": m,
        "n_categories": int(np.sum(table.sum(axis=0) > 0)),
        "n_units_dropped": 0,
    }
    if not np.all(per_unit == m):
        return FleissKappaResult(
            kappa=None,
            reason="units differ in their number of ratings; Fleiss' kappa needs equal counts",
            **common,
        )
    if m < 2:
        return FleissKappaResult(kappa=None, reason="fewer than two ratings per unit", **common)
    if common["n_categories"] < 2:
        return FleissKappaResult(
            kappa=None,
            reason="all ratings fall in one category: chance agreement is 1, so kappa is undefined",
            **common,
        )
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa  # ~1 s: imported where used

    return FleissKappaResult(kappa=float(sm_fleiss_kappa(table, method="fleiss")), **common)


def fleiss_kappa(data: MatrixLike) -> FleissKappaResult:
    """Fleiss' kappa on raters x units data (``aggregate_raters`` then statsmodels).

    Fleiss' kappa assumes every unit has the same number of ratings (not necessarily from
    the same raters). Units are kept when their count equals the most common count of two
    or more (the larger on a tie); the others are reported in ``n_units_dropped``.
    """
    matrix = _as_matrix(data)
    by_unit = matrix.values.T
    sizes = np.sum(~np.isnan(by_unit), axis=1)
    counts = Counter(sizes[sizes >= 2].tolist())
    rated_units = int(np.sum(sizes > 0))
    if not counts:
        return FleissKappaResult(None, 0, 0, 0, rated_units, "no unit has two or more ratings")
    m = max(counts, key=lambda size: (counts[size], size))
    # Each kept unit's values in rater order, one row per unit (row-major order keeps units apart).
    chosen = by_unit[sizes == m]
    kept = chosen[~np.isnan(chosen)].reshape(-1, m)
    from statsmodels.stats.inter_rater import aggregate_raters  # ~1 s: imported where used

    table, _ = aggregate_raters(kept)
    result = fleiss_kappa_from_table(table)
    return FleissKappaResult(
        kappa=result.kappa,
        n_units=result.n_units,
        ratings_per_unit=result.ratings_per_unit,
        n_categories=result.n_categories,
        n_units_dropped=rated_units - len(kept),
        reason=result.reason,
    )


@dataclass(frozen=True)
class CohenKappaResult(StatResult):
    """Cohen's kappa for two raters on their shared units, with the asymptotic 95% interval
    (truncated to [-1, 1] unless computed with ``interval="asymptotic"``, see ``KappaInterval``)."""

    kappa: float | None
    std_error: float | None
    ci_low: float | None
    ci_high: float | None
    n_units: int
    observed_agreement: float | None
    weights: str | None
    reason: str | None = None


def _category_scores(values: Sequence[Any], categories: Sequence[Any] | None) -> list[Any]:
    if categories is not None:
        return list(categories)
    present = set(values)
    if all(_is_number(v) for v in present):
        return sorted(present)
    return sorted(present, key=str)


def cohen_kappa(
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    weights: KappaWeights = None,
    categories: Sequence[Any] | None = None,
    interval: KappaInterval = "bounded",
) -> CohenKappaResult:
    """Cohen's kappa between two raters' values on the same units (statsmodels ``cohens_kappa``).

    ``x[i]`` and ``y[i]`` rate the same unit; positions where either is None/NaN are dropped.
    ``weights="linear"`` or ``"quadratic"`` gives weighted kappa for ordinal scales, with the
    disagreement weight computed from the numeric category values (or from the position in
    ``categories`` for labels), so a 1-vs-5 disagreement weighs more than 1-vs-2.
    The 95% interval is the asymptotic Wald interval truncated to kappa's range [-1, 1];
    ``interval="asymptotic"`` leaves it unbounded, as reports frozen before the bound had it.
    """
    if len(x) != len(y):
        raise ValueError(f"paired inputs differ in length: {len(x)} != {len(y)}")

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    pairs = [(a, b) for a, b in zip(x, y, strict=True) if not missing(a) and not missing(b)]
    n = len(pairs)
    if n < 2:
        return CohenKappaResult(
            None, None, None, None, n, None, weights, "fewer than two units rated by both raters"
        )
    scores = _category_scores([v for pair in pairs for v in pair], categories)
    index = {label: i for i, label in enumerate(scores)}
    unknown = {v for pair in pairs for v in pair if v not in index}
    if unknown:
        raise ValueError(f"values {sorted(unknown, key=str)} are not among the categories")
    table = np.zeros((len(scores), len(scores)))
    for a, b in pairs:
        table[index[a], index[b]] += 1
    return _kappa_from_table(table, scores, weights, interval=interval)


def _kappa_interval(low: float, high: float, *, interval: KappaInterval) -> tuple[float, float]:
    """The ends of kappa's Wald interval as ``interval`` reports them: intersected with kappa's range
    [-1, 1] when "bounded" (an end past it is no possible kappa, and a report showing 1.03 loses its
    reader's trust), as they are when "asymptotic"."""
    if interval == "asymptotic":
        return low, high
    return max(low, -1.0), min(high, 1.0)


def _kappa_from_table(
    table: np.ndarray, scores: Sequence[Any], weights: KappaWeights, *, interval: KappaInterval
) -> CohenKappaResult:
    """Cohen's kappa from a categories x categories table of counts (statsmodels), its Wald
    interval given as ``interval`` says (``_kappa_interval``)."""
    from statsmodels.stats.inter_rater import cohens_kappa  # ~1 s: imported where used

    n = int(table.sum())
    observed = float(np.trace(table) / n)
    row, col = table.sum(axis=1) / n, table.sum(axis=0) / n
    if math.isclose(float(row @ col), 1.0):
        return CohenKappaResult(
            None,
            None,
            None,
            None,
            n,
            observed,
            weights,
            "both raters used a single, identical category: chance agreement is 1, so kappa is undefined",
        )
    if weights is None:
        kappa = float(cohens_kappa(table, return_results=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = float(np.sqrt(_simple_kappa_variance(table, kappa)))
        low, high = kappa - _Z_975 * std, kappa + _Z_975 * std
    else:
        numeric = all(_is_number(s) for s in scores)
        category_values = np.array(scores if numeric else range(len(scores)), dtype=float)
        result = cohens_kappa(table, weights=category_values, wt=weights)
        kappa = float(result.kappa)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = float(result.std_kappa)
        low, high = float(result.kappa_low), float(result.kappa_upp)
    low, high = _kappa_interval(low, high, interval=interval)
    return CohenKappaResult(
        kappa=kappa,
        std_error=std if math.isfinite(std) else None,
        ci_low=low if math.isfinite(std) else None,
        ci_high=high if math.isfinite(std) else None,
        n_units=n,
        observed_agreement=observed,
        weights=weights,
    )


# statsmodels' KappaResults: the 95% interval is kappa -+ isf(0.025) * std.
_Z_975 = float(sps.norm.isf(0.025))


def _simple_kappa_variance(table: np.ndarray, kappa: float) -> float:
    """The asymptotic variance of unweighted kappa (Fleiss, Cohen and Everitt 1969), computed
    step for step as statsmodels' ``cohens_kappa`` does. Its results object also builds two
    frozen scipy distributions per call, which made 190 rater pairs cost most of a second."""
    nobs = table.sum()
    probs = table / nobs
    probs_diag = np.diag(probs)
    freq_row = table.sum(1) / nobs
    freq_col = table.sum(0) / nobs
    agree_exp = np.diag(freq_col * freq_row[:, None]).sum()
    term_a = (probs_diag * (1 - (freq_row + freq_col) * (1 - kappa)) ** 2).sum()
    term_b = probs * (freq_col[:, None] + freq_row) ** 2
    d_idx = np.arange(table.shape[0])
    term_b[d_idx, d_idx] = 0
    term_b = (1 - kappa) ** 2 * term_b.sum()
    term_c = (kappa - agree_exp * (1 - kappa)) ** 2
    return float((term_a + term_b - term_c) / (1 - agree_exp) ** 2 / nobs)


@dataclass(frozen=True)
class RaterPairKappa(StatResult):
    rater_a: Hashable
    rater_b: Hashable
    result: CohenKappaResult


@dataclass(frozen=True)
class PairwiseKappaResult(StatResult):
    """Cohen's kappa for every pair of raters and their unweighted mean (Light's kappa)."""

    mean_kappa: float | None
    n_pairs: int
    n_pairs_defined: int
    pairs: tuple[RaterPairKappa, ...]
    weights: str | None
    reason: str | None = None


def pairwise_cohen_kappa(
    data: MatrixLike,
    *,
    weights: KappaWeights = None,
    min_overlap: int = 2,
    interval: KappaInterval = "bounded",
) -> PairwiseKappaResult:
    """Cohen's kappa for each pair of raters on their shared units, and the mean over the
    pairs where it is defined. Pairs sharing fewer than ``min_overlap`` units get None. Each
    pair's interval is as in ``cohen_kappa`` (``interval``)."""
    matrix = _as_matrix(data)
    categories: list[Any] | None = None
    if matrix.categories is not None:
        categories = list(range(len(matrix.categories)))
    else:
        observed = matrix.values[~np.isnan(matrix.values)]
        categories = sorted(set(observed.tolist()))
    # Each value as its category's index; each pair's table is then one bincount (the same
    # table cohen_kappa tallies from the pair's shared values).
    k = len(categories)
    rated = ~np.isnan(matrix.values)
    codes = np.zeros(matrix.values.shape, dtype=np.int64)
    codes[rated] = np.searchsorted(np.asarray(categories, dtype=float), matrix.values[rated])
    pairs = []
    for i, j in itertools.combinations(range(len(matrix.rater_ids)), 2):
        shared = rated[i] & rated[j]
        n_shared = int(shared.sum())
        if n_shared < max(min_overlap, 2):
            result = CohenKappaResult(
                None, None, None, None, n_shared, None, weights, f"only {n_shared} shared units"
            )
        else:
            cells = codes[i, shared] * k + codes[j, shared]
            table = np.bincount(cells, minlength=k * k).reshape(k, k).astype(float)
            result = _kappa_from_table(table, categories, weights, interval=interval)
        pairs.append(RaterPairKappa(matrix.rater_ids[i], matrix.rater_ids[j], result))
    defined = [p.result.kappa for p in pairs if p.result.kappa is not None]
    reason = None
    if not pairs:
        reason = "fewer than two raters"
    elif not defined:
        reason = "kappa is undefined for every pair of raters"
    return PairwiseKappaResult(
        mean_kappa=float(np.mean(defined)) if defined else None,
        n_pairs=len(pairs),
        n_pairs_defined=len(defined),
        pairs=tuple(pairs),
        weights=weights,
        reason=reason,
    )


@dataclass(frozen=True)
class GoldAccuracy(StatResult):
    """How often one rater matched the known answer on gold units (Wilson interval)."""

    rater_id: Hashable
    n_gold: int
    n_correct: int
    accuracy: Rate
    reason: str | None = None


def gold_accuracy(
    records: Iterable[Record], gold: Mapping[Hashable, Any], *, confidence: float = 0.95
) -> tuple[GoldAccuracy, ...]:
    """Per rater, the share of their ratings on gold units that equal the gold value.

    Raters appear in order of first appearance; a rater with no gold units gets
    ``accuracy.rate = None`` and a reason.
    """
    tallies: dict[Hashable, list[int]] = {}
    for unit, rater, value in records:
        tally = tallies.setdefault(rater, [0, 0])
        if value is None or unit not in gold:
            continue
        tally[0] += 1
        tally[1] += int(value == gold[unit])
    results = []
    for rater, (n_gold, n_correct) in tallies.items():
        if n_gold == 0:
            results.append(GoldAccuracy(rater, 0, 0, Rate(None, None, None), "no gold units rated"))
            continue
        low, high = wilson_interval(n_correct, n_gold, confidence=confidence)
        results.append(GoldAccuracy(rater, n_gold, n_correct, Rate(n_correct / n_gold, low, high)))
    return tuple(results)
