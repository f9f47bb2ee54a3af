"""Paired comparisons of two adapters on the same cases, win rates and rank correlation.

Plain functions over lists/arrays returning frozen dataclasses; the report and gate layers
turn them into numbers for ML leads. Conventions: a difference is always ``b - a``
(candidate minus baseline), undefined quantities are ``None`` with a ``reason``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats as sps

MaybeNumber = float | int | None
Alternative = Literal["two-sided", "less", "greater"]
BootstrapMethod = Literal["percentile", "BCa", "basic"]


def _plain(value: Any) -> Any:
    """JSON-serialisable copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, StatResult):
        return value.to_dict()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    # Ids may be UUIDs or other hashables; JSON gets their text form.
    return str(value)


class StatResult:
    """Base of every result dataclass in ``metrics``: adds ``to_dict()``."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    result = float(value)
    return result if math.isfinite(result) else None


Numbers = Sequence[MaybeNumber] | np.ndarray
"""Values with None (or NaN, in an array) where missing."""


def _to_float_array(values: Iterable[MaybeNumber] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(float).reshape(-1)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def paired_arrays(a: Numbers, b: Numbers) -> tuple[np.ndarray, np.ndarray, int]:
    """The complete pairs of ``a`` and ``b`` and how many pairs were dropped (None/NaN on either side)."""
    if len(a) != len(b):
        raise ValueError(f"paired inputs differ in length: {len(a)} != {len(b)}")
    x, y = _to_float_array(a), _to_float_array(b)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], int((~keep).sum())


def _bootstrap_mean_ci(
    values: np.ndarray, *, resamples: int, confidence: float, seed: int, method: BootstrapMethod
) -> tuple[float | None, float | None]:
    if values.size < 2:
        return None, None
    if np.all(values == values[0]):
        # Every resample has the same mean; scipy's BCa would divide by zero here.
        return float(values[0]), float(values[0])
    if method == "percentile" and resamples > 0:
        low, high = _percentile_bootstrap_mean(values, resamples=resamples, confidence=confidence, seed=seed)
        return _finite_or_none(low), _finite_or_none(high)
    result = sps.bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method=method,
        vectorized=True,
        # Bounds memory at about 80 MB: resamples (and BCa's jackknife) are built in batches.
        batch=_bootstrap_batch(values.size),
        rng=np.random.default_rng(seed),
    )
    return _finite_or_none(result.confidence_interval.low), _finite_or_none(result.confidence_interval.high)


def _bootstrap_batch(n: int) -> int:
    # Bounds memory at about 80 MB: resamples are drawn in batches.
    return max(1, 10_000_000 // n)


def _percentile_bootstrap_mean(
    values: np.ndarray, *, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """``scipy.stats.bootstrap(values, np.mean, method="percentile")`` step for step: the same
    draws from ``default_rng(seed)``, batches, means and ``scipy.stats.quantile``, so the same
    interval to the last bit (a test compares them). Inside ``reuse_resamples()`` the drawn
    indices are kept, and a later bootstrap with the same seed, n and count reuses them instead
    of drawing them again (the draws would be identical)."""
    n = values.size
    theta = np.concatenate(
        [np.mean(values[..., index], axis=-1) for index in _resample_indices(n, resamples, seed)]
    )
    alpha = np.asarray((1 - confidence) / 2, dtype=theta.dtype)
    ci = sps.quantile(theta, np.stack((alpha, 1 - alpha), axis=-1), axis=-1)
    return float(ci[..., 0]), float(ci[..., 1])


_REUSE: ContextVar[dict[tuple[int, int, int], list[np.ndarray]] | None] = ContextVar(
    "bootstrap_reuse", default=None
)
_REUSE_BYTES = 256 * 2**20


@contextmanager
def reuse_resamples() -> Iterator[None]:
    """Within the block, percentile bootstraps of the mean with the same seed, sample size and
    resample count share their resample indices (a report bootstraps many statistics over the
    same cases with one seed). The results are unchanged; the memory is freed on exit."""
    token = _REUSE.set({})
    try:
        yield
    finally:
        _REUSE.reset(token)


def _resample_indices(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    cache = _REUSE.get()
    key = (seed, n, resamples)
    if cache is not None and key in cache:
        return cache[key]
    rng = np.random.default_rng(seed)
    batch = _bootstrap_batch(n)
    # As scipy's _bootstrap_resample: rng.integers(0, n, (batch, n)) per batch of resamples.
    indices = [
        rng.integers(0, n, (min(batch, resamples - k), n), dtype=np.int64, endpoint=False)
        for k in range(0, resamples, batch)
    ]
    if cache is not None:
        small = [i.astype(np.int32) for i in indices] if n < 2**31 else indices
        if sum(i.nbytes for i in small) + sum(i.nbytes for v in cache.values() for i in v) <= _REUSE_BYTES:
            cache[key] = small
    return indices


def _interval_reason(n: int, low: float | None, method: str) -> str | None:
    if n < 2:
        return "a single observation has no interval" if n == 1 else None
    if low is None:
        return f"the {method} bootstrap interval is undefined for these data; try method='percentile'"
    return None


@dataclass(frozen=True)
class MeanCI(StatResult):
    """Mean of one sample with a bootstrap interval."""

    n: int
    n_dropped: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    method: str
    resamples: int
    seed: int
    reason: str | None = None


def mean_ci(
    values: Numbers,
    *,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    method: BootstrapMethod = "percentile",
) -> MeanCI:
    """Mean with a seeded bootstrap interval (per-criterion means of 1-5 ratings)."""
    x = _to_float_array(values)
    kept = x[np.isfinite(x)]
    common: dict[str, Any] = {
        "n": int(kept.size),
        "n_dropped": int(x.size - kept.size),
        "confidence": confidence,
        "method": method,
        "resamples": resamples,
        "seed": seed,
    }
    if kept.size == 0:
        return MeanCI(mean=None, std=None, ci_low=None, ci_high=None, reason="no values", **common)
    low, high = _bootstrap_mean_ci(kept, resamples=resamples, confidence=confidence, seed=seed, method=method)
    return MeanCI(
        mean=float(kept.mean()),
        std=float(kept.std(ddof=1)) if kept.size > 1 else None,
        ci_low=low,
        ci_high=high,
        reason=_interval_reason(kept.size, low, method),
        **common,
    )


@dataclass(frozen=True)
class PairedBootstrap(StatResult):
    """Mean of ``b - a`` over complete pairs with a bootstrap interval."""

    n: int
    n_dropped: int
    mean_a: float | None
    mean_b: float | None
    mean_difference: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    method: str
    resamples: int
    seed: int
    reason: str | None = None


def paired_bootstrap(
    a: Numbers,
    b: Numbers,
    *,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    method: BootstrapMethod = "percentile",
) -> PairedBootstrap:
    """Mean difference ``b - a`` (candidate minus baseline) with a seeded bootstrap interval.

    Cases are resampled as pairs; for the mean this is the same as resampling the
    per-case differences, which is what is done (``scipy.stats.bootstrap``).
    """
    x, y, dropped = paired_arrays(a, b)
    common: dict[str, Any] = {
        "n": int(x.size),
        "n_dropped": dropped,
        "confidence": confidence,
        "method": method,
        "resamples": resamples,
        "seed": seed,
    }
    if x.size == 0:
        return PairedBootstrap(
            mean_a=None,
            mean_b=None,
            mean_difference=None,
            ci_low=None,
            ci_high=None,
            reason="no complete pairs",
            **common,
        )
    diff = y - x
    low, high = _bootstrap_mean_ci(diff, resamples=resamples, confidence=confidence, seed=seed, method=method)
    return PairedBootstrap(
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        mean_difference=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        reason=_interval_reason(x.size, low, method),
        **common,
    )


@dataclass(frozen=True)
class HypothesisTest(StatResult):
    """A test statistic and p-value on complete pairs."""

    test: str
    n: int
    n_dropped: int
    statistic: float | None
    p_value: float | None
    alternative: str
    reason: str | None = None


def paired_permutation_test(
    a: Sequence[MaybeNumber],
    b: Sequence[MaybeNumber],
    *,
    resamples: int = 10000,
    seed: int = 0,
    alternative: Alternative = "two-sided",
) -> HypothesisTest:
    """Sign-flip permutation test of mean ``b - a`` = 0; exact when 2**n <= resamples.

    ``alternative="greater"`` tests whether b (candidate) is better than a.
    """
    x, y, dropped = paired_arrays(a, b)
    if x.size == 0:
        return HypothesisTest("paired_permutation", 0, dropped, None, None, alternative, "no complete pairs")
    if np.all(x == y):
        return HypothesisTest(
            "paired_permutation", int(x.size), dropped, 0.0, None, alternative, "all differences are zero"
        )

    def mean_difference(first: np.ndarray, second: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(second - first, axis=axis)

    result = sps.permutation_test(
        (x, y),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return HypothesisTest(
        "paired_permutation",
        int(x.size),
        dropped,
        float(result.statistic),
        min(1.0, float(result.pvalue)),
        alternative,
    )


def wilcoxon_test(
    a: Sequence[MaybeNumber],
    b: Sequence[MaybeNumber],
    *,
    alternative: Alternative = "two-sided",
    zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox",
) -> HypothesisTest:
    """Wilcoxon signed-rank test on ``b - a`` (``scipy.stats.wilcoxon``).

    With the default ``zero_method="wilcox"`` zero differences are discarded, as in
    Wilcoxon's original test; scipy picks the exact distribution for small n without ties.
    """
    x, y, dropped = paired_arrays(a, b)
    if x.size == 0:
        return HypothesisTest("wilcoxon", 0, dropped, None, None, alternative, "no complete pairs")
    diff = y - x
    if np.all(diff == 0):
        return HypothesisTest(
            "wilcoxon", int(x.size), dropped, None, None, alternative, "all differences are zero"
        )
    result = sps.wilcoxon(diff, zero_method=zero_method, alternative=alternative)
    return HypothesisTest(
        "wilcoxon",
        int(x.size),
        dropped,
        _finite_or_none(result.statistic),
        _finite_or_none(result.pvalue),
        alternative,
    )


@dataclass(frozen=True)
class SliceSummary(StatResult):
    """Paired summary of ``b - a`` within one slice of cases."""

    slice: str
    n_cases: int
    wins: int
    ties: int
    losses: int
    paired: PairedBootstrap
    wilcoxon: HypothesisTest


def aggregate_by_slice(
    values_by_case: Mapping[Hashable, tuple[MaybeNumber, MaybeNumber]],
    slices_by_case: Mapping[Hashable, Iterable[str]],
    *,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    overall: str | None = "all",
) -> tuple[SliceSummary, ...]:
    """Per slice (tag, ``origin:synthetic``, ``split:heldout``, adversarial category, ...) the
    paired summary of ``b - a``.

    ``values_by_case`` maps a case id to ``(a_value, b_value)``; ``slices_by_case`` maps it to
    the slice names it belongs to (a case may sit in several; cases absent from it only count
    in ``overall``). Wins/ties/losses count cases where b is above/equal to/below a. Slices
    are returned sorted by name, with ``overall`` (all cases) first unless it is None.
    """
    members: dict[str, list[Hashable]] = {}
    for case_id in values_by_case:
        for name in slices_by_case.get(case_id, ()):
            members.setdefault(name, []).append(case_id)
    ordered = sorted(members.items())
    if overall is not None:
        ordered.insert(0, (overall, list(values_by_case)))

    summaries = []
    for name, case_ids in ordered:
        a = [values_by_case[c][0] for c in case_ids]
        b = [values_by_case[c][1] for c in case_ids]
        x, y, _ = paired_arrays(a, b)
        summaries.append(
            SliceSummary(
                slice=name,
                n_cases=len(case_ids),
                wins=int((y > x).sum()),
                ties=int((y == x).sum()),
                losses=int((y < x).sum()),
                paired=paired_bootstrap(a, b, resamples=resamples, confidence=confidence, seed=seed),
                wilcoxon=wilcoxon_test(a, b),
            )
        )
    return tuple(summaries)


def wilson_interval(successes: float, n: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (statsmodels); ``successes`` may be fractional (ties as half)."""
    from statsmodels.stats.proportion import proportion_confint  # ~1 s to import: only when used

    low, high = proportion_confint(successes, n, alpha=1.0 - confidence, method="wilson")
    return float(low), float(high)


