"""Paired statistics, win rates and rank correlation against published values and simulations."""

import json
import math

import numpy as np
import pytest

from metrics.stats import (
    aggregate_by_slice,
    mean_ci,
    paired_bootstrap,
    paired_permutation_test,
    rank_correlation,
    wilcoxon_test,
    wilson_interval,
    win_rate,
)

# Darwin's Zea mays data as differences (cross- minus self-fertilised height, eighths of an
# inch), from Fisher's "The Design of Experiments"; the Wilcoxon worked example in scipy's docs.
DARWIN_DIFFERENCES = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]


def hand_wilson(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_interval_matches_newcombe_1998_worked_example() -> None:
    # Newcombe (1998), Stat Med 17:857, method 3 for 81/263: 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert (low, high) == pytest.approx(hand_wilson(81, 263), abs=1e-12)


def test_sign_test_is_exact_binomial_and_ignores_ties() -> None:
    # Two wins out of ten decisive comparisons: P = 2 * (1 + 10 + 45) / 2**10.
    assert win_rate(2, 0, 8).sign_test_p_value == pytest.approx(112 / 1024, abs=1e-15)
    assert win_rate(2, 7, 8).sign_test_p_value == pytest.approx(112 / 1024, abs=1e-15)
    # One-sided: eight or more wins of ten.
    assert win_rate(8, 3, 2, alternative="greater").sign_test_p_value == pytest.approx(56 / 1024, abs=1e-15)


def test_win_rate_reports_each_rate_with_its_wilson_interval() -> None:
    result = win_rate(40, 10, 20)
    assert result.n == 70
    assert result.win.rate == pytest.approx(40 / 70)
    assert (result.win.ci_low, result.win.ci_high) == pytest.approx(hand_wilson(40, 70))
    assert (result.tie.ci_low, result.tie.ci_high) == pytest.approx(hand_wilson(10, 70))
    assert (result.loss.ci_low, result.loss.ci_high) == pytest.approx(hand_wilson(20, 70))
    assert result.decisive.rate == pytest.approx(40 / 60)
    assert (result.decisive.ci_low, result.decisive.ci_high) == pytest.approx(hand_wilson(40, 60))


def test_win_rate_counts_ties_as_half_a_win() -> None:
    result = win_rate(3, 2, 5)
    assert result.ties_as_half.rate == pytest.approx(0.4)
    assert (result.ties_as_half.ci_low, result.ties_as_half.ci_high) == pytest.approx(hand_wilson(4, 10))


def test_win_rate_without_ratings_or_decisive_comparisons_returns_none_with_reason() -> None:
    empty = win_rate(0, 0, 0)
    assert empty.win.rate is None and empty.sign_test_p_value is None
    assert empty.reason == "no ratings"
    only_ties = win_rate(0, 5, 0)
    assert only_ties.tie.rate == 1.0
    assert only_ties.sign_test_p_value is None
    assert only_ties.decisive.rate is None
    assert only_ties.reason is not None and "ties" in only_ties.reason
    json.dumps(empty.to_dict())


def test_to_dict_gives_plain_json_values() -> None:
    result = paired_bootstrap(np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.5, 3.0]), resamples=100)
    as_dict = result.to_dict()
    assert all(type(v) in (int, float, str, type(None)) for v in as_dict.values())
    assert json.loads(json.dumps(as_dict)) == as_dict
    nested = aggregate_by_slice({"c1": (1, 2), "c2": (1, 3)}, {}, resamples=10)[0].to_dict()
    assert nested["paired"]["mean_difference"] == 1.5


def test_win_rate_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        win_rate(-1, 0, 3)


def test_paired_bootstrap_interval_covers_true_difference_at_nominal_rate() -> None:
    rng = np.random.default_rng(12345)
    true_difference = 0.3
    covered = 0
    trials = 200
    for trial in range(trials):
        baseline = rng.normal(3.0, 1.0, 60)
        candidate = baseline + true_difference + rng.normal(0.0, 0.8, 60)
        result = paired_bootstrap(baseline, candidate, resamples=1000, seed=trial)
        covered += result.ci_low <= true_difference <= result.ci_high
    assert 0.89 <= covered / trials <= 0.99


