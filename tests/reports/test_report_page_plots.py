"""The slices heatmap: which columns it shows, where each colour scale is centred, and that it
renders for few and many slices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evalhub.reports import plots
from evalhub.reports.services import report_build
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def report(project: Any) -> Any:
    built = build_run(
        project,
        n_cases=20,
        preference=lambda i, r: "candidate" if i % 2 else "baseline",
        metrics={
            "rougeL": lambda k, i: 0.4 if k == "cand" else 0.3,
            "perplexity": lambda k, i: 8.0 if k == "cand" else 12.0,
        },
    )
    return report_build(run=built.run, resamples=200)


def test_columns_are_the_win_rate_centred_on_half_and_deltas_centred_on_zero(report: Any) -> None:
    cols = {c.name: c for c in plots.slice_columns(report)}
    assert list(cols) == ["human win rate", "Δ factual_accuracy", "Δ rougeL", "Δ perplexity"]
    win = cols["human win rate"]
    assert win.centre == 0.5 and win.values["tag:finance"] == pytest.approx(0.0)  # even cases: baseline wins
    assert win.values["tag:clinic"] == pytest.approx(1.0) and win.n["tag:clinic"] == 30
    assert cols["Δ rougeL"].centre == 0.0 and cols["Δ rougeL"].values["tag:clinic"] == pytest.approx(0.1)
    assert cols["Δ perplexity"].higher_better is False


def test_colour_says_who_is_better_whatever_the_metric_direction(report: Any) -> None:
    cols = {c.name: c for c in plots.slice_columns(report)}
    slices = plots._slice_order(list(cols.values()))
    # Lower perplexity for the candidate is better: blue (positive), like a higher rougeL.
    for name in ("Δ perplexity", "Δ rougeL"):
        scaled = plots._scaled(cols[name], slices)
        assert np.all(scaled[np.isfinite(scaled)] > 0) and np.isfinite(scaled).sum() >= 4
    win = plots._scaled(cols["human win rate"], slices)
    assert win[slices.index("tag:finance")] == -1 and win[slices.index("tag:clinic")] == 1


def test_slices_are_grouped_by_kind() -> None:
    col = plots.SliceColumn(
        name="x",
        values={"tag:b": 0.1, "origin:real": 0.2, "tag:a": 0.3},
        centre=0.0,
        higher_better=True,
        fmt="{:+.2f}",
        n={},
    )
    assert plots._slice_order([col]) == ["origin:real", "tag:a", "tag:b"]


def test_the_heatmap_grows_with_the_slices_and_renders(report: Any) -> None:
    png = plots.slice_heatmap(report)
    assert png.startswith(b"\x89PNG")
    import io

    from PIL import Image

    few = Image.open(io.BytesIO(png)).size
    many_slices = tuple(
        type(s)(slice=f"{s.slice}-{k}", result=s.result) for k in range(6) for s in report.win_rate_by_slice
    )
    import dataclasses

    many = Image.open(
        io.BytesIO(plots.slice_heatmap(dataclasses.replace(report, win_rate_by_slice=many_slices)))
    ).size
    assert many[1] > 2 * few[1]  # taller, not squeezed: about 0.3 in per slice


def test_a_wide_heatmap_is_split_into_parts_for_the_pdf(report: Any) -> None:
    import dataclasses

    wide = dataclasses.replace(report, metrics=report.metrics * 4)  # 1 + 1 + 8 columns
    assert len(plots.slice_columns(wide)) == 10
    parts = plots.slice_heatmap_parts(wide, per_part=7)
    assert len(parts) == 2 and all(p.startswith(b"\x89PNG") for p in parts)
    assert len(plots.slice_heatmap_parts(report, per_part=7)) == 1
