"""The judge's calibration against the experts: agreement with the majority, consistency, the statement."""

import random

import pytest

from metrics.agreement import cohen_kappa, pairwise_cohen_kappa, ratings_matrix
from metrics.judge import (
    StandInRule,
    expert_majority,
    judge_agreement,
    judge_calibration,
    position_consistency,
)

LABELS = ("A", "B", "tie")


def _noisy(rng: random.Random, truth: str, accuracy: float) -> str:
    return truth if rng.random() < accuracy else rng.choice([v for v in LABELS if v != truth])


def _study(n_units: int, expert_accuracy: float, judge_accuracy: float, flip_share: float, seed: int = 0):
    """Three experts and a judge rating ``n_units`` pairs whose true answer is known."""
    rng = random.Random(seed)
    truth = {u: rng.choice(LABELS) for u in range(n_units)}
    records = [(u, e, _noisy(rng, t, expert_accuracy)) for u, t in truth.items() for e in ("e1", "e2", "e3")]
    judged = {u: _noisy(rng, t, judge_accuracy) for u, t in truth.items()}
    orders = {
        u: (v, v if rng.random() >= flip_share else "tie" if v != "tie" else "A") for u, v in judged.items()
    }
    slices = {u: ["finance" if u % 2 else "clinical"] for u in truth}
    return records, judged, orders, slices


def test_majority_leaves_out_units_where_the_experts_split_evenly():
    records = [(1, "a", "A"), (1, "b", "A"), (1, "c", "B"), (2, "a", "A"), (2, "b", "B"), (3, "a", None)]
    majority, no_majority = expert_majority(records)
    assert majority == {1: "A"}
    assert no_majority == 1


def test_agreement_counts_the_judge_against_the_majority_and_reuses_cohen_kappa():
    records, judged, _, _ = _study(200, 0.85, 0.8, 0.0)
    row = judge_agreement(records, judged)
    majority, _ = expert_majority(records)
    units = [u for u in majority if u in judged]
    correct = sum(judged[u] == majority[u] for u in units)
    assert row.n_units == len(units)
    assert row.accuracy.rate == pytest.approx(correct / len(units))
    assert row.accuracy.ci_low < row.accuracy.rate < row.accuracy.ci_high
    expected = cohen_kappa([majority[u] for u in units], [judged[u] for u in units])
    assert row.kappa.kappa == pytest.approx(expected.kappa)
    assert row.kappa.ci_low == pytest.approx(expected.ci_low)
    shared = set(units)
    same_units = [r for r in records if r[0] in shared]
    assert row.expert_mean_kappa == pytest.approx(pairwise_cohen_kappa(ratings_matrix(same_units)).mean_kappa)


def test_units_the_judge_could_not_judge_are_left_out_not_guessed():
    records, judged, _, _ = _study(50, 0.9, 0.9, 0.0)
    judged = {u: (None if u < 10 else v) for u, v in judged.items()}
    row = judge_agreement(records, judged)
    majority, _ = expert_majority(records)
    assert row.n_units == len([u for u in majority if u >= 10])


def test_position_consistency_is_the_share_of_pairs_whose_orders_agree():
    result = position_consistency({1: ("A", "A"), 2: ("A", "B"), 3: ("B", "B"), 4: ("A", None)})
    assert (result.n_pairs, result.n_consistent) == (3, 2)
    assert result.rate.rate == pytest.approx(2 / 3)
    assert position_consistency({}).reason is not None


def test_a_judge_as_good_as_the_experts_may_stand_in():
    records, judged, orders, slices = _study(400, 0.85, 0.95, 0.05)
    result = judge_calibration({"preference": records}, {"preference": judged}, orders, slices_by_unit=slices)
    assert result.may_stand_in, result.statement
    assert result.statement.startswith("The judge may stand in for experts on this study")
    assert [(r.criterion, r.slice) for r in result.rows] == [
        ("preference", "all"),
        ("preference", "clinical"),
        ("preference", "finance"),
    ]
    assert result.consistency.rate.rate == pytest.approx(0.95, abs=0.03)


