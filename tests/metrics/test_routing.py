"""Uncertainty-first routing and its corrected win-rate estimator, checked in seeded simulations."""

import numpy as np
import pytest
from scipy.stats import norm

from metrics.routing import (
    judge_uncertainty,
    naive_win_rate,
    plan_restore,
    ppi_win_rate,
    rated_prefix,
    routing_plan,
    routing_weights,
    uniform_pairs_needed,
)
from metrics.stats import mean_ci

N_PAIRS, BUDGET, SIMULATIONS = 1000, 200, 500
MEAN_GAP, SPREAD, EXPERT_NOISE, JUDGE_NOISE, POSITION_BIAS = 0.6, 1.5, 0.7, 0.5, 0.4


def _expected_score(d: np.ndarray) -> np.ndarray:
    """An expert's expected score (win 1, tie 0.5, loss 0) for a pair whose quality gap is d."""
    win, loss = norm.cdf((d - 0.5) / EXPERT_NOISE), norm.cdf((-d - 0.5) / EXPERT_NOISE)
    return win + 0.5 * (1 - win - loss)


def _true_win_rate() -> float:
    grid = np.linspace(MEAN_GAP - 10 * SPREAD, MEAN_GAP + 10 * SPREAD, 200_001)
    density = norm.pdf(grid, MEAN_GAP, SPREAD)
    return float(np.sum(_expected_score(grid) * density) / np.sum(density))


def _population(rng: np.random.Generator):
    """Pairs with a latent quality gap; experts' scores drawn from it; a noisy judge with a
    position bias that sees the gap with error, so its two orders sometimes disagree."""
    d = rng.normal(MEAN_GAP, SPREAD, N_PAIRS)
    noise = d + rng.normal(0, EXPERT_NOISE, N_PAIRS)
    expert = np.where(noise > 0.5, 1.0, np.where(noise < -0.5, 0.0, 0.5))
    seen = d + rng.normal(0, JUDGE_NOISE, N_PAIRS)
    bias = rng.normal(0, POSITION_BIAS, N_PAIRS)
    return expert, _expected_score(seen + bias), _expected_score(seen - bias)


def _routed(expert, first, second, seed, audit_share=0.2, budget=BUDGET):
    judge, uncertainty = judge_uncertainty(first, second)
    plan = routing_plan(uncertainty, audit_share=audit_share, seed=seed)
    rated = plan.rated_mask(budget)
    return judge, np.where(rated, expert, np.nan), plan.inclusion_probabilities(budget)


def _simulate(estimate):
    truth = _true_win_rate()
    results = []
    for seed in range(SIMULATIONS):
        rng = np.random.default_rng(seed)
        expert, first, second = _population(rng)
        results.append(estimate(expert, first, second, seed))
    est = np.array([r.estimate for r in results])
    covered = np.array([r.ci_low <= truth <= r.ci_high for r in results])
    return truth, est, covered


def test_uncertainty_is_highest_where_the_margin_is_low_or_the_orders_disagree():
    judge, u = judge_uncertainty([0.9, 0.55, 0.7, 0.5], [0.9, 0.55, 0.2, 0.5])
    assert judge.tolist() == pytest.approx([0.9, 0.55, 0.45, 0.5])
    assert u[1] > u[0]
    assert u[2] == 0.5 and u[3] == 0.5


@pytest.mark.parametrize("second", [[0.5, np.nan], [0.5, 1.2], [0.5]])
def test_judge_probabilities_outside_0_1_or_missing_are_refused(second):
    with pytest.raises(ValueError):
        judge_uncertainty([0.5, 0.5], second)


def test_weights_keep_a_uniform_audit_so_every_pair_can_be_drawn():
    w = routing_weights([0.0, 0.0, 0.5, 0.5], audit_share=0.2)
    assert w.sum() == pytest.approx(1.0)
    assert w[0] == pytest.approx(0.05) and w[2] == pytest.approx(0.45)
    with pytest.raises(ValueError, match="audit"):
        routing_weights([0.1, 0.2], audit_share=0.0)


def test_the_first_k_pairs_of_the_plan_are_the_poisson_sample_at_the_next_key():
    plan = routing_plan(np.linspace(0.01, 0.5, 50), seed=3)
    for k in (0, 10, 49, 50):
        pi = plan.inclusion_probabilities(k)
        assert plan.rated_mask(k).sum() == k
        if k < 50:
            t = plan.keys[plan.order[k]]
            assert np.array_equal(plan.rated_mask(k), plan.keys < t)
            assert np.all((pi > 0) & (pi <= 1))
    assert np.all(plan.inclusion_probabilities(50) == 1)