def test_paired_bootstrap_is_candidate_minus_baseline_and_reproducible_for_a_seed() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0, 1, 40)
    b = a - 0.5 + rng.normal(0, 0.3, 40)
    first = paired_bootstrap(a, b, resamples=2000, seed=3)
    again = paired_bootstrap(a, b, resamples=2000, seed=3)
    other = paired_bootstrap(a, b, resamples=2000, seed=4)
    assert first == again
    assert first.ci_low != other.ci_low
    assert first.mean_difference == pytest.approx(float(np.mean(b - a)))
    assert first.ci_high < 0


def test_paired_bootstrap_drops_incomplete_pairs_and_reports_the_count() -> None:
    result = paired_bootstrap([1.0, None, 3.0, float("nan"), 2.0], [2.0, 5.0, None, 1.0, 4.0], resamples=500)
    assert (result.n, result.n_dropped) == (2, 3)
    assert result.mean_difference == pytest.approx(1.5)


def test_paired_bootstrap_degenerate_inputs() -> None:
    empty = paired_bootstrap([None], [1.0])
    assert empty.mean_difference is None and empty.reason == "no complete pairs"
    single = paired_bootstrap([1.0], [3.0])
    assert single.mean_difference == 2.0 and single.ci_low is None and single.reason is not None
    constant = paired_bootstrap([1, 2, 3], [2, 3, 4], resamples=100)
    assert (constant.ci_low, constant.ci_high) == (1.0, 1.0)
    json.dumps(empty.to_dict())


def test_paired_inputs_must_have_equal_length() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])


def test_mean_ci_is_seeded_and_handles_missing_values() -> None:
    values = [1, 2, 3, 4, 5, None, 5, 4]
    result = mean_ci(values, resamples=2000, seed=1)
    assert (result.n, result.n_dropped) == (7, 1)
    assert result.mean == pytest.approx(24 / 7)
    assert result.ci_low < result.mean < result.ci_high
    assert result == mean_ci(values, resamples=2000, seed=1)
    assert mean_ci([None]).mean is None
    assert mean_ci([4]).ci_low is None


def test_permutation_test_is_exact_for_small_samples() -> None:
    # All five differences positive: 2 of the 2**5 sign patterns are as extreme (two-sided).
    result = paired_permutation_test([0] * 5, [1, 2, 3, 4, 5], resamples=10000)
    assert result.p_value == pytest.approx(2 / 32)
    assert result.statistic == pytest.approx(3.0)
    greater = paired_permutation_test([0] * 5, [1, 2, 3, 4, 5], alternative="greater")
    assert greater.p_value == pytest.approx(1 / 32)


def test_permutation_test_without_differences_returns_no_p_value() -> None:
    result = paired_permutation_test([1, 2, 3], [1, 2, 3])
    assert result.p_value is None and result.reason == "all differences are zero"


def test_wilcoxon_reproduces_darwin_example() -> None:
    result = wilcoxon_test([0] * len(DARWIN_DIFFERENCES), DARWIN_DIFFERENCES)
    assert result.statistic == 24.0
    assert result.p_value == pytest.approx(0.041259765625, abs=1e-12)


def test_wilcoxon_degenerate_inputs_return_none_with_reason() -> None:
    assert wilcoxon_test([1, 2], [1, 2]).reason == "all differences are zero"
    assert wilcoxon_test([None], [None]).p_value is None


def test_aggregate_by_slice_summarises_each_slice_and_all_cases() -> None:
    values = {"c1": (1, 2), "c2": (2, 2), "c3": (3, 1), "c4": (1, 4), "c5": (None, 3)}
    slices = {
        "c1": ["origin:real", "tag:math"],
        "c2": ["origin:real"],
        "c3": ["origin:synthetic", "tag:math"],
        "c4": ["origin:synthetic"],
    }
    summaries = aggregate_by_slice(values, slices, resamples=200)
    by_name = {s.slice: s for s in summaries}
    assert [s.slice for s in summaries] == ["all", "origin:real", "origin:synthetic", "tag:math"]
    assert (by_name["all"].wins, by_name["all"].ties, by_name["all"].losses) == (2, 1, 1)
    assert by_name["all"].paired.n_dropped == 1
    assert by_name["origin:synthetic"].paired.mean_difference == pytest.approx(0.5)
    assert by_name["tag:math"].n_cases == 2
    json.dumps([s.to_dict() for s in summaries])


