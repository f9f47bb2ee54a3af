"""How much more evidence a release gate needs before its interval clears the threshold.

Each estimate assumes the observed rate or effect stays as it is and asks how many ratings
or cases make the confidence interval lie entirely on one side of the gate's threshold.
It is a planning figure for "keep rating or stop", not a power calculation with a
guaranteed error rate: the real interval will move as new data arrive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from metrics.stats import MaybeNumber, StatResult, paired_arrays, wilson_interval

Direction = Literal["above", "below"]


@dataclass(frozen=True)
class EvidenceNeeded(StatResult):
    """``required_n`` is the total sample size at which the interval, centred on the same
    observed value, falls entirely at or above (``direction="above"``) or entirely below the
    threshold; ``additional_n`` is how many more that is (0 when already decided)."""

    gate: str
    unit: str
    observed: float | None
    threshold: float
    confidence: float
    current_n: int
    current_low: float | None
    current_high: float | None
    decided: bool
    direction: Direction | None
    required_n: int | None
    additional_n: int | None
    reason: str | None = None


def _side(low: float, high: float, threshold: float) -> Direction | None:
    if low >= threshold:
        return "above"
    if high < threshold:
        return "below"
    return None


def _smallest_n(decides: Callable[[int], bool], start: int, max_n: int) -> int | None:
    """Smallest n in [start, max_n] with ``decides(n)``, for a predicate that stays true once
    it turns true (interval bounds tighten monotonically in n for a fixed observed value)."""
    if not decides(max_n):
        return None
    low, high = start, max_n
    while low < high:
        mid = (low + high) // 2
        if decides(mid):
            high = mid
        else:
            low = mid + 1
    return low


def win_rate_evidence(
    wins: int,
    ties: int,
    losses: int,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
    ties_as: Literal["half", "excluded"] = "half",
    max_n: int = 10_000_000,
) -> EvidenceNeeded:
    """Ratings needed before the Wilson interval of the win rate clears ``threshold``.

    ``ties_as="half"`` uses (wins + ties/2) / n over all ratings; ``"excluded"`` uses
    wins / (wins + losses), finds the decisive ratings needed and converts them to ratings
    with the observed share of decisive ones. Solved by bisection on statsmodels' Wilson
    bound (the bound at a fixed observed rate is monotone in n).
    """
    if min(wins, ties, losses) < 0:
        raise ValueError("counts must be non-negative")
    total = wins + ties + losses
    if ties_as == "half":
        successes, n = wins + ties / 2, total
    else:
        successes, n = float(wins), wins + losses
    observed = successes / n if n else None

    def result(
        *,
        low: float | None = None,
        high: float | None = None,
        direction: Direction | None = None,
        required: int | None = None,
        reason: str | None = None,
    ) -> EvidenceNeeded:
        decided = direction is not None and required == total
        return EvidenceNeeded(
            gate="win_rate",
            unit="ratings",
            observed=observed,
            threshold=threshold,
            confidence=confidence,
            current_n=total,
            current_low=low,
            current_high=high,
            decided=decided,
            direction=direction,
            required_n=required,
            additional_n=required - total if required is not None else None,
            reason=reason,
        )

    if observed is None:
        return result(reason="no ratings yet" if total == 0 else "only ties: no decisive ratings yet")
    low, high = wilson_interval(successes, n, confidence=confidence)
    side = _side(low, high, threshold)
    if side is not None:
        return result(low=low, high=high, direction=side, required=total)
    if math.isclose(observed, threshold):
        return result(
            low=low,
            high=high,
            reason="the observed rate equals the threshold: no number of ratings decides at this rate",
        )
    target: Direction = "above" if observed > threshold else "below"

    def decides(size: int) -> bool:
        bound_low, bound_high = wilson_interval(observed * size, size, confidence=confidence)
        return _side(bound_low, bound_high, threshold) == target

    needed = _smallest_n(decides, max(n, 1), max_n)
    if needed is None:
        return result(low=low, high=high, reason=f"more than {max_n} ratings would be needed")
    if ties_as == "excluded":
        # Decisive ratings needed -> ratings needed, at the observed share of decisive ones.
        needed = max(total, math.ceil(needed * total / n))
    return result(low=low, high=high, direction=target, required=needed)


def mean_difference_evidence_from_summary(
    *,
    mean: float,
    sd: float,
    n: int,
    threshold: float,
    confidence: float = 0.95,
) -> EvidenceNeeded:
    """Cases needed before the normal-approximation interval ``mean +- z * sd / sqrt(n)``
    clears ``threshold`` (gates such as "mean difference >= -0.2").

    Closed form ``n = (z * sd / (mean - threshold))**2``, rounded up; the normal interval
    approximates the bootstrap percentile interval of a mean for moderate n.
    """
    z = float(norm.ppf(0.5 + confidence / 2))

    def result(
        *,
        low: float | None = None,
        high: float | None = None,
        direction: Direction | None = None,
        required: int | None = None,
        reason: str | None = None,
    ) -> EvidenceNeeded:
        return EvidenceNeeded(
            gate="mean_difference",
            unit="cases",
            observed=mean if n else None,
            threshold=threshold,
            confidence=confidence,
            current_n=n,
            current_low=low,
            current_high=high,
            decided=direction is not None and required == n,
            direction=direction,
            required_n=required,
            additional_n=required - n if required is not None else None,
            reason=reason,
        )

    if n < 2 or not math.isfinite(sd):
        return result(reason="need at least two cases to estimate the variance")
    half_width = z * sd / math.sqrt(n)
    low, high = mean - half_width, mean + half_width
    side = _side(low, high, threshold)
    if side is not None:
        return result(low=low, high=high, direction=side, required=n)
    if math.isclose(mean, threshold):
        return result(
            low=low,
            high=high,
            reason="the observed mean equals the threshold: no number of cases decides at this effect",
        )
    target: Direction = "above" if mean > threshold else "below"
    needed = math.ceil((z * sd / (mean - threshold)) ** 2)
    # Guard the rounding at the boundary: the "below" side is strict.
    while _side(mean - z * sd / math.sqrt(needed), mean + z * sd / math.sqrt(needed), threshold) != target:
        needed += 1
    return result(low=low, high=high, direction=target, required=max(needed, n))


def mean_difference_evidence(
    a: Sequence[MaybeNumber],
    b: Sequence[MaybeNumber],
    *,
    threshold: float,
    confidence: float = 0.95,
) -> EvidenceNeeded:
    """``mean_difference_evidence_from_summary`` for paired per-case values, on ``b - a``
    (candidate minus baseline) over complete pairs."""
    x, y, _ = paired_arrays(a, b)
    diff = y - x
    return mean_difference_evidence_from_summary(
        mean=float(diff.mean()) if diff.size else math.nan,
        sd=float(np.std(diff, ddof=1)) if diff.size > 1 else math.nan,
        n=int(diff.size),
        threshold=threshold,
        confidence=confidence,
    )
