"""The run option "evaluate pending checks with the judge": service, API, form and CLI, and the scoring
kind it adds; bad input is a field-level refusal, never a 500."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from evalhub.errors import ValidationFailed
from evalhub.runs import scoring
from evalhub.runs.api import RunSerializer
from evalhub.runs.models import Run, ScoringKind
from evalhub.runs.services import run_create
from tests.factories import AdapterFactory, BaseModelFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_completion_hooks")]


def _create(project, tiny, suite_version, **kwargs):
    return run_create(
        project=project,
        suite_version=suite_version,
        base_model=tiny["base"],
        adapters=[tiny["alpha"]],
        **kwargs,
    )


def test_a_run_asks_for_the_judge_with_an_adapter_and_gets_the_scoring_kind(project, tiny, suite_version):
    run = _create(project, tiny, suite_version, judge_checks=True, judge_adapter=tiny["beta"])
    run.refresh_from_db()
    assert run.judge_checks and run.judge_adapter == tiny["beta"]
    assert scoring.run_scoring_kinds(run) == (
        ScoringKind.TEXT,
        ScoringKind.PERPLEXITY,
        ScoringKind.JUDGE_CHECKS,
    )
    data = RunSerializer(run).data
    assert data["judge_checks"] is True and data["judge_adapter"] == "beta@1"
    plain = _create(project, tiny, suite_version)
    assert scoring.run_scoring_kinds(plain) == (ScoringKind.TEXT, ScoringKind.PERPLEXITY)
    assert RunSerializer(plain).data["judge_adapter"] is None


def test_a_judge_adapter_without_the_option_or_on_another_base_is_refused_by_field(
    project, tiny, suite_version
):
    with pytest.raises(ValidationFailed) as alone:
        _create(project, tiny, suite_version, judge_adapter=tiny["beta"])
    assert "judge_adapter" in alone.value.fields
    elsewhere = AdapterFactory(project=project, base_model=BaseModelFactory(project=project, name="other"))
    with pytest.raises(ValidationFailed) as other:
        _create(project, tiny, suite_version, judge_checks=True, judge_adapter=elsewhere)
    assert "not on the run's base model" in other.value.fields["judge_adapter"][0]
    assert not Run.objects.exists()


def test_the_api_takes_the_option_and_names_a_bad_judge_adapter(project, tiny, suite_version, engineer):
    client = APIClient()
    client.force_login(engineer)
    body = {
        "project": project.slug,
        "suite": "tiny-suite",
        "base_model": "tiny-base",
        "adapters": ["alpha@1"],
        "judge_checks": True,
        "judge_adapter": "ghost@1",
    }
    response = client.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400 and "judge_adapter" in response.json()["error"]["fields"]
    response = client.post(
        "/api/v1/runs/", {**body, "judge_checks": False, "judge_adapter": "beta@1"}, format="json"
    )
    assert response.status_code == 400 and "judge_adapter" in response.json()["error"]["fields"]
    assert not Run.objects.exists()


def test_the_form_offers_the_option_and_shows_the_refusal_on_its_field(
    project, tiny, suite_version, engineer, client
):
    data = {
        "suite_version": suite_version.pk,
        "base_model": tiny["base"].pk,
        "adapters": [tiny["alpha"].pk],
        "backend": "hf",
        "max_new_tokens": 4,
        "temperature": 0,
        "top_p": 1,
        "seed": 0,
        "samples_per_case": 1,
        "truncation": "left",
        "judge_adapter": tiny["beta"].pk,  # without the option
    }
    client.force_login(engineer)
    response = client.post(reverse("runs:new", args=[project.slug]), data)
    assert response.status_code == 200
    assert "pending checks" in response.context["form"].errors["judge_adapter"][0]
    page = client.get(reverse("runs:new", args=[project.slug])).content.decode()
    assert "Evaluate the suite&#x27;s pending checks with the judge" in page
    assert not Run.objects.exists()


def test_the_cli_refuses_a_judge_adapter_it_does_not_know(project, tiny, suite_version):
    args = [
        "--project",
        project.slug,
        "--suite",
        "tiny-suite",
        "--base-model",
        "tiny-base",
        "--adapter",
        "alpha@1",
    ]
    with pytest.raises(CommandError, match="ghost@1"):
        call_command("run_eval", *args, "--judge-checks", "--judge-adapter", "ghost@1", stdout=StringIO())
    with pytest.raises(CommandError, match="only when the pending checks"):
        call_command("run_eval", *args, "--judge-adapter", "beta@1", stdout=StringIO(), stderr=StringIO())
    assert not Run.objects.exists()


def test_the_judges_task_goes_to_the_gpu_queue_and_a_give_up_is_recorded_on_its_kind(project, settings):
    from evalhub.runs import tasks
    from evalhub.runs.models import RunScoring
    from tests.factories import RunFactory

    assert settings.CELERY_TASK_ROUTES["evalhub.runs.tasks.score_judge_checks"] == {"queue": "gpu"}
    run = RunFactory(suite_version__suite__project=project, judge_checks=True)
    tasks._scoring_gave_up("score_judge_checks", RuntimeError("judge gone"), {"run_id": run.pk})
    state = RunScoring.objects.get(run=run, kind=ScoringKind.JUDGE_CHECKS)
    assert state.status == "failed" and "judge gone" in state.error
    assert not RunScoring.objects.filter(run=run, kind=ScoringKind.TEXT).exists()


def test_the_run_page_says_the_pending_checks_go_to_the_judge(project, tiny, suite_version, engineer, client):
    run = _create(project, tiny, suite_version, judge_checks=True, judge_adapter=tiny["beta"])
    plain = _create(project, tiny, suite_version)
    client.force_login(engineer)
    page = client.get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    assert "evaluated by the judge: tiny-base + beta@1" in page and "judge-evaluated" in page
    other = client.get(reverse("runs:detail", args=[project.slug, plain.pk])).content.decode()
    assert "not evaluated (kept for a judge)" in other
