"""The run page: each adapter's scores with intervals, explained counters, links to outputs, studies, report."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from evalhub.runs.selectors import run_adapters, run_scores
from metrics.stats import mean_ci, wilson_interval
from tests.annotation.factories import run_rows
from tests.factories import MetricScoreFactory

pytestmark = pytest.mark.django_db


def scored_rows(project):
    rows = run_rows(project, n_cases=4)
    for (key, case_key), output in rows.outputs.items():
        i = int(case_key.rsplit("-", 1)[1])
        value = 0.2 + 0.1 * i + (0.3 if key == "candidate" else 0.0)
        MetricScoreFactory(output=output, metric="rougeL", value=value)
        MetricScoreFactory(output=output, metric="checks", value=None, passed=not (key == "baseline" and i == 0))
    return rows


def test_scores_are_each_adapters_mean_with_a_bootstrap_interval_and_check_pass_rates(project):
    rows = scored_rows(project)
    adapters = run_adapters(run=rows.run)
    rouge, checks = run_scores(run=rows.run, adapters=adapters)
    assert [ra.adapter_id for ra in adapters] == [rows.adapters["baseline"].pk, rows.adapters["candidate"].pk]
    expected = mean_ci([0.2, 0.3, 0.4, 0.5], resamples=2000, seed=0)
    base = rouge.cells[0]
    assert rouge.metric == "rougeL" and rouge.higher_is_better
    assert (base.value, base.low, base.high, base.n) == pytest.approx(
        (expected.mean, expected.ci_low, expected.ci_high, 4)
    )
    assert rouge.cells[1].value == pytest.approx(0.65)
    assert checks.is_rate and checks.cells[0].value == 0.75 and checks.cells[1].value == 1.0
    assert (checks.cells[0].low, checks.cells[0].high) == pytest.approx(wilson_interval(3, 4))


def test_run_page_shows_scores_counters_explained_and_links(project, lead):
    rows = scored_rows(project)
    client = Client()
    client.force_login(lead)
    html = client.get(reverse("runs:detail", args=[project.slug, rows.run.pk])).content.decode()
    section = html[html.index('id="run-scores"') :].split("</section>")[0]
    assert 'data-metric="rougeL"' in section and "n=4" in section and "95% bootstrap interval" in section
    assert "75% <span class=\"muted\">[" in section
    assert reverse("reports:report", args=[project.slug, rows.run.pk]) in section
    assert reverse("runs:outputs", args=[project.slug, rows.run.pk]) in section
    assert "prompts longer than the context" in html and 'title="Outputs copied from an earlier run' in html


def test_run_page_without_scores_says_when_they_come(project, lead):
    rows = run_rows(project, n_cases=1)
    client = Client()
    client.force_login(lead)
    html = client.get(reverse("runs:detail", args=[project.slug, rows.run.pk])).content.decode()
    assert "No automatic score yet" in html
