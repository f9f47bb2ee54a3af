"""Where a run's automatic scoring stands: queued, running, done or failed with the error, on the run
page, in the API and from `manage.py score_run`, and scoring again through the API."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.db.models import Count
from django.db.models.signals import post_save
from django.test import Client
from rest_framework.test import APIClient

from evalhub.accounts.services import token_create
from evalhub.runs import scoring
from evalhub.runs.models import MetricScore, Run, RunScoring, RunStatus, ScoringStatus
from evalhub.runs.scoring import TEXT_METRICS, run_score_kind, score_enqueue
from evalhub.runs.tasks import score_text as score_text_task
from tests.runs import test_scoring

pytestmark = pytest.mark.django_db

completed_run = test_scoring.completed_run  # the fixture: a completed run with hand-written outputs

OOM = "CUDA out of memory. Tried to allocate 9.00 GiB"


def api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def states(run) -> dict[str, tuple[str, int, str]]:
    return {row.kind: (row.status, row.written, row.error) for row in RunScoring.objects.filter(run=run)}


def expected_rows(run) -> tuple[int, int]:
    """(text and check rows, perplexity rows) a fully scored run of the fixture holds."""
    outputs = run.outputs.count()
    checked = run.outputs.exclude(case__expected=[]).count()
    heldout = run.outputs.filter(case__split="heldout").values("case").distinct().count()
    adapters = run.run_adapters.count()
    return outputs * len(TEXT_METRICS) + checked, heldout * adapters


def no_duplicates(run) -> bool:
    keys = ("adapter", "case", "sample", "metric", "config_hash")
    return (
        not MetricScore.objects.filter(run=run).values(*keys).annotate(n=Count("pk")).filter(n__gt=1).exists()
    )


def test_a_failed_scoring_shows_on_the_page_and_in_the_api_and_scoring_again_fills_the_gap(
    completed_run,
    engineer,
    monkeypatch,
    caplog,
):
    import metrics.perplexity

    def out_of_memory(*args, **kwargs):
        raise RuntimeError(OOM)

    monkeypatch.setattr(metrics.perplexity, "score_perplexity", out_of_memory)
    score_enqueue(run_id=completed_run.pk)  # embedded: the tasks run here, and do not raise
    text_rows, perplexity_rows = expected_rows(completed_run)
    assert states(completed_run) == {
        "text": ("done", text_rows, ""),
        "perplexity": ("failed", 0, f"RuntimeError: {OOM}"),
    }
    assert any(
        r.name == "evalhub.runs.scoring" and r.levelname == "ERROR" and OOM in r.getMessage()
        for r in caplog.records
    )

    client = Client()
    client.force_login(engineer)
    page = client.get(f"/p/{completed_run.project.slug}/runs/{completed_run.pk}/").content.decode()
    assert "Automatic scoring" in page and "failed" in page and f"RuntimeError: {OOM}" in page
    assert "Score again" in page and f"/runs/{completed_run.pk}/score/" in page

    detail = api(engineer).get(f"/api/v1/runs/{completed_run.pk}/").json()
    by_kind = {state["kind"]: state for state in detail["scoring"]}
    assert by_kind["text"]["status"] == "done" and by_kind["text"]["written"] == text_rows
    assert by_kind["perplexity"]["status"] == "failed"
    assert by_kind["perplexity"]["error"] == f"RuntimeError: {OOM}"
    assert by_kind["perplexity"]["finished_at"] is not None

    monkeypatch.undo()  # the cause is fixed
    response = api(engineer).post(f"/api/v1/runs/{completed_run.pk}/score/", {}, format="json")
    assert response.status_code == 202, response.json()
    after = {state["kind"]: state for state in response.json()["scoring"]}
    assert (after["text"]["status"], after["text"]["written"]) == ("done", 0)  # nothing was missing
    assert (after["perplexity"]["status"], after["perplexity"]["written"]) == ("done", perplexity_rows)
    assert after["perplexity"]["error"] == ""
    assert MetricScore.objects.filter(run=completed_run).count() == text_rows + perplexity_rows
    assert no_duplicates(completed_run)


def test_scoring_through_score_enqueue_goes_queued_running_done(completed_run):
    seen: list[tuple[str, str]] = []

    def record(sender, instance, **kwargs):
        seen.append((instance.kind, instance.status))

    post_save.connect(record, sender=RunScoring)
    try:
        score_enqueue(run_id=completed_run.pk)
    finally:
        post_save.disconnect(record, sender=RunScoring)
    # Both kinds are queued before either is sent, so the first to finish is not taken for the last.
    assert seen == [
        ("text", "queued"),
        ("perplexity", "queued"),
        ("text", "running"),
        ("text", "done"),
        ("perplexity", "running"),
        ("perplexity", "done"),
    ]
    assert sum(row.written for row in RunScoring.objects.filter(run=completed_run)) == sum(
        expected_rows(completed_run)
    )


def test_scoring_a_run_that_has_not_completed_is_a_409(completed_run, engineer):
    Run.objects.filter(pk=completed_run.pk).update(status=RunStatus.RUNNING)
    response = api(engineer).post(f"/api/v1/runs/{completed_run.pk}/score/", {"force": True}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "it is scored once it has completed" in response.json()["error"]["message"]
    assert not RunScoring.objects.exists() and not MetricScore.objects.exists()


def test_raters_and_other_projects_cannot_score_a_run(completed_run, other_project, rater, lead):
    url = f"/api/v1/runs/{completed_run.pk}/score/"
    assert api(rater).post(url, {}, format="json").status_code == 404
    _, secret = token_create(user=lead, project=other_project, name="ci")
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert token.post(url, {}, format="json").status_code == 404
    assert APIClient().post(url, {}, format="json").status_code in (401, 403)
    web = Client()
    web.force_login(rater)
    assert web.post(f"/p/{completed_run.project.slug}/runs/{completed_run.pk}/score/").status_code == 404
    assert not RunScoring.objects.exists()


def test_the_score_button_scores_again_and_only_writers_see_it(completed_run, engineer, rater):
    client = Client()
    client.force_login(engineer)
    slug = completed_run.project.slug
    response = client.post(f"/p/{slug}/runs/{completed_run.pk}/score/", {"force": "1"})
    assert response.status_code == 302 and response["Location"] == f"/p/{slug}/runs/{completed_run.pk}/"
    assert {status for status, _, _ in states(completed_run).values()} == {"done"}
    Run.objects.filter(pk=completed_run.pk).update(status=RunStatus.RUNNING)
    assert "Score again" not in client.get(f"/p/{slug}/runs/{completed_run.pk}/").content.decode()


def test_score_run_prints_each_kinds_state_and_fails_when_one_failed(completed_run, monkeypatch):
    def out_of_memory(**kwargs):
        raise RuntimeError(OOM)

    monkeypatch.setattr(scoring, "score_perplexity", out_of_memory)
    out = StringIO()
    with pytest.raises(CommandError, match=f"Run {completed_run.pk}: scoring failed \\(Perplexity\\)"):
        call_command("score_run", str(completed_run.pk), stdout=out)
    assert "Text metrics and checks: done" in out.getvalue()
    assert f"Perplexity: failed (RuntimeError: {OOM})" in out.getvalue()

    monkeypatch.undo()
    out = StringIO()
    call_command("score_run", str(completed_run.pk), stdout=out)
    assert out.getvalue().startswith(f"Run {completed_run.pk} scored:")
    assert "Perplexity: done" in out.getvalue() and "failed" not in out.getvalue()


def test_a_transient_error_leaves_the_task_running_until_it_gives_up(completed_run, monkeypatch):
    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(scoring, "score_text", database_gone)
    with pytest.raises(OperationalError):
        run_score_kind(run_id=completed_run.pk, kind="text", retry_on=(OperationalError,))
    assert states(completed_run)["text"][0] == ScoringStatus.RUNNING  # a retry follows

    # The last retry: the task gives up and records the error (in process, with nothing to retry through,
    # it returns; on a worker it raises again so Celery records it too: tests/runs/test_tasks.py).
    result = score_text_task.apply(
        kwargs={"run_id": completed_run.pk}, retries=score_text_task.max_retries, throw=False
    )
    assert result.successful() and result.get() is None
    status, _, error = states(completed_run)["text"]
    assert status == ScoringStatus.FAILED and error.startswith("OperationalError: server closed")


def test_a_long_error_is_cut_to_a_readable_length(completed_run, monkeypatch):
    def verbose(**kwargs):
        raise ValueError("x" * 10_000)

    monkeypatch.setattr(scoring, "score_text", verbose)
    with pytest.raises(ValueError):
        run_score_kind(run_id=completed_run.pk, kind="text")
    error = states(completed_run)["text"][2]
    assert error.startswith("ValueError: xxx") and len(error) == scoring.ERROR_MAX_CHARS
