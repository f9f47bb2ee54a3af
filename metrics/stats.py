"""Paired comparisons of two adapters on the same cases, win rates and rank correlation.

Plain functions over lists/arrays returning frozen dataclasses; the report and gate layers
turn them into numbers for ML leads. Conventions: a difference is always ``b - a``
(candidate minus baseline), undefined quantities are ``None`` with a ``reason``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy import stats as sps

MaybeNumber = float | int | None
#: Default bound on each endpoint's Monte-Carlo standard error, as a share of the interval's width.
MC_TARGET = 0.01
#: Below this many replicates beyond an endpoint (B x alpha), the order statistics around it are too
#: few to estimate its Monte-Carlo error; the normal-theory estimate is used instead.
_MIN_TAIL_REPLICATES = 10
#: Values with at most n / this many distinct values are resampled as multinomial counts per value.
_FEW_DISTINCT = 8
#: A multinomial resample costs one binomial draw per distinct value, each about this many index draws.
_BINOMIAL_COST = 8
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
        # A field marked OMIT_NONE is left out while None: results computed before it existed had
        # no such key, and reopening a frozen one must find the same keys.
        return {
            f.name: _plain(value)
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) is not None or not f.metadata.get("omit_none")
        }


def mc_field() -> Any:
    """A Monte-Carlo error field: None (and absent from ``to_dict``) unless it was computed."""
    return dataclasses.field(default=None, metadata={"omit_none": True})


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


@dataclass(frozen=True)
class _Interval:
    low: float | None
    high: float | None
    resamples: int
    mc_se_low: float | None = None
    mc_se_high: float | None = None


def _bootstrap_mean_ci(
    values: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
    method: BootstrapMethod,
    mc_target: float | None = None,
    max_draws: int | None = None,
    weights: np.ndarray | None = None,
) -> _Interval:
    if values.size < 2:
        return _Interval(None, None, resamples)
    if np.all(values == values[0]):
        # Every resample has the same mean; scipy's BCa would divide by zero here.
        point = float(values[0])
        return _Interval(point, point, resamples, *((0.0, 0.0) if mc_target is not None else (None, None)))
    if weights is not None:
        if method != "percentile" or resamples <= 0:
            raise ValueError("a weighted mean is bootstrapped by the percentile method only")
        return _weighted_percentile_mean(
            values,
            weights,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            mc_target=mc_target,
            max_draws=max_draws,
        )
    if method == "percentile" and resamples > 0 and mc_target is not None:
        return _adaptive_percentile_mean(
            values,
            resamples=resamples,
            confidence=confidence,
            seed=seed,
            mc_target=mc_target,
            max_draws=max_draws,
        )
    if method == "percentile" and resamples > 0:
        low, high = _percentile_bootstrap_mean(values, resamples=resamples, confidence=confidence, seed=seed)
        return _Interval(_finite_or_none(low), _finite_or_none(high), resamples)
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
    return _Interval(
        _finite_or_none(result.confidence_interval.low),
        _finite_or_none(result.confidence_interval.high),
        resamples,
    )


def percentile_mc_se(replicates: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Monte-Carlo standard errors of the two endpoints of a percentile interval read off
    ``replicates`` (bootstrap statistics; NaN ignored), each ``None`` when there are fewer than 2.

    The binomial (order-statistic) method: the number of replicates below the true q-quantile is
    Binomial(B, q), so the order statistics ``B q -+ sqrt(B q (1 - q))`` bracket it with about 68%
    probability, and half their distance estimates the standard error. It needs no assumption on
    the shape of the distribution. With fewer than 10 replicates beyond an endpoint those order
    statistics are too few, and the normal-theory value ``sd * sqrt(q (1 - q) / B) / phi(z_q)`` is
    used instead.
    """
    theta = np.sort(np.asarray(replicates, dtype=float).reshape(-1))
    theta = theta[np.isfinite(theta)]
    size = theta.size
    if size < 2:
        return None, None
    alpha = (1 - confidence) / 2
    out: list[float] = []
    for q in (alpha, 1 - alpha):
        half = math.sqrt(size * q * (1 - q))
        lo, hi = math.floor(size * q - half), math.ceil(size * q + half)
        if size * min(q, 1 - q) >= _MIN_TAIL_REPLICATES and lo >= 0 and hi <= size - 1:
            out.append(float(theta[hi] - theta[lo]) / 2)
        else:
            sd = float(np.std(theta, ddof=1))
            out.append(sd * math.sqrt(q * (1 - q) / size) / float(sps.norm.pdf(sps.norm.ppf(q))))
    return out[0], out[1]


