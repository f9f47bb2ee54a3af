"""The report's rating columns: read from the database they hold what the ratings say, and the
rating dicts a frozen verdict stores turn back into the same columns and the same report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annotation.models import Rating
from evalhub.reports.compute import report_compute
from evalhub.reports.selectors import PREFERENCES, RatingColumns, report_rows
from evalhub.runs.models import RunAdapter
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db


def _built(project: Any) -> Any:
    return build_run(
        project,
        n_cases=12,
        adapters=("base", "cand", "third"),
        n_raters=3,
        preference=lambda i, r: ["candidate", "baseline", "tie", "both_bad"][(i + r) % 4],
        scores=lambda i, r: (1 + (i + r) % 5, 1 + (i * r) % 5),
        hallucination=lambda i, r: (i % 3 == 0, (i + r) % 4 == 0),
        gold_cases=2,
        gold_right=lambda r: r != 1,
    )


def _expected_dicts(built: Any) -> list[dict[str, Any]]:
    """The rating dicts straight from the models, as the report reads them."""
    out = []
    for r in Rating.objects.filter(task__study=built.study).select_related("task").order_by("pk"):
        task = r.task
        out.append(
            {
                "task": task.pk,
                "rater": r.rater_id,
                "scores": {c: dict(sides) for c, sides in (r.scores or {}).items() if sides},
                "preference": r.preference,
                "hallucination": {
                    side: {"flagged": bool(entry.get("flagged"))}
                    for side, entry in (r.hallucination or {}).items()
                    if isinstance(entry, dict) and "flagged" in entry
                },
                "case": task.case_id,
                "a": task.output_a_id,
                "b": task.output_b_id,
                "gold": task.is_gold,
                "gold_answer": task.gold_answer,
                "time_ms": r.time_on_task_ms,
            }
        )
    return out


def _rows(built: Any) -> Any:
    ids = list(RunAdapter.objects.filter(run=built.run).values_list("adapter_id", flat=True))
    return report_rows(run=built.run, adapter_ids=ids)


def test_columns_from_the_database_hold_what_the_ratings_say(project: Any) -> None:
    built = _built(project)
    columns = _rows(built).ratings
    expected = _expected_dicts(built)
    assert len(columns) == len(expected) > 0
    assert columns.to_dicts() == expected
    assert {PREFERENCES[c] for c in columns.preference.tolist()} >= {"A", "B", "tie", "both_bad"}
    assert columns.gold.any() and columns.gold_answers


def test_stored_rating_dicts_give_back_the_same_columns_and_report(project: Any) -> None:
    built = _built(project)
    rows = _rows(built)
    dicts = rows.ratings.to_dicts()
    again = RatingColumns.from_dicts(dicts)
    assert again.to_dicts() == dicts
    for name in ("task", "rater", "case", "a", "b", "gold", "preference", "hall_a", "hall_b"):
        np.testing.assert_array_equal(getattr(again, name), getattr(rows.ratings, name))
    cand, base = built.adapters["cand"].pk, built.adapters["base"].pk
    kwargs: dict[str, Any] = {
        "candidate_id": cand,
        "baseline_id": base,
        "resamples": 200,
        "style_resamples": 5,
    }
    from_db = report_compute(rows, exclude_raters_below=0.9, **kwargs)
    rows.ratings = again
    assert report_compute(rows, exclude_raters_below=0.9, **kwargs).to_dict() == from_db.to_dict()
    assert from_db.exclusion is not None and from_db.exclusion.excluded
    assert from_db.counts.pair_ratings > 0


def test_integer_and_float_scores_keep_their_text_in_the_distribution() -> None:
    base = {"task": 1, "rater": 1, "preference": "A", "hallucination": {}, "case": 1, "a": 10, "b": 20}
    rows = [
        {**base, "scores": {"q": {"A": 3, "B": 3.0}}, "gold": False, "gold_answer": None, "time_ms": 0},
        {**base, "rater": 2, "scores": {"q": {"A": 2.5}}, "gold": False, "gold_answer": None, "time_ms": 0},
    ]
    columns = RatingColumns.from_dicts(rows)
    assert columns.to_dicts() == rows
    assert columns.scores["q"].a_int.tolist() == [True, False]
    assert columns.scores["q"].b_int.tolist() == [False, False]


def test_highlight_segments_mark_what_raters_flagged_and_how_often() -> None:
    from evalhub.reports.selectors import highlight_segments

    segments = highlight_segments("Revenue rose to $9 billion.", [(16, 26), (16, 18)])
    assert segments == [
        {"text": "Revenue rose to ", "count": 0},
        {"text": "$9", "count": 2},
        {"text": " billion", "count": 1},
        {"text": ".", "count": 0},
    ]
    assert highlight_segments("plain", []) == [{"text": "plain", "count": 0}]
    # Offsets past the text (an edited output) are clipped, never an error.
    assert "".join(s["text"] for s in highlight_segments("short", [(2, 99)])) == "short"