def test_routed_experts_see_the_uncertain_pairs_first():
    rng = np.random.default_rng(0)
    _, first, second = _population(rng)
    _, uncertainty = judge_uncertainty(first, second)
    plan = routing_plan(uncertainty, seed=0)
    routed = plan.rated_mask(BUDGET)
    assert uncertainty[routed].mean() > 1.1 * uncertainty.mean()
    confident = uncertainty < np.quantile(uncertainty, 0.2)
    # The fifth of pairs the judge is surest of gets well under its fifth of the ratings, but some (the audit).
    assert 0 < (routed & confident).sum() < 0.1 * BUDGET
    assert (~routed).any() and routed.sum() == BUDGET


def test_audit_pairs_are_a_uniform_sample_so_calibration_on_them_is_unbiased():
    """Over 300 seeded plans, every pair is an audit pair about equally often (t a / N), whatever its
    uncertainty, while the routed pairs lean to the uncertain ones; so the judge's accuracy measured on
    the audit pairs matches its accuracy on all pairs, and on the routed pairs it does not."""
    rng = np.random.default_rng(0)
    expert, first, second = _population(rng)
    judge, uncertainty = judge_uncertainty(first, second)
    right = (np.round(judge * 2) / 2 == expert).astype(float)  # the judge's call matches the expert's
    audit_hits, rated_hits, audit_acc, rated_acc = np.zeros(N_PAIRS), np.zeros(N_PAIRS), [], []
    for seed in range(300):
        plan = routing_plan(uncertainty, seed=seed)
        audit, rated = plan.audit_mask(BUDGET), plan.rated_mask(BUDGET)
        assert not (audit & ~rated).any()
        audit_hits += audit
        rated_hits += rated
        audit_acc.append(right[audit].mean())
        rated_acc.append(right[rated].mean())
    high = uncertainty > np.median(uncertainty)
    # Uniform: the uncertain half gets half of the audit draws (within 3%), but far more of the routed ones.
    assert audit_hits[high].sum() / audit_hits.sum() == pytest.approx(0.5, abs=0.03)
    assert rated_hits[high].sum() / rated_hits.sum() > 0.6
    assert np.mean(audit_acc) == pytest.approx(right.mean(), abs=0.02)
    assert np.mean(rated_acc) < right.mean() - 0.05
    assert plan.audit_mask(N_PAIRS).all()


def test_with_every_pair_rated_the_estimate_is_the_experts_mean():
    rng = np.random.default_rng(1)
    expert, first, second = _population(rng)
    judge, _ = judge_uncertainty(first, second)
    result = ppi_win_rate(judge, expert, np.ones(N_PAIRS))
    assert result.estimate == pytest.approx(expert.mean())
    assert result.n_rated == N_PAIRS


def test_routed_estimate_is_unbiased_and_its_95_percent_interval_covers_the_true_win_rate():
    """500 seeded simulations of 1,000 pairs with 200 routed expert ratings each. Tolerance: with 500
    draws the coverage's standard error is about 0.01, so 0.92-0.975 (about -3 and +2.5 standard
    errors) is accepted; the mean error must be under a tenth of the typical standard error."""

    def estimate(expert, first, second, seed):
        return ppi_win_rate(*_routed(expert, first, second, seed))

    truth, est, covered = _simulate(estimate)
    spread = est.std()
    assert abs(est.mean() - truth) < 0.1 * spread, (est.mean(), truth, spread)
    assert 0.92 <= covered.mean() <= 0.975, covered.mean()


def test_the_naive_mean_of_routed_pairs_is_biased_so_the_correction_matters():
    def estimate(expert, first, second, seed):
        _, rated, _ = _routed(expert, first, second, seed)
        return naive_win_rate(rated)

    truth, est, covered = _simulate(estimate)
    # Routed pairs are the close calls, so their mean is pulled towards 0.5.
    assert truth - est.mean() > 0.03, (truth, est.mean())
    assert covered.mean() < 0.8, covered.mean()  # 0.63 here, against 0.95 promised


def test_the_judge_makes_the_routed_interval_narrower_than_uniform_sampling_of_the_same_size():
    widths_routed, widths_uniform = [], []
    for seed in range(50):
        expert, first, second = _population(np.random.default_rng(seed))
        r = ppi_win_rate(*_routed(expert, first, second, seed))
        u = naive_win_rate(
            np.where(np.random.default_rng(seed).permutation(N_PAIRS) < BUDGET, expert, np.nan)
        )
        widths_routed.append(r.ci_high - r.ci_low)
        widths_uniform.append(u.ci_high - u.ci_low)
    assert np.mean(widths_routed) < 0.8 * np.mean(widths_uniform)


def test_bad_inclusion_probabilities_are_refused():
    with pytest.raises(ValueError, match="inclusion"):
        ppi_win_rate([0.5, 0.5], [1.0, np.nan], [0.0, 0.5])
    with pytest.raises(ValueError, match="same length"):
        ppi_win_rate([0.5], [1.0, 0.0], [1.0, 1.0])
    assert ppi_win_rate([0.5], [1.0], [1.0]).reason == "fewer than two terms"