def _adaptive_percentile_mean(
    values: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
    mc_target: float,
    max_draws: int | None,
) -> _Interval:
    """Percentile bootstrap of the mean that resamples until each endpoint's Monte-Carlo standard
    error (``percentile_mc_se``) is at most ``mc_target`` times the interval's width, starting from
    ``resamples`` and stopping at the cap (``max_draws`` random draws, never below ``resamples``).
    The errors are returned either way, so a capped interval says how rough it is.

    Deterministic: the replicates are the seeded stream's first B, whatever route reached B. Few
    distinct values (k <= n / 8: case means of 1-5 ratings, flags) are resampled as multinomial
    counts per value, the same distribution as drawing n indices at k instead of n draws each.
    """
    n = values.size
    levels, counts = np.unique(values, return_counts=True)
    few = levels.size * _FEW_DISTINCT <= n
    cost = levels.size * _BINOMIAL_COST if few else n
    rng = np.random.default_rng(seed)
    stream = None if few else _stream(n, seed)
    shares = counts / n

    def draw(start: int, stop: int) -> np.ndarray:
        if few:
            return np.asarray(rng.multinomial(n, shares, size=stop - start) @ levels / n)
        assert stream is not None
        return np.concatenate([np.mean(values[index], axis=-1) for index in stream.blocks(start, stop)])

    return _adaptive_percentile(
        draw, cost=cost, resamples=resamples, confidence=confidence, mc_target=mc_target, max_draws=max_draws
    )