def test_rank_correlation_matches_scipy_documented_examples() -> None:
    # scipy.stats.spearmanr / kendalltau documentation examples.
    spearman = rank_correlation([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], resamples=300).spearman
    assert spearman.coefficient == pytest.approx(0.8207826816681233)
    assert spearman.p_value == pytest.approx(0.0885870053135438)
    kendall = rank_correlation([12, 2, 1, 12, 2], [1, 4, 7, 1, 0], resamples=300).kendall
    assert kendall.coefficient == pytest.approx(-0.47140452079103173)
    assert kendall.p_value == pytest.approx(0.2827454599327748)


def test_rank_correlation_interval_brackets_a_strong_association() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=80)
    y = x + rng.normal(scale=0.5, size=80)
    result = rank_correlation(x, y, resamples=500, seed=2)
    assert result.n == 80
    assert 0.5 < result.spearman.ci_low < result.spearman.coefficient < result.spearman.ci_high <= 1
    assert 0.3 < result.kendall.ci_low < result.kendall.coefficient < result.kendall.ci_high <= 1
    assert result == rank_correlation(x, y, resamples=500, seed=2)


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([1, 2], [2, 1], "fewer than 3 complete pairs"),
        ([1, 2, None, 4], [1, 2, 3, None], "fewer than 3 complete pairs"),
        ([1, 1, 1, 1], [1, 2, 3, 4], "constant input: rank correlation is undefined"),
    ],
)
def test_rank_correlation_degenerate_inputs_return_none_with_reason(x: list, y: list, reason: str) -> None:
    result = rank_correlation(x, y)
    assert result.spearman.coefficient is None and result.kendall.coefficient is None
    assert result.reason == reason
    json.dumps(result.to_dict())


@pytest.mark.parametrize(
    ("n", "resamples", "seed"), [(2, 50, 0), (37, 200, 3), (4001, 401, 1), (60_000, 200, 0)]
)
def test_percentile_bootstrap_is_scipys_to_the_last_bit(n: int, resamples: int, seed: int) -> None:
    from scipy import stats as sps

    from metrics.stats import _bootstrap_batch

    values = np.random.default_rng(n).normal(size=n)
    reference = sps.bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        batch=_bootstrap_batch(n),  # 60k values: several batches
        rng=np.random.default_rng(seed),
    ).confidence_interval
    result = mean_ci(values, resamples=resamples, seed=seed)
    assert (result.ci_low, result.ci_high) == (float(reference.low), float(reference.high))


def test_reused_resamples_give_the_same_intervals() -> None:
    from metrics.stats import reuse_resamples

    rng = np.random.default_rng(8)
    a, b = rng.normal(size=500), rng.normal(size=500)
    alone = [paired_bootstrap(a, b, resamples=300, seed=2), mean_ci(b, resamples=300, seed=2)]
    with reuse_resamples():
        shared = [paired_bootstrap(a, b, resamples=300, seed=2), mean_ci(b, resamples=300, seed=2)]
        other_seed = mean_ci(b, resamples=300, seed=3)
    assert shared == alone
    assert other_seed != alone[1]


# --- Monte-Carlo error of bootstrap intervals ----------------------------------------------------

MC_DISTRIBUTIONS = {
    "normal": lambda rng: rng.normal(3.0, 1.0, 80),
    "skewed (lognormal)": lambda rng: rng.lognormal(0.0, 1.0, 80),
    "heavy tails (t, 3 df)": lambda rng: rng.standard_t(3, 80),
    "0/1 flags": lambda rng: (rng.random(80) < 0.2).astype(float),
    "1-5 ratings": lambda rng: rng.integers(1, 6, 80).astype(float),
    "case means of 5 ratings": lambda rng: rng.integers(1, 6, (80, 5)).mean(axis=1),
}


