"""Rater agreement against the published worked examples and on degenerate data."""

import json
import uuid

import numpy as np
import pytest

from metrics.agreement import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_table,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    ratings_matrix,
    ratings_matrix_from_arrays,
    ratings_matrix_from_units,
)

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# 4 observers x 12 units, values 1-5, missing values allowed.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def records_from_matrix(matrix: list[list[float]]) -> list[tuple[str, str, float | None]]:
    return [
        (f"u{u}", f"r{r}", None if np.isnan(value) else int(value))
        for r, row in enumerate(matrix)
        for u, value in enumerate(row)
    ]


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_reproduces_krippendorff_2011(level: str, published: float) -> None:
    result = krippendorff_alpha(KRIPPENDORFF_2011, level=level)
    assert round(result.alpha, 3) == published
    # Unit 12 has a single value and is not pairable; 40 pairable values remain.
    assert (result.n_units, result.n_values, result.n_raters) == (11, 40, 4)


def test_krippendorff_alpha_from_records_matches_the_matrix() -> None:
    matrix = ratings_matrix(records_from_matrix(KRIPPENDORFF_2011))
    assert matrix.values.shape == (4, 12)
    assert krippendorff_alpha(matrix, level="nominal").alpha == pytest.approx(0.743421052631579)


def test_units_by_raters_arrays_are_transposed_into_reliability_data() -> None:
    by_unit = np.array(KRIPPENDORFF_2011).T.tolist()
    matrix = ratings_matrix_from_units(by_unit, rater_ids=["A", "B", "C", "D"])
    assert matrix.rater_ids == ("A", "B", "C", "D") and matrix.values.shape == (4, 12)
    assert krippendorff_alpha(matrix, level="interval").alpha == pytest.approx(0.8491071428571428)
    with pytest.raises(ValueError):
        ratings_matrix_from_units(by_unit, rater_ids=["A", "B"])


def test_nominal_alpha_on_preference_labels() -> None:
    records = [
        ("u1", "ann", "a"),
        ("u1", "bob", "a"),
        ("u2", "ann", "b"),
        ("u2", "bob", "b"),
        ("u3", "ann", "tie"),
        ("u3", "bob", "a"),
        ("u4", "ann", "b"),
        ("u4", "bob", "b"),
    ]
    matrix = ratings_matrix(records)
    assert matrix.categories == ("a", "b", "tie")
    # Hand computation: coincidences a-a 2, b-b 4, a-tie 1, tie-a 1; n=8;
    # D_o = 2/8, D_e = (n^2 - sum n_c^2) / (n(n-1)) = (64 - 9 - 16 - 1) / 56.
    expected = 1 - (2 / 8) / (38 / 56)
    assert krippendorff_alpha(matrix, level="nominal").alpha == pytest.approx(expected)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([[1, 2, 3]], "fewer than two raters"),
        ([[1, nan, nan], [nan, 2, 3]], "no unit was rated by two or more raters"),
        (
            [[3, 3, 3], [3, 3, nan]],
            "all ratings are identical: expected disagreement is zero, so alpha is undefined",
        ),
        ([], "fewer than two raters"),
    ],
)
def test_krippendorff_alpha_degenerate_data_returns_none_with_reason(data: list, reason: str) -> None:
    matrix = ratings_matrix([]) if data == [] else data
    result = krippendorff_alpha(matrix, level="ordinal")
    assert result.alpha is None
    assert result.reason == reason
    json.dumps(result.to_dict())


def test_fleiss_kappa_reproduces_the_wikipedia_worked_example() -> None:
    result = fleiss_kappa_from_table(FLEISS_WIKIPEDIA)
    assert round(result.kappa, 3) == 0.210
    assert (result.n_units, result.ratings_per_unit, result.n_categories) == (10, 14, 5)


def test_fleiss_kappa_from_ratings_matches_the_count_table() -> None:
    # Expand the count table into 14 anonymous ratings per subject.
    columns = [np.repeat(np.arange(1, 6), counts) for counts in FLEISS_WIKIPEDIA]
    matrix = np.array(columns).T  # raters x units
    assert fleiss_kappa(matrix).kappa == pytest.approx(fleiss_kappa_from_table(FLEISS_WIKIPEDIA).kappa)