def _adaptive_percentile(
    draw: Callable[[int, int], np.ndarray],
    *,
    cost: int,
    resamples: int,
    confidence: float,
    mc_target: float,
    max_draws: int | None,
) -> _Interval:
    """The percentile interval of the replicates ``draw(start, stop)`` yields (the seeded stream's
    replicates start to stop), grown until each endpoint's Monte-Carlo error is at most ``mc_target``
    times the width or ``max_draws / cost`` replicates are drawn (``cost``: random draws per replicate)."""
    cap = max(resamples, (max_draws // cost) if max_draws else resamples * 16)
    alpha = (1 - confidence) / 2
    theta = draw(0, resamples)
    while True:
        # numpy's "linear" quantile is scipy.stats.quantile's default, at a tenth of its overhead.
        low, high = (float(v) for v in np.quantile(theta, [alpha, 1 - alpha]))
        se_low, se_high = percentile_mc_se(theta, confidence)
        worst = max(se_low or 0.0, se_high or 0.0)
        allowed = mc_target * (high - low)
        if worst <= allowed or theta.size >= cap:
            break
        # The error falls as 1 / sqrt(B): aim 20% past the estimate, at least half as many again.
        wanted = math.ceil(theta.size * (worst / allowed) ** 2 * 1.2) if allowed > 0 else cap
        grown = min(cap, max(wanted, theta.size + theta.size // 2))
        theta = np.concatenate([theta, draw(theta.size, grown)])
    return _Interval(_finite_or_none(low), _finite_or_none(high), int(theta.size), se_low, se_high)


def hajek_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted mean ``sum(w y) / sum(w)``: with ``w = 1 / inclusion probability`` the Hajek
    (ratio) estimator of a population mean from an unequal-probability sample. Its bias is of order
    1/n, where the plain mean of the sample keeps the sample's over-representation at any n."""
    return float(np.sum(weights * values) / np.sum(weights))


def _kept_weights(weights: Numbers | None, keep: np.ndarray) -> np.ndarray | None:
    """The weights of the kept values (None stays None), refused unless there is one per value and
    every kept one is finite and positive: a unit with no chance of being drawn has no weight, the
    caller leaves it out."""
    if weights is None:
        return None
    w = _to_float_array(weights)
    if w.shape != keep.shape:
        raise ValueError(f"one weight per value: {w.size} weights for {keep.size} values")
    w = w[keep]
    if not np.all(np.isfinite(w) & (w > 0)):
        raise ValueError("weights must be finite and positive where there is a value")
    return w


def _weighted_percentile_mean(
    values: np.ndarray,
    weights: np.ndarray,
    *,
    resamples: int,
    confidence: float,
    seed: int,
    mc_target: float | None,
    max_draws: int | None,
) -> _Interval:
    """Percentile bootstrap of ``hajek_mean``: the units are resampled with the report's seeded
    indices (the same draws an unweighted bootstrap of the same n and seed makes) and the weighted
    ratio is recomputed on each resample, so its interval carries the weights' extra variance.
    With ``mc_target`` it grows as ``_adaptive_percentile_mean`` does."""
    n = values.size
    wy = weights * values

    def ratios(index: np.ndarray) -> np.ndarray:
        return np.asarray(np.sum(wy[index], axis=-1) / np.sum(weights[index], axis=-1))

    if mc_target is None:
        theta = np.concatenate([ratios(index) for index in _resample_indices(n, resamples, seed)])
        alpha = (1 - confidence) / 2
        low, high = (float(v) for v in np.quantile(theta, [alpha, 1 - alpha]))
        return _Interval(_finite_or_none(low), _finite_or_none(high), resamples)
    stream = _stream(n, seed)

    def draw(start: int, stop: int) -> np.ndarray:
        return np.concatenate([ratios(index) for index in stream.blocks(start, stop)])

    return _adaptive_percentile(
        draw, cost=n, resamples=resamples, confidence=confidence, mc_target=mc_target, max_draws=max_draws
    )


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
    streams = _STREAMS.set({})
    try:
        yield
    finally:
        _STREAMS.reset(streams)
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


class _Stream:
    """The seeded resample indices for one sample size, drawn as far as asked and kept: block after
    block of ``rng.integers(0, n, (rows, n))``, which yields the same numbers however the rows are
    split (the legacy fixed-count path, scipy's batches, draws the same first B)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.drawn: list[np.ndarray] = []
        self.count = 0

    def blocks(self, start: int, stop: int) -> Iterator[np.ndarray]:
        batch = _bootstrap_batch(self.n)
        while self.count < stop:
            rows = min(batch, stop - self.count)
            block = self.rng.integers(0, self.n, (rows, self.n), dtype=np.int64, endpoint=False)
            self.drawn.append(block.astype(np.int32) if self.n < 2**31 else block)
            self.count += rows
        offset = 0
        for block in self.drawn:
            lo, hi = max(start - offset, 0), min(stop - offset, block.shape[0])
            if lo < hi:
                yield block[lo:hi]
            offset += block.shape[0]


def _stream(n: int, seed: int) -> _Stream:
    """The shared stream inside ``reuse_resamples()`` (while its indices fit the memory bound), else a new one."""
    cache = _STREAMS.get()
    if cache is None:
        return _Stream(n, seed)
    key = (seed, n)
    if key not in cache:
        held = sum(block.nbytes for stream in cache.values() for block in stream.drawn)
        if held > _REUSE_BYTES:
            return _Stream(n, seed)
        cache[key] = _Stream(n, seed)
    return cache[key]


_STREAMS: ContextVar[dict[tuple[int, int], _Stream] | None] = ContextVar("bootstrap_streams", default=None)


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
    """The resamples used (with ``mc_target``, as many as it took, up to the cap)."""
    seed: int
    reason: str | None = None
    mc_se_low: float | None = mc_field()
    """Monte-Carlo standard error of ``ci_low`` (``percentile_mc_se``); likewise ``mc_se_high``."""
    mc_se_high: float | None = mc_field()
    mc_target: float | None = mc_field()
    """The bound aimed at: each endpoint's error at most this share of the width, unless capped."""
    weighted: bool | None = mc_field()
    """True when the mean is ``hajek_mean`` with the weights given (absent for a plain mean)."""


def _mc_fields(interval: _Interval, mc_target: float | None) -> dict[str, Any]:
    if mc_target is None:
        return {"resamples": interval.resamples}
    return {
        "resamples": interval.resamples,
        "mc_se_low": interval.mc_se_low,
        "mc_se_high": interval.mc_se_high,
        "mc_target": mc_target,
    }


def mean_ci(
    values: Numbers,
    *,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    method: BootstrapMethod = "percentile",
    mc_target: float | None = None,
    max_draws: int | None = None,
    weights: Numbers | None = None,
) -> MeanCI:
    """Mean with a seeded bootstrap interval (per-criterion means of 1-5 ratings).

    With ``mc_target`` (percentile method), ``resamples`` is where resampling starts: it goes on
    until each endpoint's Monte-Carlo standard error is at most ``mc_target`` x the width, or the
    cap of ``max_draws`` random draws is reached, and the errors are reported (``mc_se_low``,
    ``mc_se_high``) with the count used.

    With ``weights`` (one per value, positive where the value is present: one over each unit's
    inclusion probability) the mean is ``hajek_mean`` and the bootstrap recomputes it on each
    resample of the units; ``std`` is then the weighted standard deviation.
    """
    x = _to_float_array(values)
    present = np.isfinite(x)
    kept = x[present]
    w = _kept_weights(weights, present)
    common: dict[str, Any] = {
        "n": int(kept.size),
        "n_dropped": int(x.size - kept.size),
        "confidence": confidence,
        "method": method,
        "seed": seed,
    }
    if kept.size == 0:
        return MeanCI(
            mean=None, std=None, ci_low=None, ci_high=None, reason="no values", resamples=resamples, **common
        )
    interval = _bootstrap_mean_ci(
        kept,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        method=method,
        mc_target=mc_target,
        max_draws=max_draws,
        weights=w,
    )
    if w is None:
        mean, std = float(kept.mean()), float(kept.std(ddof=1)) if kept.size > 1 else None
    else:
        mean = hajek_mean(kept, w)
        std = math.sqrt(hajek_mean((kept - mean) ** 2, w)) if kept.size > 1 else None
    return MeanCI(
        mean=mean,
        std=std,
        ci_low=interval.low,
        ci_high=interval.high,
        reason=_interval_reason(kept.size, interval.low, method),
        **_mc_fields(interval, mc_target),
        weighted=None if w is None else True,
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
    """The resamples used (with ``mc_target``, as many as it took, up to the cap)."""
    seed: int
    reason: str | None = None
    mc_se_low: float | None = mc_field()
    """Monte-Carlo standard error of ``ci_low`` (``percentile_mc_se``); likewise ``mc_se_high``."""
    mc_se_high: float | None = mc_field()
    mc_target: float | None = mc_field()
    weighted: bool | None = mc_field()
    """True when the means are ``hajek_mean`` with the weights given (absent for plain means)."""


def paired_bootstrap(
    a: Numbers,
    b: Numbers,
    *,
    resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
    method: BootstrapMethod = "percentile",
    mc_target: float | None = None,
    max_draws: int | None = None,
    weights: Numbers | None = None,
) -> PairedBootstrap:
    """Mean difference ``b - a`` (candidate minus baseline) with a seeded bootstrap interval.

    Cases are resampled as pairs; for the mean this is the same as resampling the
    per-case differences, which is what is done (``scipy.stats.bootstrap``). ``mc_target`` and
    ``max_draws``: as in ``mean_ci``. ``weights`` (one per pair, positive on the complete ones):
    every mean is ``hajek_mean``, recomputed on each resample of the pairs.
    """
    x, y, dropped = paired_arrays(a, b)
    w = _kept_weights(weights, np.isfinite(_to_float_array(a)) & np.isfinite(_to_float_array(b)))
    common: dict[str, Any] = {
        "n": int(x.size),
        "n_dropped": dropped,
        "confidence": confidence,
        "method": method,
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
            resamples=resamples,
            **common,
        )
    diff = y - x
    interval = _bootstrap_mean_ci(
        diff,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        method=method,
        mc_target=mc_target,
        max_draws=max_draws,
        weights=w,
    )
    if w is None:
        means = float(x.mean()), float(y.mean()), float(diff.mean())
    else:
        means = hajek_mean(x, w), hajek_mean(y, w), hajek_mean(diff, w)
    return PairedBootstrap(
        mean_a=means[0],
        mean_b=means[1],
        mean_difference=means[2],
        ci_low=interval.low,
        ci_high=interval.high,
        reason=_interval_reason(x.size, interval.low, method),
        **_mc_fields(interval, mc_target),
        weighted=None if w is None else True,
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
    mc_se_low: float | None = mc_field()
    """Monte-Carlo standard errors of the interval's endpoints (``mc_error=True``)."""
    mc_se_high: float | None = mc_field()


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
    mc_error: bool = False,
) -> RankCorrelation:
    """Spearman and Kendall (tau-b) correlation of e.g. a metric's per-case difference with
    the human preference, with scipy p-values and seeded percentile bootstrap intervals
    (pairs resampled; resamples where either side is constant are skipped, since the
    coefficient is undefined there). None with a reason below 3 pairs or for constant input.
    Each refit costs a rank correlation, so the count is fixed; ``mc_error`` reports each
    endpoint's Monte-Carlo standard error (``percentile_mc_se``) beside it.
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

    def interval(samples: list[float]) -> tuple[float | None, ...]:
        if not samples:
            return (None, None, None, None) if mc_error else (None, None)
        low, high = np.percentile(samples, [tail, 100 - tail])
        if not mc_error:
            return float(low), float(high)
        return (float(low), float(high), *percentile_mc_se(np.array(samples), confidence))

    return RankCorrelation(
        spearman=Correlation(
            _finite_or_none(spearman.statistic), _finite_or_none(spearman.pvalue), *interval(rho_samples)
        ),
        kendall=Correlation(
            _finite_or_none(kendall.statistic), _finite_or_none(kendall.pvalue), *interval(tau_samples)
        ),
        **common,
    )