@pytest.mark.parametrize("name", sorted(MC_DISTRIBUTIONS))
def test_adaptive_bootstrap_bounds_each_endpoints_monte_carlo_error(name: str) -> None:
    """Across seeds, each endpoint's spread (its real Monte-Carlo error) is under 1% of the width,
    and the error the result reports is of the same size as that spread."""
    values = MC_DISTRIBUTIONS[name](np.random.default_rng(11))
    # The report's cost cap (a million draws; few distinct values cost one draw per value).
    runs = [mean_ci(values, resamples=500, seed=seed, mc_target=0.01, max_draws=10**6) for seed in range(40)]
    lows = np.array([r.ci_low for r in runs])
    highs = np.array([r.ci_high for r in runs])
    width = float(np.mean(highs - lows))
    for ends, reported in ((lows, [r.mc_se_low for r in runs]), (highs, [r.mc_se_high for r in runs])):
        spread = float(np.std(ends, ddof=1))
        # 40 seeds estimate a standard deviation to about +-11%: allow 25% over the target.
        assert spread < 0.0125 * width, (name, spread / width)
        # Each run meets the bound by its own estimate, or spent its whole budget and says so.
        levels = np.unique(values).size
        cap = 10**6 // (levels * 8) if levels * 8 <= values.size else 10**6 // values.size
        assert all(
            se is not None and (se <= 0.01 * (r.ci_high - r.ci_low) or r.resamples >= cap)
            for se, r in zip(reported, runs, strict=True)
        )
        if spread > 0.001 * width:  # a lattice endpoint may not move at all
            assert 0.4 < float(np.mean(reported)) / spread < 2.5, (name, np.mean(reported), spread)
    assert all(r.resamples >= 500 and r.mc_target == 0.01 for r in runs)


def test_fixed_count_bootstrap_misses_the_bound_that_the_adaptive_one_meets() -> None:
    # The check above can fail: 200 resamples (a report's old floor) leave each endpoint's
    # error several times 1% of the width.
    values = MC_DISTRIBUTIONS["normal"](np.random.default_rng(11))
    lows = [mean_ci(values, resamples=200, seed=seed).ci_low for seed in range(40)]
    width = mean_ci(values, resamples=200).ci_high - mean_ci(values, resamples=200).ci_low
    assert float(np.std(lows, ddof=1)) > 0.02 * width


def test_adaptive_bootstrap_is_reproducible_and_starts_from_the_fixed_counts_draws() -> None:
    from metrics.stats import reuse_resamples

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.0, 300)
    first = paired_bootstrap(a, b, resamples=400, seed=5, mc_target=0.01)
    assert first == paired_bootstrap(a, b, resamples=400, seed=5, mc_target=0.01)
    with reuse_resamples():  # shared draws give the same numbers
        assert first == paired_bootstrap(a, b, resamples=400, seed=5, mc_target=0.01)
        assert mean_ci(b - a, resamples=400, seed=5, mc_target=0.01).ci_low == first.ci_low
    assert first.resamples > 400 and first.mc_se_low is not None
    assert first != paired_bootstrap(a, b, resamples=400, seed=6, mc_target=0.01)
    # With a loose target met at once, the interval is the fixed-count one (the same first draws).
    loose = paired_bootstrap(a, b, resamples=400, seed=5, mc_target=1.0)
    fixed = paired_bootstrap(a, b, resamples=400, seed=5)
    assert (loose.ci_low, loose.ci_high, loose.resamples) == (fixed.ci_low, fixed.ci_high, 400)


def test_capped_bootstrap_reports_its_error_and_fixed_count_results_keep_their_old_keys() -> None:
    values = MC_DISTRIBUTIONS["normal"](np.random.default_rng(4))
    capped = mean_ci(values, resamples=200, seed=0, mc_target=0.01, max_draws=200 * values.size)
    assert capped.resamples == 200
    assert capped.mc_se_low > 0.01 * (capped.ci_high - capped.ci_low)  # said, not hidden
    assert {"mc_se_low", "mc_se_high", "mc_target"} <= set(capped.to_dict())
    assert not {"mc_se_low", "mc_se_high", "mc_target"} & set(mean_ci(values, resamples=200).to_dict())


