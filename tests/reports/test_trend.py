"""The project trend: one panel per metric on its own scale, and lines only within an adapter lineage."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from evalhub.reports import plots, selectors
from tests.factories import AdapterFactory, BaseModelFactory
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_lineages(project: Any) -> dict[str, Any]:
    """summariser@1 -> summariser@2 (versions), tone@1 trained from summariser@1, and an unrelated
    synthetic-bad@1; scored with a 0-1 metric and a 0-100 one."""
    base = BaseModelFactory(project=project, name="base")
    s1 = AdapterFactory(project=project, base_model=base, name="summariser", version="1")
    tone = AdapterFactory(project=project, base_model=base, name="tone", version="1", parent=s1, stage="tone")
    s2 = AdapterFactory(project=project, base_model=base, name="summariser", version="2")
    bad = AdapterFactory(project=project, base_model=base, name="synthetic-bad", version="1")
    made = {"s1": s1, "s2": s2, "tone": tone, "bad": bad}
    quality = {"s1": 0.3, "s2": 0.5, "tone": 0.28, "bad": 0.1}
    build_run(
        project,
        n_cases=6,
        adapters=("s1", "s2", "tone", "bad"),
        adapter_objects=made,
        base_model=base,
        with_study=False,
        metrics={"rougeL": lambda k, i: quality[k], "bleu": lambda k, i: 100 * quality[k]},
    )
    return made


def test_versions_of_one_name_form_a_lineage_and_a_child_links_to_its_parent(
    project: Any, two_lineages: dict[str, Any]
) -> None:
    data = plots.trend_data(selectors.project_trend(project=project))
    by_name = {lineage.name: lineage for lineage in data.lineages}
    assert by_name["summariser"].labels == ("summariser@1", "summariser@2")
    assert by_name["summariser"].parent is None
    assert by_name["tone"].labels == ("tone@1",) and by_name["tone"].parent == "summariser@1"
    assert by_name["synthetic-bad"].labels == ("synthetic-bad@1",) and by_name["synthetic-bad"].parent is None
    # Registration order on the x axis; no lineage holds two names.
    assert data.order == ("summariser@1", "tone@1", "summariser@2", "synthetic-bad@1")
    assert data.values["bleu"]["summariser@2"] == pytest.approx(50.0)
    assert data.values["rougeL"]["summariser@2"] == pytest.approx(0.5)


def test_a_parent_outside_the_trend_is_not_linked() -> None:
    points = [
        {
            "adapter": "tone@1",
            "adapter_name": "tone",
            "parent": "gone@1",
            "stage": "",
            "adapter_at": "1",
            "run_at": "1",
            "metric": "rougeL",
            "mean": 0.2,
        },
    ]
    assert plots.trend_data(points).lineages == (plots.Lineage(name="tone", labels=("tone@1",), parent=None),)


def test_each_metric_gets_its_own_panel_human_win_rate_first() -> None:
    values = {"rougeL": {"a@1": 0.3}, "bleu": {"a@1": 30.0}, "human_win_rate": {"a@1": 0.6}}
    assert plots.trend_metrics(values) == ["human_win_rate", "bleu", "rougeL"]


def test_the_trend_page_lists_adapters_by_lineage_and_draws_the_plot(
    project: Any, lead: Any, two_lineages: dict[str, Any]
) -> None:
    web = Client()
    web.force_login(lead)
    html = web.get(f"/p/{project.slug}/trend/").content.decode()
    assert "trained from summariser@1" in html
    assert html.index("summariser@2") < html.index("tone@1") < html.index("synthetic-bad@1")
    png = web.get(f"/p/{project.slug}/trend/plot.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
