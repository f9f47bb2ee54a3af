"""How much more evidence a release gate needs before its interval clears the threshold.

Each estimate assumes the observed rate or effect stays as it is and asks how many ratings
or cases make the confidence interval lie entirely on one side of the gate's threshold.
It is a planning figure for "keep rating or stop", not a power calculation with a
guaranteed error rate: the real interval will move as new data arrive.

Near the threshold the figure is very sensitive to the observed effect (it grows as
1 / (effect - threshold)^2), so a handful of new ratings can nearly halve or double it. Each
estimate therefore states its uncertainty: the same figure at the two ends of the observed
value's one-standard-error interval (``range_confidence``, 68.27%), unbounded on the side where that
interval reaches the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from metrics.stats import MaybeNumber, StatResult, mc_field, paired_arrays, wilson_interval

Direction = Literal["above", "below"]
#: The likely range of a "needed" figure comes from this interval of the observed value: one standard error.
RANGE_CONFIDENCE = 0.6827


@dataclass(frozen=True)
class EvidenceNeeded(StatResult):
    """``required_n`` is the total sample size at which the interval, centred on the same
    observed value, falls entirely at or above (``direction="above"``) or entirely below the
    threshold; ``additional_n`` is how many more that is (0 when already decided).

    With ``range_confidence`` set, ``required_n_low``..``required_n_high`` is the stated uncertainty
    of ``required_n``: the figure if the true value were at either end of the observed value's
    ``range_confidence`` interval. ``required_n_high`` None then means unbounded (that end reaches the
    threshold, where no sample size decides). ``additional_n_low``/``_high`` are the same less
    ``current_n``."""

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
    range_confidence: float | None = mc_field()
    required_n_low: int | None = mc_field()
    required_n_high: int | None = mc_field()
    additional_n_low: int | None = mc_field()
    additional_n_high: int | None = mc_field()


def _range_fields(
    *, current: int, required: int | None, bounds: tuple[int | None, int | None] | None
) -> dict[str, Any]:
    """The stated-uncertainty fields, given ``(low, high)`` of ``required_n`` (high None: unbounded)."""
    if bounds is None or required is None:
        return {}
    low, high = bounds
    low = min(required, max(current, low if low is not None else current))
    high = max(required, high) if high is not None else None
    return {
        "range_confidence": RANGE_CONFIDENCE,
        "required_n_low": low,
        "required_n_high": high,
        "additional_n_low": low - current,
        "additional_n_high": high - current if high is not None else None,
    }


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
    with_range: bool = True,
) -> EvidenceNeeded:
    """Ratings needed before the Wilson interval of the win rate clears ``threshold``.

    ``ties_as="half"`` uses (wins + ties/2) / n over all ratings; ``"excluded"`` uses
    wins / (wins + losses), finds the decisive ratings needed and converts them to ratings
    with the observed share of decisive ones. Solved by bisection on statsmodels' Wilson
    bound (the bound at a fixed observed rate is monotone in n). Deterministic: counts in,
    the same figure out. ``with_range``: state the figure's uncertainty (see ``EvidenceNeeded``),
    from the rate's Wilson interval at ``RANGE_CONFIDENCE``.
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
        bounds: tuple[int | None, int | None] | None = None,
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
            **_range_fields(current=total, required=required, bounds=bounds if with_range else None),
        )

    if observed is None:
        return result(reason="no ratings yet" if total == 0 else "only ties: no decisive ratings yet")
    low, high = wilson_interval(successes, n, confidence=confidence)
    side = _side(low, high, threshold)
    if side is not None:
        return result(low=low, high=high, direction=side, required=total, bounds=(total, total))
    if math.isclose(observed, threshold):
        return result(
            low=low,
            high=high,
            reason="the observed rate equals the threshold: no number of ratings decides at this rate",
        )
    target: Direction = "above" if observed > threshold else "below"

    def needed_at(rate: float) -> int | None:
        """Ratings needed if the true rate were ``rate`` (None: none decide, or past ``max_n``)."""
        if (rate - threshold) * (observed - threshold) <= 0 or math.isclose(rate, threshold):
            return None

        def decides(size: int) -> bool:
            bound_low, bound_high = wilson_interval(rate * size, size, confidence=confidence)
            return _side(bound_low, bound_high, threshold) == target

        needed = _smallest_n(decides, max(n, 1), max_n)
        if needed is not None and ties_as == "excluded":
            # Decisive ratings needed -> ratings needed, at the observed share of decisive ones.
            needed = max(total, math.ceil(needed * total / n))
        return needed

    needed = needed_at(observed)
    if needed is None:
        return result(low=low, high=high, reason=f"more than {max_n} ratings would be needed")
    near, far = wilson_interval(successes, n, confidence=RANGE_CONFIDENCE)
    if target == "below":
        near, far = far, near
    return result(
        low=low, high=high, direction=target, required=needed, bounds=(needed_at(far), needed_at(near))
    )


def mean_difference_evidence_from_summary(
    *,
    mean: float,
    sd: float,
    n: int,
    threshold: float,
    confidence: float = 0.95,
    with_range: bool = True,
) -> EvidenceNeeded:
    """Cases needed before the normal-approximation interval ``mean +- z * sd / sqrt(n)``
    clears ``threshold`` (gates such as "mean difference >= -0.2").

    Closed form ``n = (z * sd / (mean - threshold))**2``, rounded up; the normal interval
    approximates the bootstrap percentile interval of a mean for moderate n. ``with_range``: state
    the figure's uncertainty (see ``EvidenceNeeded``), from ``mean +- sd / sqrt(n)``.
    """
    z = float(norm.ppf(0.5 + confidence / 2))

    def result(
        *,
        low: float | None = None,
        high: float | None = None,
        direction: Direction | None = None,
        required: int | None = None,
        reason: str | None = None,
        bounds: tuple[int | None, int | None] | None = None,
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
            **_range_fields(current=n, required=required, bounds=bounds if with_range else None),
        )

    if n < 2 or not math.isfinite(sd):
        return result(reason="need at least two cases to estimate the variance")
    half_width = z * sd / math.sqrt(n)
    low, high = mean - half_width, mean + half_width
    side = _side(low, high, threshold)
    if side is not None:
        return result(low=low, high=high, direction=side, required=n, bounds=(n, n))
    if math.isclose(mean, threshold):
        return result(
            low=low,
            high=high,
            reason="the observed mean equals the threshold: no number of cases decides at this effect",
        )
    target: Direction = "above" if mean > threshold else "below"

    def needed_at(value: float) -> int | None:
        """Cases needed if the true mean were ``value`` (None: on or past the threshold)."""
        if (value - threshold) * (mean - threshold) <= 0 or math.isclose(value, threshold):
            return None
        needed = math.ceil((z * sd / (value - threshold)) ** 2)
        # Guard the rounding at the boundary: the "below" side is strict.
        while (
            _side(value - z * sd / math.sqrt(needed), value + z * sd / math.sqrt(needed), threshold) != target
        ):
            needed += 1
        return max(needed, n)

    one_se = float(norm.ppf(0.5 + RANGE_CONFIDENCE / 2)) * sd / math.sqrt(n)
    toward = -1.0 if target == "above" else 1.0
    return result(
        low=low,
        high=high,
        direction=target,
        required=needed_at(mean),
        bounds=(needed_at(mean - toward * one_se), needed_at(mean + toward * one_se)),
    )


def mean_difference_evidence(
    a: Sequence[MaybeNumber],
    b: Sequence[MaybeNumber],
    *,
    threshold: float,
    confidence: float = 0.95,
    with_range: bool = True,
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
        with_range=with_range,
    )