def test_percentile_mc_se_matches_the_spread_of_a_quantile_over_repeated_draws() -> None:
    from metrics.stats import percentile_mc_se

    rng = np.random.default_rng(0)
    for size in (40, 2000):  # the normal-theory estimate (few tail replicates), the order statistics
        draws = rng.normal(size=(400, size))
        spread = np.std(np.percentile(draws, 2.5, axis=1), ddof=1)
        estimates = [percentile_mc_se(d, 0.95)[0] for d in draws[:50]]
        assert 0.6 < float(np.mean(estimates)) / spread < 1.6, size


def test_adaptive_intervals_do_not_depend_on_which_bootstrap_drew_the_shared_indices_first() -> None:
    from metrics.stats import reuse_resamples

    rng = np.random.default_rng(9)
    x, y = rng.normal(size=81), rng.lognormal(size=81)  # odd n: draw blocks of odd sizes

    def both() -> list:
        return [mean_ci(v, resamples=300, seed=1, mc_target=0.01, max_draws=10**6) for v in (x, y)]

    alone = both()
    with reuse_resamples():
        forwards = both()
    with reuse_resamples():
        reverse = [mean_ci(v, resamples=300, seed=1, mc_target=0.01, max_draws=10**6) for v in (y, x)][::-1]
    assert alone == forwards == reverse
    assert alone[0].resamples != alone[1].resamples  # they grew to different counts from one stream


def test_weighted_means_are_the_hajek_ratio_and_a_weight_counts_like_copies() -> None:
    # Weight 3 on a value is, for the point estimate, three copies of it: sum(w y) / sum(w).
    a, b, w = [1.0, 2.0, None, 4.0], [2.0, 2.0, 9.0, 7.0], [3.0, 1.0, 0.0, 2.0]
    paired = paired_bootstrap(a, b, weights=w, resamples=500, seed=2)
    copies_a, copies_b = [1.0, 1.0, 1.0, 2.0, 4.0, 4.0], [2.0, 2.0, 2.0, 2.0, 7.0, 7.0]
    assert paired.mean_a == pytest.approx(np.mean(copies_a))
    assert paired.mean_b == pytest.approx(np.mean(copies_b))
    assert paired.mean_difference == pytest.approx(np.mean(np.subtract(copies_b, copies_a)))
    # The incomplete pair is dropped with its weight (0 there is no error).
    assert (paired.n, paired.n_dropped, paired.weighted) == (3, 1, True)
    single = mean_ci([1.0, None, 3.0], weights=[1.0, float("nan"), 3.0], resamples=500)
    assert single.mean == pytest.approx(2.5) and single.to_dict()["weighted"] is True
    # Unweighted results keep their keys: no "weighted" in the JSON.
    assert "weighted" not in paired_bootstrap(a, b, resamples=500).to_dict()


def test_weighted_bootstrap_recomputes_the_ratio_on_each_resample_and_is_seeded() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(0, 1, 60)
    weights = rng.uniform(1, 8, 60)
    for mc_target in (None, 0.01):
        first = mean_ci(values, weights=weights, resamples=1000, seed=5, mc_target=mc_target)
        assert first == mean_ci(values, weights=weights, resamples=1000, seed=5, mc_target=mc_target)
        assert first.ci_low < first.mean < first.ci_high
    # Equal weights give the plain mean, and an interval from the same resampled units.
    equal = mean_ci(values, weights=np.full(60, 2.0), resamples=1000, seed=5)
    plain = mean_ci(values, resamples=1000, seed=5)
    assert equal.mean == pytest.approx(plain.mean)
    assert (equal.ci_low, equal.ci_high) == pytest.approx((plain.ci_low, plain.ci_high))


@pytest.mark.parametrize("weights", [[1.0, 0.0, 1.0], [1.0, -2.0, 1.0], [1.0, float("inf"), 1.0], [1.0, 1.0]])
def test_weights_must_be_positive_and_one_per_value(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weight"):
        mean_ci([1.0, 2.0, 3.0], weights=weights)