def test_fleiss_kappa_keeps_units_with_the_common_number_of_ratings() -> None:
    data = [
        [1, 2, 1, 2, 1, nan],
        [1, 2, 2, 2, nan, nan],
        [1, 2, 1, nan, nan, 3],
    ]
    result = fleiss_kappa(data)
    assert (result.n_units, result.ratings_per_unit, result.n_units_dropped) == (3, 3, 3)
    assert result.kappa == pytest.approx(fleiss_kappa_from_table([[3, 0], [0, 3], [2, 1]]).kappa)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([[1, 2, 3]], "no unit has two or more ratings"),
        (
            [[2, 2], [2, 2]],
            "all ratings fall in one category: chance agreement is 1, so kappa is undefined",
        ),
    ],
)
def test_fleiss_kappa_degenerate_data_returns_none_with_reason(data: list, reason: str) -> None:
    result = fleiss_kappa(data)
    assert result.kappa is None and result.reason == reason


def test_fleiss_table_with_unequal_rating_counts_is_refused_with_reason() -> None:
    result = fleiss_kappa_from_table([[2, 1], [1, 1]])
    assert result.kappa is None and "equal counts" in result.reason


def test_cohen_kappa_reproduces_the_wikipedia_fifty_proposals() -> None:
    # Wikipedia "Cohen's kappa": both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    result = cohen_kappa(a, b)
    assert result.kappa == pytest.approx(0.4)
    assert result.observed_agreement == pytest.approx(0.7)
    assert result.ci_low < 0.4 < result.ci_high


def test_weighted_cohen_kappa_matches_the_hand_formula() -> None:
    a = [1, 2, 3, 4, 5, 3, 2, 4, 1, 5]
    b = [1, 3, 3, 5, 4, 2, 2, 4, 2, 5]
    cats = [1, 2, 3, 4, 5]
    table = np.zeros((5, 5))
    for x, y in zip(a, b, strict=True):
        table[x - 1, y - 1] += 1
    p = table / table.sum()
    distance = np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    for weights, w in (("linear", distance), ("quadratic", distance**2)):
        expected = 1 - (w * p).sum() / (w * np.outer(p.sum(1), p.sum(0))).sum()
        assert cohen_kappa(a, b, weights=weights, categories=cats).kappa == pytest.approx(expected)
    # Unobserved scale points still count in the distance when the values are numeric.
    assert cohen_kappa([1, 5, 1, 5], [1, 5, 5, 1], weights="linear").kappa == pytest.approx(
        cohen_kappa([1, 5, 1, 5], [1, 5, 5, 1], weights="linear", categories=cats).kappa
    )


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([1], [1], "fewer than two units rated by both raters"),
        ([1, None, 2], [None, 1, None], "fewer than two units rated by both raters"),
        (
            [3, 3, 3],
            [3, 3, 3],
            "both raters used a single, identical category: chance agreement is 1, so kappa is undefined",
        ),
    ],
)
def test_cohen_kappa_degenerate_data_returns_none_with_reason(x: list, y: list, reason: str) -> None:
    result = cohen_kappa(x, y)
    assert result.kappa is None and result.reason == reason


def test_pairwise_cohen_kappa_reports_each_pair_and_the_mean() -> None:
    records = [
        *[(f"u{i}", "ann", v) for i, v in enumerate([1, 2, 3, 4, 5, 1])],
        *[(f"u{i}", "bob", v) for i, v in enumerate([1, 2, 3, 4, 4, 2])],
        *[(f"u{i}", "cy", v) for i, v in enumerate([None, None, None, None, 5, None])],
    ]
    result = pairwise_cohen_kappa(ratings_matrix(records))
    by_pair = {(p.rater_a, p.rater_b): p.result for p in result.pairs}
    assert result.n_pairs == 3 and result.n_pairs_defined == 1
    expected = cohen_kappa([1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 4, 2], categories=[1, 2, 3, 4, 5])
    assert by_pair[("ann", "bob")].kappa == pytest.approx(expected.kappa)
    assert by_pair[("ann", "cy")].kappa is None and by_pair[("ann", "cy")].reason == "only 1 shared units"
    assert result.mean_kappa == pytest.approx(expected.kappa)
    json.dumps(result.to_dict())


def test_pairwise_cohen_kappa_with_a_single_rater_has_no_pairs() -> None:
    result = pairwise_cohen_kappa([[1, 2, 3]])
    assert result.mean_kappa is None and result.reason == "fewer than two raters"


def test_gold_accuracy_per_rater_with_wilson_interval() -> None:
    records = [
        ("g1", "ann", "a"),
        ("g2", "ann", "b"),
        ("g3", "ann", "b"),
        ("x1", "ann", "a"),
        ("g1", "bob", "b"),
        ("x1", "bob", "a"),
    ]
    results = {r.rater_id: r for r in gold_accuracy(records, {"g1": "a", "g2": "b", "g3": "a"})}
    assert (results["ann"].n_gold, results["ann"].n_correct) == (3, 2)
    assert results["ann"].accuracy.rate == pytest.approx(2 / 3)
    assert results["ann"].accuracy.ci_low < 2 / 3 < results["ann"].accuracy.ci_high
    assert results["bob"].accuracy.rate == 0.0
    lonely = gold_accuracy([("x1", "cy", "a")], {"g1": "a"})[0]
    assert lonely.accuracy.rate is None and lonely.reason == "no gold units rated"