@dataclass(frozen=True)
class Rate(StatResult):
    """A proportion with its Wilson interval."""

    rate: float | None
    ci_low: float | None
    ci_high: float | None


def _rate(successes: float, n: float, confidence: float) -> Rate:
    if n <= 0:
        return Rate(None, None, None)
    low, high = wilson_interval(successes, n, confidence=confidence)
    return Rate(successes / n, low, high)


@dataclass(frozen=True)
class WinRate(StatResult):
    """Win/tie/loss rates of the candidate over all ratings, with Wilson intervals.

    ``ties_as_half`` is (wins + ties/2) / n; ``decisive`` is wins / (wins + losses).
    ``sign_test_p_value`` is the exact binomial test of wins vs losses with ties excluded.
    """

    wins: int
    ties: int
    losses: int
    n: int
    confidence: float
    win: Rate
    tie: Rate
    loss: Rate
    ties_as_half: Rate
    decisive: Rate
    sign_test_p_value: float | None
    alternative: str
    reason: str | None = None


def win_rate(
    wins: int,
    ties: int,
    losses: int,
    *,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
) -> WinRate:
    """Win, tie and loss rates with Wilson intervals, plus an exact sign test.

    Ties: the sign test drops them (the classical sign test conditions on the non-tied
    comparisons); ``ties_as_half`` counts each as half a win, with a Wilson interval on the
    fractional count, which is conservative because a half-point score varies less than a
    Bernoulli trial of the same mean. ``alternative="greater"`` tests wins > losses.
    """
    if min(wins, ties, losses) < 0:
        raise ValueError("counts must be non-negative")
    n = wins + ties + losses
    decisive = wins + losses
    reason = None
    p_value = None
    if n == 0:
        reason = "no ratings"
    elif decisive == 0:
        reason = "only ties: the sign test is undefined"
    else:
        p_value = float(sps.binomtest(wins, decisive, 0.5, alternative=alternative).pvalue)
    return WinRate(
        wins=wins,
        ties=ties,
        losses=losses,
        n=n,
        confidence=confidence,
        win=_rate(wins, n, confidence),
        tie=_rate(ties, n, confidence),
        loss=_rate(losses, n, confidence),
        ties_as_half=_rate(wins + ties / 2, n, confidence),
        decisive=_rate(wins, decisive, confidence),
        sign_test_p_value=p_value,
        alternative=alternative,
        reason=reason,
    )


