"""Rater quality measures and flags on hand-built ratings (metrics.rater_quality)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.rater_quality import (
    FAILED_GOLD,
    STRAIGHT_LINING,
    TOO_FAST,
    Answers,
    QualityRules,
    rater_quality,
    straight_line_counts,
)


def _one(rater: list[int], seconds: list[float], **kwargs):
    n = len(rater)
    kwargs.setdefault("straight", np.ones(n, dtype=bool))
    kwargs.setdefault("answers", [])
    kwargs.setdefault("gold", {})
    return {
        q.rater_id: q
        for q in rater_quality(rater=np.array(rater), seconds=np.array(seconds, dtype=float), **kwargs)
    }


def test_median_time_and_share_under_the_minimum_per_rater() -> None:
    out = _one([1, 1, 1, 1, 2, 2], [2.0, 4.9, 5.0, 30.0, 60.0, math.nan])
    assert out[1].median_seconds == pytest.approx(4.95)
    assert out[1].fast_share == pytest.approx(0.5)  # 2.0 and 4.9 are under 5 s; 5.0 is not
    assert (out[1].n_ratings, out[1].n_timed) == (4, 4)
    # An unknown time is neither fast nor slow.
    assert (out[2].n_ratings, out[2].n_timed, out[2].median_seconds, out[2].fast_share) == (2, 1, 60.0, 0.0)


def test_the_minimum_time_is_a_rule_not_a_constant() -> None:
    out = _one([1, 1, 1, 1], [2.0, 3.0, 8.0, 9.0], rules=QualityRules(min_seconds=2.5))
    assert out[1].fast_share == pytest.approx(0.25)
    assert out[1].flags == ()  # 25% is not above the 25% allowed


def test_too_fast_flag_says_how_many_took_under_the_minimum() -> None:
    out = _one([7] * 4, [1.0, 2.0, 3.0, 40.0])
    (flag,) = out[7].flags
    assert flag.code == TOO_FAST
    assert flag.reason.startswith("too fast: 3 of 4 ratings (75%) took under 5 s")


def test_gold_accuracy_and_the_failed_gold_flag_need_enough_gold_tasks() -> None:
    out = _one([1, 2, 3], [9.0, 9.0, 9.0], gold={1: (5, 2), 2: (2, 0), 3: (4, 4)})
    assert out[1].gold_accuracy == pytest.approx(0.4)
    assert [f.code for f in out[1].flags] == [FAILED_GOLD]
    assert "2 of 5 gold tasks right (40%), below the 70% required" in out[1].flags[0].reason
    # Two wrong answers are too few gold tasks to judge by (the rule asks for three).
    assert out[2].gold_accuracy == 0.0 and out[2].flags == ()
    assert out[3].gold_accuracy == 1.0 and out[3].flags == ()


def test_no_gold_leaves_gold_accuracy_unknown() -> None:
    out = _one([1], [9.0])
    assert (out[1].n_gold, out[1].gold_accuracy) == (0, None)


def test_straight_lining_counts_answers_equal_to_the_raters_usual_answer_per_question() -> None:
    # Ratings 0-3 are rater 1's, 4-7 rater 2's. Rater 1 always answers 3 and "tie"; rater 2 spreads
    # over four values on the criterion and gives one preference 3 of 4 times.
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rows = np.arange(8)
    criterion = Answers(row=rows, value=np.array([3, 3, 3, 3, 1, 2, 3, 4.0]))
    preference = Answers(row=rows, value=np.array([3, 3, 3, 3, 1, 1, 1, 2.0]))
    unanswered = Answers(row=np.array([5]), value=np.array([math.nan]))
    same, total = straight_line_counts(group, 2, [criterion, preference, unanswered])
    assert same.tolist() == [8, 4] and total.tolist() == [8, 8]
    # Answers that are not small integers are counted the same way.
    odd = Answers(row=rows, value=np.array([0.5, 0.5, 0.5, 0.5, 1e9, 2.5, 1e9, -7]))
    same, total = straight_line_counts(group, 2, [odd])
    assert same.tolist() == [4, 2] and total.tolist() == [4, 4]


def test_straight_lining_flag_needs_enough_ratings_and_leaves_out_uncounted_ones() -> None:
    n = 12
    same = Answers(row=np.arange(n), value=np.full(n, 5.0))
    out = _one([1] * n, [20.0] * n, answers=[same])
    assert out[1].straight_share == 1.0 and out[1].n_answers == n
    (flag,) = out[1].flags
    assert flag.code == STRAIGHT_LINING
    assert flag.reason.startswith("straight-lining: 100% of 12 answers on 12 ratings")
    # Only 9 ratings count (the caller leaves gold tasks out): too few to call it straight-lining.
    counted = np.arange(n) < 9
    out = _one([1] * n, [20.0] * n, answers=[same], straight=counted)
    assert out[1].n_straight_ratings == 9 and out[1].flags == ()


def test_a_varied_rater_is_not_straight_lining() -> None:
    n = 20
    varied = Answers(row=np.arange(n), value=np.arange(n, dtype=float) % 5)
    out = _one([1] * n, [20.0] * n, answers=[varied])
    assert out[1].straight_share == pytest.approx(0.2)
    assert out[1].flags == ()


def test_raters_come_in_id_order_and_one_rater_can_raise_every_flag() -> None:
    n = 10
    same = Answers(row=np.arange(n), value=np.zeros(n))
    out = rater_quality(
        rater=np.array([4] * n + [2]),
        seconds=np.array([1.0] * n + [10.0]),
        straight=np.ones(n + 1, dtype=bool),
        answers=[same],
        gold={4: (3, 0)},
    )
    assert [q.rater_id for q in out] == [2, 4]
    assert [f.code for f in out[1].flags] == [TOO_FAST, FAILED_GOLD, STRAIGHT_LINING]
    assert out[0].flagged is False and out[1].flagged is True


def test_no_ratings_no_raters() -> None:
    assert _one([], []) == {}
