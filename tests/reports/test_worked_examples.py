"""The report reproduces published worked examples when fed their data as ratings (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.reports.compute import report_compute
from evalhub.reports.selectors import RatingColumns, ReportRows


def rows(prefs: list[str], *, raters: int = 1, scores: list[tuple[int, int]] | None = None) -> ReportRows:
    """Candidate (adapter 2) on side A of every task; baseline (adapter 1) on side B."""
    n = len(prefs) // raters
    cases = [
        {
            "id": i,
            "key": f"c{i}",
            "tags": [],
            "slices": {},
            "origin": "real",
            "split": "eval",
            "category": "",
            "expected": [],
        }
        for i in range(n)
    ]
    outputs = {(a, i): 1000 * a + i for a in (1, 2) for i in range(n)}
    ratings: list[dict[str, Any]] = []
    for k, pref in enumerate(prefs):
        case = k % n
        c, b = scores[k] if scores else (3, 3)
        ratings.append(
            {
                "task": case,
                "rater": k // n,
                "scores": {"accuracy": {"A": c, "B": b}},
                "preference": pref,
                "hallucination": {},
                "case": case,
                "a": outputs[(2, case)],
                "b": outputs[(1, case)],
                "gold": False,
                "gold_answer": None,
                "time_ms": 0,
            }
        )
    return ReportRows(
        cases=cases,
        adapters=[{"id": 1, "label": "base@1"}, {"id": 2, "label": "cand@1"}],
        outputs=outputs,
        output_adapter={o: a for (a, _), o in outputs.items()},
        output_tokens={},
        texts={o: "text" for o in outputs.values()},
        scores=[],
        ratings=RatingColumns.from_dicts(ratings),
    )


def test_win_rate_matches_newcombe_1998_wilson_example() -> None:
    # Newcombe (1998): 81 successes of 263 -> Wilson 95% interval 0.2553 to 0.3662.
    report = report_compute(
        rows(["A"] * 81 + ["B"] * 182), candidate_id=2, baseline_id=1, resamples=200, style_resamples=10
    )
    win = report.win_rate.win
    assert win.ci_low == pytest.approx(0.25529, abs=1e-5)
    assert win.ci_high == pytest.approx(0.36621, abs=1e-5)


def test_sign_test_matches_the_exact_binomial_2_of_10() -> None:
    # Two wins of ten decisive comparisons, ties excluded: two-sided p = 2 * 56/1024 = 112/1024.
    report = report_compute(
        rows(["A"] * 2 + ["B"] * 8 + ["tie"] * 5),
        candidate_id=2,
        baseline_id=1,
        resamples=200,
        style_resamples=10,
    )
    assert report.win_rate.sign_test_p_value == pytest.approx(112 / 1024)


def test_preference_alpha_matches_a_hand_computed_nominal_alpha() -> None:
    # Two raters, four units: A/A, B/B, A/A, A/B. Krippendorff's nominal alpha = 1 - D_o / D_e with
    # n = 8 pairable values (5 A, 3 B); the one split unit gives D_o = 2/8 (two ordered pairs,
    # weight 1/(m_u - 1) = 1), and D_e = 2 * 5 * 3 / (n (n - 1)).
    prefs = ["A", "B", "A", "A", "A", "B", "A", "B"]
    report = report_compute(
        rows(prefs, raters=2), candidate_id=2, baseline_id=1, resamples=200, style_resamples=10
    )
    n, d_o = 8, 2 / 8
    d_e = 2 * 5 * 3 / (n * (n - 1))
    expected = 1 - d_o / d_e
    assert report.agreement.alpha("preference") == pytest.approx(expected)
