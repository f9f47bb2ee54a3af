"""Uncertainty-first routing of pairs to experts, and a win-rate estimate that stays unbiased under it.

Experts see first the pairs the judge is least sure of (low margin, or the two orders disagree), mixed
with a uniform random audit share. The win rate is then estimated by prediction-powered inference with
known inclusion probabilities (the "active inference" estimator of Zrnic and Candès, 2024): the judge's
prediction on every pair, corrected by the expert-minus-judge residual on the rated pairs, each residual
weighted by one over its inclusion probability. docs/judge.md says why this estimator and not plain
inverse-probability weighting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from metrics.stats import StatResult, hajek_mean

ArrayLike = np.ndarray | list[float]


def judge_uncertainty(p_first: ArrayLike, p_second: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The judge's prediction and its uncertainty per pair, from its two orders.

    ``p_first[i]`` and ``p_second[i]`` are the judge's probability that the candidate wins pair i
    with the pair shown one way and then swapped (both in the candidate's frame). The prediction is
    their mean. The uncertainty is the standard deviation a calibrated prediction leaves,
    ``sqrt(f (1 - f))``, largest at a margin of zero; a pair whose two orders pick different winners
    gets the largest value, 0.5, whatever its mean.
    """
    a, b = np.asarray(p_first, dtype=float), np.asarray(p_second, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("both orders need one probability per pair")
    both = np.concatenate([a, b])
    if not np.all(np.isfinite(both)) or np.any((both < 0) | (both > 1)):
        raise ValueError("judge probabilities must lie in [0, 1]")
    f = (a + b) / 2
    uncertainty = np.sqrt(f * (1 - f))
    disagree = np.sign(a - 0.5) * np.sign(b - 0.5) < 0
    uncertainty[disagree] = 0.5
    return f, uncertainty


def routing_weights(uncertainty: ArrayLike, *, audit_share: float = 0.2) -> np.ndarray:
    """Sampling weights summing to 1: ``audit_share`` spread uniformly (the random audit, which keeps
    every pair's inclusion probability above zero) and the rest in proportion to the uncertainty,
    the allocation that minimises the estimator's variance when the judge is calibrated."""
    u = np.asarray(uncertainty, dtype=float)
    if not 0 < audit_share <= 1:
        raise ValueError("audit_share must be in (0, 1]: without an audit some pairs could never be drawn")
    if u.size == 0 or np.any(u < 0) or not np.all(np.isfinite(u)):
        raise ValueError("uncertainty must be a non-empty array of non-negative numbers")
    uniform = np.full(u.size, 1 / u.size)
    total = u.sum()
    targeted = u / total if total > 0 else uniform
    return audit_share * uniform + (1 - audit_share) * targeted


@dataclass(frozen=True)
class RoutingPlan:
    """The order in which experts see the pairs (sequential Poisson sampling, Ohlsson 1998).

    Pair i gets a key ``U_i / w_i`` with ``U_i`` uniform on (0, 1) and ``w_i`` its weight; experts
    take pairs by increasing key. The first k pairs are then exactly the Poisson sample
    ``{i: U_i < min(1, t w_i)}`` for any t between the k-th and (k+1)-th key, so their inclusion
    probabilities are ``min(1, t w_i)`` (``inclusion_probabilities``).

    Each rated pair is also marked as an **audit** pair or not (``audit_mask``) with a second uniform
    draw ``V_i``, so that every pair is an audit pair with the same probability ``t a / N`` (``a`` the
    audit share): the audit pairs are a uniform sample, on which the judge's calibration against the
    experts is unbiased, whereas the routed pairs are the judge's hardest.
    """

    weights: np.ndarray
    audit_weight: float
    keys: np.ndarray
    audit_draws: np.ndarray
    order: np.ndarray

    def _threshold(self, n_rated: int) -> float:
        n = self.order.size
        if not 0 <= n_rated <= n:
            raise ValueError(f"n_rated must be between 0 and {n}")
        return math.inf if n_rated == n else float(self.keys[self.order[n_rated]])

    def inclusion_probabilities(self, n_rated: int) -> np.ndarray:
        """Every pair's probability of being among the first ``n_rated`` (t is the next key)."""
        t = self._threshold(n_rated)
        if math.isinf(t):
            return np.ones(self.order.size)
        return np.minimum(1.0, t * self.weights)

    def rated_mask(self, n_rated: int) -> np.ndarray:
        mask = np.zeros(self.order.size, dtype=bool)
        mask[self.order[:n_rated]] = True
        return mask

    def audit_mask(self, n_rated: int) -> np.ndarray:
        """The rated pairs that belong to the uniform audit: each pair with probability ``t a / N``
        (all rated pairs once every pair is rated)."""
        rated = self.rated_mask(n_rated)
        t = self._threshold(n_rated)
        if math.isinf(t) or self.audit_weight <= 0:
            return rated if math.isinf(t) else np.zeros_like(rated)
        pi = np.minimum(1.0, t * self.weights)
        # P(audit | rated) = min(1, t a/N) / pi, so P(audit) = min(1, t a/N) for every pair.
        return rated & (self.audit_draws < np.minimum(1.0, t * self.audit_weight) / pi)


def routing_plan(uncertainty: ArrayLike, *, audit_share: float = 0.2, seed: int = 0) -> RoutingPlan:
    """A seeded expert order: uncertainty-first with a uniform audit share (``routing_weights``).
    ``audit_share=1`` gives a uniform random order."""
    w = routing_weights(uncertainty, audit_share=audit_share)
    rng = np.random.default_rng(seed)
    keys = rng.random(w.size) / w
    return RoutingPlan(
        weights=w,
        audit_weight=audit_share / w.size,
        keys=keys,
        audit_draws=rng.random(w.size),
        order=np.argsort(keys, kind="stable"),
    )


def plan_restore(
    weights: ArrayLike, keys: ArrayLike, audit_draws: ArrayLike, *, audit_weight: float
) -> RoutingPlan:
    """The plan a study stored pair by pair (each pair's weight, key and audit draw), rebuilt so the
    report can ask it for inclusion probabilities."""
    w, k, v = (np.asarray(x, dtype=float) for x in (weights, keys, audit_draws))
    if not w.shape == k.shape == v.shape or w.ndim != 1 or w.size == 0:
        raise ValueError("weights, keys and audit draws must be 1-D, non-empty and of the same length")
    return RoutingPlan(
        weights=w, audit_weight=audit_weight, keys=k, audit_draws=v, order=np.argsort(k, kind="stable")
    )


def rated_prefix(plan: RoutingPlan, rated: ArrayLike) -> int:
    """How many pairs, in the plan's order, were rated before the first one that was not.

    Experts take pairs roughly in order, but not exactly (a rater never gets two pairs of one case, a
    pair may be skipped): the pairs rated beyond the first gap were not drawn by the plan's threshold,
    so the estimator keeps only this prefix, whose inclusion probabilities are known exactly."""
    mask = np.asarray(rated, dtype=bool)
    if mask.shape != plan.order.shape:
        raise ValueError("one rated flag per pair")
    in_order = mask[plan.order]
    gaps = np.flatnonzero(~in_order)
    return int(gaps[0]) if gaps.size else int(mask.size)


@dataclass(frozen=True)
class WinRateEstimate(StatResult):
    """A win rate (ties as half) with a normal-approximation interval."""

    estimator: str
    n_pairs: int
    n_rated: int
    estimate: float | None
    std_error: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    reason: str | None = None


def _normal_estimate(
    estimator: str, terms: np.ndarray, n_pairs: int, n_rated: int, confidence: float
) -> WinRateEstimate:
    if terms.size < 2:
        return WinRateEstimate(
            estimator, n_pairs, n_rated, None, None, None, None, confidence, "fewer than two terms"
        )
    estimate = float(terms.mean())
    se = float(terms.std(ddof=1) / math.sqrt(terms.size))
    z = float(norm.isf((1 - confidence) / 2))
    return WinRateEstimate(
        estimator, n_pairs, n_rated, estimate, se, estimate - z * se, estimate + z * se, confidence
    )


def ppi_win_rate(
    judge: ArrayLike,
    expert: ArrayLike,
    inclusion: ArrayLike,
    *,
    confidence: float = 0.95,
) -> WinRateEstimate:
    """The candidate's win rate from the judge on every pair and the experts on the rated ones.

    ``judge[i]`` is the judge's predicted score of pair i (probability the candidate wins, ties as
    half), ``expert[i]`` the experts' score (1 win, 0.5 tie, 0 loss) or NaN where not rated, and
    ``inclusion[i]`` the probability that pair i was rated under the plan that chose it. Each pair
    contributes ``judge + rated * (expert - judge) / inclusion``, an unbiased term for the expected
    expert score under Poisson sampling, whatever the judge's quality; the estimate is their mean
    and its interval the normal one from their spread. With every pair rated it is the plain mean
    of the expert scores.
    """
    f = np.asarray(judge, dtype=float)
    y = np.asarray(expert, dtype=float)
    pi = np.asarray(inclusion, dtype=float)
    if not f.shape == y.shape == pi.shape or f.ndim != 1:
        raise ValueError("judge, expert and inclusion must be 1-D and of the same length")
    rated = np.isfinite(y)
    if np.any(pi[rated] <= 0) or np.any(pi > 1):
        raise ValueError("a rated pair needs an inclusion probability in (0, 1]")
    terms = f.copy()
    terms[rated] += (y[rated] - f[rated]) / pi[rated]
    return _normal_estimate(
        "prediction-powered (judge + weighted expert residuals)", terms, f.size, int(rated.sum()), confidence
    )


def uniform_pairs_needed(
    expert: ArrayLike, inclusion: ArrayLike, *, n_pairs: int, std_error: float
) -> float | None:
    """How many pairs a uniform random order would need rated for the plain mean to reach
    ``std_error``: ``m = s2 / (se^2 + s2 / N)`` (the finite-population variance of a simple random
    sample), with the population variance ``s2`` of the expert scores estimated from the rated pairs
    weighted by one over their inclusion probability (the Hajek estimator, unbiased under the routing).
    None when fewer than two pairs are rated or the error is not positive."""
    y = np.asarray(expert, dtype=float)
    pi = np.asarray(inclusion, dtype=float)
    rated = np.isfinite(y)
    if rated.sum() < 2 or not std_error or std_error <= 0 or n_pairs < 1:
        return None
    w = 1 / pi[rated]
    mean = hajek_mean(y[rated], w)
    s2 = hajek_mean((y[rated] - mean) ** 2, w)
    if s2 <= 0:
        return None
    return min(float(n_pairs), s2 / (std_error**2 + s2 / n_pairs))


def naive_win_rate(expert: ArrayLike, *, confidence: float = 0.95) -> WinRateEstimate:
    """The plain mean of the rated pairs' expert scores. Right for a uniform random sample; biased
    when the pairs were routed (shown by the tests), so never used on a routed study."""
    y = np.asarray(expert, dtype=float)
    rated = y[np.isfinite(y)]
    return _normal_estimate("mean of rated pairs", rated, y.size, int(rated.size), confidence)