def test_a_stored_plan_restores_the_same_inclusion_probabilities_and_audit():
    plan = routing_plan(np.random.default_rng(3).random(50), audit_share=0.3, seed=9)
    again = plan_restore(
        plan.weights.tolist(), plan.keys.tolist(), plan.audit_draws.tolist(), audit_weight=plan.audit_weight
    )
    assert np.array_equal(again.order, plan.order)
    for n in (0, 7, 50):
        assert np.allclose(again.inclusion_probabilities(n), plan.inclusion_probabilities(n))
        assert np.array_equal(again.audit_mask(n), plan.audit_mask(n))
    with pytest.raises(ValueError):
        plan_restore([0.5], [1.0, 2.0], [0.1], audit_weight=0.1)


def test_the_rated_prefix_stops_at_the_first_unrated_pair_in_plan_order():
    plan = routing_plan([0.1, 0.5, 0.3, 0.2], audit_share=0.5, seed=1)
    rated = np.zeros(4, dtype=bool)
    rated[plan.order[:2]] = True
    assert rated_prefix(plan, rated) == 2
    rated[plan.order[3]] = True  # rated beyond a gap: not part of the prefix
    assert rated_prefix(plan, rated) == 2
    assert rated_prefix(plan, np.ones(4, dtype=bool)) == 4
    assert rated_prefix(plan, np.zeros(4, dtype=bool)) == 0


def test_uniform_pairs_needed_matches_the_simple_random_sample_formula():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 400) / 2
    # Everything rated with inclusion 1: s2 is the population variance, and the size that gives the
    # standard error of a sample of 100 without replacement is 100.
    s2 = float(np.var(y))
    se_100 = np.sqrt(s2 / 100 * (1 - 100 / 400))
    assert uniform_pairs_needed(y, np.ones(400), n_pairs=400, std_error=se_100) == pytest.approx(
        100, rel=1e-6
    )
    # A tiny error needs every pair, never more; constant scores or under two rated pairs: undefined.
    assert uniform_pairs_needed(y, np.ones(400), n_pairs=400, std_error=1e-9) == pytest.approx(400)
    assert uniform_pairs_needed(np.ones(10), np.ones(10), n_pairs=10, std_error=0.1) is None
    assert (
        uniform_pairs_needed(np.array([1.0] + [np.nan] * 9), np.ones(10), n_pairs=10, std_error=0.1) is None
    )


def _flags(uncertainty: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hallucination-like flag that is more common where the judge is unsure (the close calls are
    also the garbled ones), so the pairs routing sends first over-represent it."""
    return (rng.random(uncertainty.size) < 0.05 + 0.8 * uncertainty).astype(float)


def test_the_weighted_rate_of_routed_pairs_is_unbiased_where_their_plain_rate_is_not():
    """500 seeded simulations: a flag tied to the judge's uncertainty, 200 of 1,000 pairs routed. The
    weighted rate (one over the inclusion probability, ``hajek_mean`` inside ``mean_ci``) misses the
    population's rate by 0.003 on average, against a spread of 0.033 (the ratio's bias is of order
    1/n; the bound, a fifth of the spread, is about 4 standard errors of the mean error over 500
    draws) and its bootstrap interval covers it in 95.6% (90-98% accepted: the bootstrap treats the
    sample as drawn with replacement, so it may over-cover a little). The plain rate of the same rated
    pairs is off by 0.068, over twenty times as much."""
    errors, plain_errors, covered = [], [], []
    for seed in range(SIMULATIONS):
        rng = np.random.default_rng(seed)
        _, first, second = _population(rng)
        _, uncertainty = judge_uncertainty(first, second)
        flags = _flags(uncertainty, rng)
        plan = routing_plan(uncertainty, seed=seed)
        rated, pi = plan.rated_mask(BUDGET), plan.inclusion_probabilities(BUDGET)
        weighted = mean_ci(flags[rated], weights=1 / pi[rated], resamples=400, seed=seed)
        plain = mean_ci(flags[rated], resamples=400, seed=seed)
        assert weighted.weighted is True and plain.weighted is None
        truth = flags.mean()
        errors.append(weighted.mean - truth)
        plain_errors.append(plain.mean - truth)
        covered.append(weighted.ci_low <= truth <= weighted.ci_high)
    errors_arr = np.array(errors)
    assert abs(errors_arr.mean()) < 0.2 * errors_arr.std(), (errors_arr.mean(), errors_arr.std())
    assert np.mean(plain_errors) > 0.05 and np.mean(plain_errors) > 10 * abs(errors_arr.mean()), (
        np.mean(plain_errors),
        errors_arr.mean(),
    )
    assert 0.90 <= np.mean(covered) <= 0.98, np.mean(covered)