def test_results_serialise_non_string_ids_as_text() -> None:
    rater = uuid.UUID(int=7)
    result = gold_accuracy([("g1", rater, "a")], {"g1": "a"})[0].to_dict()
    assert result["rater_id"] == str(rater)
    assert json.loads(json.dumps(result)) == result


def test_ratings_matrix_refuses_duplicate_ratings_and_unknown_categories() -> None:
    with pytest.raises(ValueError):
        ratings_matrix([("u1", "ann", 1), ("u1", "ann", 2)])
    with pytest.raises(ValueError):
        ratings_matrix([("u1", "ann", "maybe")], categories=["a", "b", "tie"])


def test_ratings_matrix_codes_ordered_labels_in_the_given_order() -> None:
    scale = ["poor", "fair", "good"]
    matrix = ratings_matrix(
        [("u1", "ann", "good"), ("u1", "bob", "fair"), ("u2", "ann", "poor"), ("u2", "bob", None)],
        categories=scale,
    )
    np.testing.assert_array_equal(matrix.values, [[2.0, 0.0], [1.0, nan]])
    assert matrix.categories == tuple(scale)


def random_records(seed: int, *, units: int = 300, raters: int = 9) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    records = []
    for unit in rng.permutation(units).tolist():
        for rater in rng.choice(raters, size=int(rng.integers(1, 5)), replace=False).tolist():
            records.append((unit, rater, int(rng.integers(1, 6))))
    return records


def test_column_matrix_equals_the_record_matrix_in_order_of_first_appearance() -> None:
    records = random_records(3)
    by_records = ratings_matrix(records)
    units, raters, values = (np.array(column) for column in zip(*records, strict=True))
    by_columns = ratings_matrix_from_arrays(units, raters, values)
    assert by_columns.unit_ids == by_records.unit_ids and by_columns.rater_ids == by_records.rater_ids
    np.testing.assert_array_equal(by_columns.values, by_records.values)
    for level in ("ordinal", "nominal"):
        assert krippendorff_alpha(by_columns, level=level) == krippendorff_alpha(by_records, level=level)