def test_a_judge_worse_than_the_experts_may_not_stand_in_and_the_reason_says_why():
    records, judged, orders, _ = _study(400, 0.85, 0.55, 0.0)
    result = judge_calibration({"preference": records}, {"preference": judged}, orders)
    assert not result.may_stand_in
    assert result.statement.startswith("The judge may not stand in for experts on this study")
    assert "lower bound" in result.statement and "experts' own kappa" in result.statement


def test_a_judge_that_changes_its_mind_with_the_order_may_not_stand_in():
    records, judged, orders, _ = _study(400, 0.85, 0.95, 0.4)
    result = judge_calibration({"preference": records}, {"preference": judged}, orders)
    assert not result.may_stand_in
    assert len(result.reasons) == 1 and "position consistency" in result.reasons[0]


def test_too_few_shared_units_is_a_reason_not_a_verdict():
    records, judged, orders, _ = _study(12, 0.9, 1.0, 0.0)
    result = judge_calibration({"preference": records}, {"preference": judged}, orders)
    assert not result.may_stand_in
    assert any("at least 30 needed" in r for r in result.reasons)


def test_a_slice_where_the_judge_is_clearly_worse_blocks_the_stand_in():
    records, judged, orders, slices = _study(600, 0.9, 0.97, 0.0)
    rng = random.Random(1)
    # On finance units the judge answers at random.
    judged = {u: (rng.choice(LABELS) if "finance" in slices[u] else v) for u, v in judged.items()}
    result = judge_calibration(
        {"preference": records},
        {"preference": judged},
        orders,
        slices_by_unit=slices,
        rule=StandInRule(kappa_margin=0.5),
    )
    assert not result.may_stand_in
    assert any("slice 'finance'" in r for r in result.reasons)
    assert not any("slice 'clinical'" in r for r in result.reasons)


def test_every_criterion_gets_its_row_and_ordinal_scores_use_weighted_kappa():
    records, judged, orders, _ = _study(100, 0.9, 0.9, 0.0)
    rng = random.Random(2)
    truth = {u: rng.randint(1, 5) for u in range(100)}
    scores = [
        (u, e, max(1, min(5, t + rng.choice([-1, 0, 0, 0, 1])))) for u, t in truth.items() for e in "xyz"
    ]
    result = judge_calibration(
        {"preference": records, "factual_accuracy": scores},
        {"preference": judged, "factual_accuracy": truth},
        orders,
        weights={"factual_accuracy": "quadratic"},
    )
    assert [r.criterion for r in result.rows] == ["preference", "factual_accuracy"]
    assert result.rows[1].kappa.weights == "quadratic"
    assert result.to_dict()["rows"][1]["kappa"]["kappa"] == pytest.approx(result.rows[1].kappa.kappa)


def test_calibration_kappa_intervals_stay_within_kappas_range_unless_asked_for_the_legacy_one():
    # Ten pairs, three experts agreeing, the judge off on one: kappa 0.8, Wald interval up to 1.16.
    truth = ["A"] * 6 + ["B"] * 4
    records = [(u, e, t) for u, t in enumerate(truth) for e in ("e1", "e2", "e3")]
    judged = {u: ("B" if u == 5 else t) for u, t in enumerate(truth)}
    orders = {u: (v, v) for u, v in judged.items()}
    slices = {u: ["all ten"] for u in judged}

    def highs(**kw):
        calibration = judge_calibration(
            {"preference": records}, {"preference": judged}, orders, slices_by_unit=slices, **kw
        )
        return [row.kappa.ci_high for row in calibration.rows]  # overall, then the one slice

    assert highs() == [1.0, 1.0]
    unbounded = cohen_kappa(truth, list(judged.values()), interval="asymptotic").ci_high
    assert unbounded > 1
    assert highs(kappa_interval="asymptotic") == [unbounded, unbounded]
