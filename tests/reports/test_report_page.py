"""The report page: built once into the cache by its input rows' hash, a "building" page that polls
until then, and a new rating that makes the next visit build again."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client

from annotation.models import Rating
from evalhub.reports import services
from evalhub.runs.models import MetricScore
from tests.reports.factories import build_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_report_cache() -> Any:
    caches[services.REPORT_CACHE].clear()
    yield
    caches[services.REPORT_CACHE].clear()


@pytest.fixture
def built(project: Any) -> Any:
    return build_run(project, n_cases=12, preference=lambda i, r: "candidate" if i % 3 else "tie")


def test_first_visit_shows_building_then_the_state_poll_builds_and_the_page_answers_from_the_cache(
    project: Any, lead: Any, built: Any
) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    first = web.get(base).content.decode()
    assert "Building the report" in first and f"{base}state.json" in first and 'id="decision"' not in first
    # Tests run tasks in process: the first poll starts the build and it has finished when it answers.
    state = web.get(f"{base}state.json").json()
    assert state["ready"] is True and state["state"] == "ready"
    page = web.get(base).content.decode()
    assert 'id="decision"' in page and "Building the report" not in page
    # The run's last build time is remembered for the next building page's estimate.
    assert caches[services.REPORT_CACHE].get(f"report-build-seconds:r{built.run.pk}") is not None


def test_a_cached_report_is_found_without_building_and_a_new_rating_misses(built: Any) -> None:
    run = built.run
    assert services.report_state(run=run).state == "missing"
    services.report_cached(run=run)
    hit = services.report_state(run=run)  # start=False never builds: found means cached
    assert hit.state == "ready" and hit.report is not None and hit.report.counts.pair_ratings == 36
    # Another rater's rating of one task changes the input rows, so the key, so the cache misses.
    rating = Rating.objects.filter(task__study__run=run).order_by("pk").first()
    rating.preference = "B" if rating.preference == "A" else "A"
    rating.save(update_fields=["preference"])
    miss = services.report_state(run=run)
    assert miss.state == "missing" and miss.key != hit.key
    assert services.report_cached(run=run).win_rate != hit.report.win_rate


def test_the_key_names_project_run_and_parameters(built: Any) -> None:
    run, cand, base = built.run, built.adapters["cand"], built.adapters["base"]
    plain = services.report_key(run=run).key
    assert plain.startswith("report:v") and f":p{run.project_id}:r{run.pk}:c{cand.pk}:b{base.pk}:" in plain
    swapped = services.report_key(run=run, candidate=base, baseline=cand).key
    excluding = services.report_key(run=run, exclude_raters_below=0.5).key
    assert len({plain, swapped, excluding}) == 3
    assert services.report_key(run=run).key == plain  # same rows, same key


def test_a_build_in_progress_is_not_started_twice(built: Any) -> None:
    found = services.report_key(run=built.run)
    caches[services.REPORT_CACHE].set(found.building, 1234.0)
    state = services.report_state(run=built.run, start=True)
    assert state.state == "building" and state.started_at == 1234.0
    assert caches[services.REPORT_CACHE].get(found.key) is None


def test_a_failed_build_is_shown_and_the_next_poll_tries_again(project: Any, lead: Any, built: Any) -> None:
    found = services.report_key(run=built.run)
    services.report_build_failed(key=found.key, error="The report could not be built: boom")
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    assert "could not be built: boom" in web.get(base).content.decode()
    assert services.report_state(run=built.run).state == "failed"
    assert web.get(f"{base}state.json").json()["ready"] is True


def test_bad_parameters_are_an_error_page_not_a_building_page(project: Any, lead: Any, built: Any) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    page = web.get(f"{base}?candidate=nope@9")
    assert page.status_code in (400, 404) and "Building the report" not in page.content.decode()
    assert web.get(f"{base}state.json?candidate=nope@9").status_code in (400, 404)


def test_plots_are_drawn_once_per_input_and_cached_beside_the_report(
    project: Any, lead: Any, built: Any
) -> None:
    web = Client()
    web.force_login(lead)
    base = f"/p/{project.slug}/runs/{built.run.pk}/report/"
    first = web.get(f"{base}plot/slices.png")
    assert first.status_code == 200 and first.content.startswith(b"\x89PNG")
    found = services.report_key(run=built.run)
    assert caches[services.REPORT_CACHE].get(f"{found.key}:plot:slices") == first.content
    assert caches[services.REPORT_CACHE].get(found.key) is not None  # the report was built for it
    assert web.get(f"{base}plot/nope.png").status_code == 404


def test_a_changed_metric_score_or_a_rater_name_changes_the_key(project: Any) -> None:
    built = build_run(project, n_cases=6, metrics={"rougeL": lambda k, i: 0.3})
    before = services.report_key(run=built.run).key
    score = MetricScore.objects.filter(run=built.run, metric="rougeL").order_by("pk").first()
    score.value = 0.31
    score.save(update_fields=["value"])
    after_score = services.report_key(run=built.run).key
    assert after_score != before
    built.raters[0].username = "renamed-rater"
    built.raters[0].save(update_fields=["username"])
    assert services.report_key(run=built.run).key != after_score