def test_column_matrix_refuses_duplicate_ratings_and_bad_codes() -> None:
    with pytest.raises(ValueError, match="more than once"):
        ratings_matrix_from_arrays(np.array([1, 1]), np.array([5, 5]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="codes"):
        ratings_matrix_from_arrays(
            np.array([1]), np.array([5]), np.array([3.0]), categories=["a", "b", "tie"]
        )


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_pairwise_kappa_equals_cohen_kappa_on_each_pairs_shared_units(weights: str | None) -> None:
    matrix = ratings_matrix(random_records(5, units=120, raters=6))
    result = pairwise_cohen_kappa(matrix, weights=weights)  # type: ignore[arg-type]
    categories = sorted(set(matrix.values[~np.isnan(matrix.values)].tolist()))
    assert result.n_pairs == 15
    for pair in result.pairs:
        i, j = matrix.rater_ids.index(pair.rater_a), matrix.rater_ids.index(pair.rater_b)
        shared = ~np.isnan(matrix.values[i]) & ~np.isnan(matrix.values[j])
        expected = cohen_kappa(
            matrix.values[i, shared].tolist(),
            matrix.values[j, shared].tolist(),
            weights=weights,  # type: ignore[arg-type]
            categories=categories,
        )
        assert pair.result == expected or (shared.sum() < 2 and pair.result.kappa is None)


def test_fleiss_kappa_on_a_matrix_equals_the_table_of_its_common_count_units() -> None:
    matrix = ratings_matrix(random_records(7, units=200, raters=8))
    per_unit = [col[~np.isnan(col)] for col in matrix.values.T]
    sizes = [len(v) for v in per_unit]
    m = max((s for s in set(sizes) if s >= 2), key=lambda s: (sizes.count(s), s))
    categories = sorted(set(matrix.values[~np.isnan(matrix.values)].tolist()))
    table = [[int(np.sum(v == c)) for c in categories] for v in per_unit if len(v) == m]
    result = fleiss_kappa(matrix)
    assert result.kappa == pytest.approx(fleiss_kappa_from_table(table).kappa, rel=1e-12)
    assert result.n_units_dropped == sum(1 for s in sizes if s and s != m)


def test_unweighted_kappa_interval_is_statsmodels_asymptotic_interval() -> None:
    from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa

    rng = np.random.default_rng(11)
    x = rng.integers(0, 4, 80)
    y = np.where(rng.random(80) < 0.6, x, rng.integers(0, 4, 80))
    result = cohen_kappa(x.tolist(), y.tolist(), categories=[0, 1, 2, 3])
    table = np.zeros((4, 4))
    np.add.at(table, (x, y), 1)
    reference = sm_cohens_kappa(table)
    assert result.kappa == pytest.approx(reference.kappa, rel=1e-12)
    assert result.std_error == pytest.approx(reference.std_kappa, rel=1e-12)
    assert result.ci_low == pytest.approx(reference.kappa_low, rel=1e-12)
    assert result.ci_high == pytest.approx(reference.kappa_upp, rel=1e-12)


# Ten units, one disagreement: kappa 0.8 with se 0.19, so its Wald interval kappa + 1.96 se reaches 1.16.
HIGH_X = ["a"] * 6 + ["b"] * 4
HIGH_Y = ["a"] * 5 + ["b"] * 5
# Nine units, one agreement: kappa -0.8, whose Wald interval reaches -1.13.
LOW_X = ["a"] * 4 + ["b"] * 4 + ["a"]
LOW_Y = ["b"] * 4 + ["a"] * 4 + ["a"]


def _sm_interval(x: list, y: list, **weighted: object) -> tuple[float, float]:
    """statsmodels' asymptotic interval of the pair's table (categories in sorted order)."""
    from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa

    cats = sorted(set(x) | set(y))
    table = np.zeros((len(cats), len(cats)))
    for a, b in zip(x, y, strict=True):
        table[cats.index(a), cats.index(b)] += 1
    reference = sm_cohens_kappa(table, **weighted)
    return float(reference.kappa_low), float(reference.kappa_upp)


def test_kappa_interval_is_truncated_to_kappas_range() -> None:
    high = cohen_kappa(HIGH_X, HIGH_Y)
    sm_low, sm_high = _sm_interval(HIGH_X, HIGH_Y)
    assert high.kappa == pytest.approx(0.8) and sm_high > 1
    assert (high.ci_low, high.ci_high) == (pytest.approx(sm_low, rel=1e-12), 1.0)
    low = cohen_kappa(LOW_X, LOW_Y)
    sm_low, sm_high = _sm_interval(LOW_X, LOW_Y)
    assert low.kappa == pytest.approx(-0.8) and sm_low < -1
    assert (low.ci_low, low.ci_high) == (-1.0, pytest.approx(sm_high, rel=1e-12))


def test_kappa_interval_stays_unbounded_with_the_legacy_asymptotic_interval() -> None:
    # Reports frozen before the bound recompute with it, so they reopen as they were shown.
    high = cohen_kappa(HIGH_X, HIGH_Y, interval="asymptotic")
    assert (high.ci_low, high.ci_high) == pytest.approx(_sm_interval(HIGH_X, HIGH_Y), rel=1e-12)
    assert high.ci_high > 1
    low = cohen_kappa(LOW_X, LOW_Y, interval="asymptotic")
    assert (low.ci_low, low.ci_high) == pytest.approx(_sm_interval(LOW_X, LOW_Y), rel=1e-12)
    assert low.ci_low < -1


def test_weighted_kappa_interval_is_truncated_likewise() -> None:
    x, y = [1] * 6 + [2] * 4 + [3] * 2, [1] * 5 + [2] * 5 + [3] * 2
    values = np.array([1.0, 2.0, 3.0])
    sm_low, sm_high = _sm_interval(x, y, weights=values, wt="quadratic")
    assert sm_high > 1
    bounded = cohen_kappa(x, y, weights="quadratic")
    assert (bounded.ci_low, bounded.ci_high) == (pytest.approx(sm_low, rel=1e-12), 1.0)
    legacy = cohen_kappa(x, y, weights="quadratic", interval="asymptotic")
    assert legacy.ci_high == pytest.approx(sm_high, rel=1e-12)


def test_pairwise_kappa_intervals_are_truncated_unless_asked_for_the_asymptotic_one() -> None:
    records = [
        *[(f"u{i}", "ann", v) for i, v in enumerate(HIGH_X)],
        *[(f"u{i}", "bob", v) for i, v in enumerate(HIGH_Y)],
    ]
    matrix = ratings_matrix(records)
    (bounded,) = pairwise_cohen_kappa(matrix).pairs
    assert bounded.result.ci_high == 1.0
    (legacy,) = pairwise_cohen_kappa(matrix, interval="asymptotic").pairs
    assert legacy.result.ci_high > 1
    assert legacy.result.ci_high == pytest.approx(_sm_interval(HIGH_X, HIGH_Y)[1], rel=1e-12)