@dataclass(frozen=True)
class Correlation(StatResult):
    """One rank correlation coefficient with its p-value and bootstrap interval."""

    coefficient: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class RankCorrelation(StatResult):
    """Spearman's rho and Kendall's tau-b between two paired sequences."""

    n: int
    n_dropped: int
    spearman: Correlation
    kendall: Correlation
    confidence: float
    ci_method: str
    resamples: int
    seed: int
    reason: str | None = None


_NO_CORRELATION = Correlation(None, None, None, None)


def rank_correlation(
    x: Sequence[MaybeNumber],
    y: Sequence[MaybeNumber],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RankCorrelation:
    """Spearman and Kendall (tau-b) correlation of e.g. a metric's per-case difference with
    the human preference, with scipy p-values and seeded percentile bootstrap intervals
    (pairs resampled; resamples where either side is constant are skipped, since the
    coefficient is undefined there). None with a reason below 3 pairs or for constant input.
    """
    xs, ys, dropped = paired_arrays(x, y)
    common: dict[str, Any] = {
        "n": int(xs.size),
        "n_dropped": dropped,
        "confidence": confidence,
        "ci_method": "percentile bootstrap over pairs",
        "resamples": resamples,
        "seed": seed,
    }
    reason = None
    if xs.size < 3:
        reason = "fewer than 3 complete pairs"
    elif np.all(xs == xs[0]) or np.all(ys == ys[0]):
        reason = "constant input: rank correlation is undefined"
    if reason is not None:
        return RankCorrelation(spearman=_NO_CORRELATION, kendall=_NO_CORRELATION, reason=reason, **common)

    spearman = sps.spearmanr(xs, ys)
    kendall = sps.kendalltau(xs, ys)
    rng = np.random.default_rng(seed)
    rho_samples, tau_samples = [], []
    for _ in range(resamples):
        idx = rng.integers(0, xs.size, xs.size)
        bx, by = xs[idx], ys[idx]
        if np.all(bx == bx[0]) or np.all(by == by[0]):
            continue
        rho_samples.append(sps.spearmanr(bx, by).statistic)
        tau_samples.append(sps.kendalltau(bx, by).statistic)
    tail = 100 * (1 - confidence) / 2

    def interval(samples: list[float]) -> tuple[float | None, float | None]:
        if not samples:
            return None, None
        low, high = np.percentile(samples, [tail, 100 - tail])
        return float(low), float(high)

    return RankCorrelation(
        spearman=Correlation(
            _finite_or_none(spearman.statistic), _finite_or_none(spearman.pvalue), *interval(rho_samples)
        ),
        kendall=Correlation(
            _finite_or_none(kendall.statistic), _finite_or_none(kendall.pvalue), *interval(tau_samples)
        ),
        **common,
    )
