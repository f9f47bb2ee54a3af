"""Evaluation on registration: registering an adapter version, with no further call, runs the recipe through
generation and scoring to a frozen verdict (or an open study), and the notifications arrive."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.core import mail
from rest_framework.test import APIClient

from evalhub.catalog.models import Adapter
from evalhub.continuous.models import Delivery, DeliveryStatus, Evaluation, EvaluationState
from evalhub.continuous.recipes import recipe_save
from evalhub.errors import ValidationFailed
from evalhub.reports.models import Verdict
from tests.continuous.conftest import payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def scoring_on(settings):
    settings.EVALHUB_SCORE_ON_COMPLETE = True


def test_registering_through_the_api_leads_to_a_verdict_and_signed_notifications(
    project, engineer, tiny, tiny_folders, suite_version, auto_policy, notified, endpoint, scoring_on,
    django_capture_on_commit_callbacks,
):
    recipe_save(project=project, suites=["tiny-suite"], baseline_rule="parent", gate_policy=auto_policy,
                generation_config={"max_new_tokens": 4})
    client = APIClient()
    client.force_authenticate(engineer)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post("/api/v1/adapters/", {
            "project": project.slug, "base_model": "tiny-base", "folder": str(tiny_folders["beta"]),
            "name": "gamma", "version": "1", "parent": "alpha@1",
        }, format="json")
    assert answer.status_code == 201, answer.content
    gamma = Adapter.objects.get(name="gamma")
    evaluation = Evaluation.objects.get(adapter=gamma)
    assert evaluation.state == EvaluationState.VERDICT, evaluation.error
    assert evaluation.baseline == tiny["alpha"]
    verdict = Verdict.objects.get(candidate=gamma)
    assert verdict.baseline == tiny["alpha"] and verdict.policy == auto_policy
    assert [m.subject for m in mail.outbox] == [f"Verdict on gamma@1: {verdict.decision}"]
    (hook,) = endpoint.received
    body, headers = hook["body"], hook["headers"]
    expected = hmac.new(notified.secret.encode(), headers["X-Evalhub-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-Evalhub-Signature"] == f"sha256={expected}"
    assert payload(hook)["event"] == "verdict.ready"
    assert payload(hook)["data"]["verdict"] == verdict.public_id
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    from evalhub.continuous.selectors import adapter_timeline

    titles = [step.title for step in adapter_timeline(adapter=gamma)]
    assert titles == ["Registered", "Run started", "Run finished", "Scored", f"Verdict {verdict.decision}"]


def test_a_recipe_with_a_study_opens_it_and_asks_for_raters(
    project, tiny, suite_version, notified, endpoint, scoring_on, django_capture_on_commit_callbacks,
):
    from evalhub.catalog.services import adapter_register

    recipe_save(project=project, suites=["tiny-suite@1"], baseline_rule="named", baseline="alpha@1",
                open_study=True, generation_config={"max_new_tokens": 4})
    with django_capture_on_commit_callbacks(execute=True):
        gamma = adapter_register(project=project, base_model=tiny["base"], folder=str(tiny["beta"].folder),
                                 name="gamma", version="2")
    evaluation = Evaluation.objects.get(adapter=gamma)
    assert evaluation.state == EvaluationState.STUDY_OPEN, evaluation.error
    assert evaluation.study.baseline == tiny["alpha"]
    assert evaluation.study.tasks.exists()
    assert [payload(r)["event"] for r in endpoint.received] == ["study.needs_raters"]
    assert not Verdict.objects.exists()

    # Beat's study check: nothing while the study waits for ratings; a verdict once it is closed.
    from annotation.services import study_set_status
    from evalhub.continuous.recipes import studies_finish

    assert studies_finish() == 0
    study_set_status(study=evaluation.study, status="closed")
    with django_capture_on_commit_callbacks(execute=True):
        assert studies_finish() == 1
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.VERDICT and evaluation.verdict.study == evaluation.study
    assert evaluation.verdict.decision == "INCONCLUSIVE"  # no ratings: the default policy's human gates are open
    assert [payload(r)["event"] for r in endpoint.received] == ["study.needs_raters", "verdict.ready"]
    assert studies_finish() == 0


def test_registering_twice_starts_nothing_twice(project, tiny, suite_version, auto_policy):
    from evalhub.continuous.recipes import recipe_start

    recipe_save(project=project, suites=["tiny-suite"], baseline_rule="named", baseline="alpha@1",
                gate_policy=auto_policy)
    first = recipe_start(adapter_id=tiny["beta"].pk)
    assert len(first) == 1
    assert recipe_start(adapter_id=tiny["beta"].pk) == []
    assert Evaluation.objects.filter(adapter=tiny["beta"]).count() == 1


def test_an_adapter_without_the_baseline_its_rule_needs_fails_visibly(
    project, tiny, suite_version, auto_policy, notified, endpoint, django_capture_on_commit_callbacks,
):
    from evalhub.continuous.recipes import recipe_start

    recipe_save(project=project, suites=["tiny-suite"], baseline_rule="parent", gate_policy=auto_policy)
    with django_capture_on_commit_callbacks(execute=True):
        (evaluation,) = recipe_start(adapter_id=tiny["beta"].pk)
    assert evaluation.state == EvaluationState.FAILED
    assert "no baseline" in evaluation.error
    assert [payload(r)["event"] for r in endpoint.received] == ["run.failed"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"suites": ["missing-suite"], "baseline_rule": "parent"}, "suites"),
        ({"suites": ["tiny-suite@7"], "baseline_rule": "parent"}, "suites"),
        ({"suites": [], "baseline_rule": "parent"}, "suites"),
        ({"suites": ["tiny-suite"], "baseline_rule": "named", "baseline": "nobody@1"}, "baseline"),
        ({"suites": ["tiny-suite"], "baseline_rule": "named"}, "baseline"),
        ({"suites": ["tiny-suite"], "baseline_rule": "parent", "generation_config": {"temperature": -3}},
         "generation_config"),
        ({"suites": ["tiny-suite"], "baseline_rule": "parent", "backend": "nope"}, "backend"),
        # The default policy has gates on ratings: without a study it could never decide.
        ({"suites": ["tiny-suite"], "baseline_rule": "parent"}, "open_study"),
    ],
)
def test_a_recipe_that_could_not_run_is_refused_when_saved(project, tiny, suite_version, values, field):
    from evalhub.continuous.models import Recipe

    with pytest.raises(ValidationFailed) as refused:
        recipe_save(project=project, **values)
    assert field in refused.value.fields
    assert not Recipe.objects.exists()


def test_registering_with_the_cli_starts_the_recipe(project, tiny, tiny_folders, suite_version, auto_policy,
                                                    django_capture_on_commit_callbacks):
    from django.core.management import call_command

    recipe_save(project=project, suites=["tiny-suite"], baseline_rule="named", baseline="alpha@1",
                gate_policy=auto_policy, generation_config={"max_new_tokens": 4})
    with django_capture_on_commit_callbacks(execute=True):
        call_command("register_adapter", str(tiny_folders["beta"]), "--project", project.slug,
                     "--base-model", "tiny-base", "--name", "cli-gamma")
    evaluation = Evaluation.objects.get(adapter__name="cli-gamma")
    assert evaluation.baseline == tiny["alpha"] and evaluation.run is not None
