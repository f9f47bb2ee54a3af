"""A study with a judge: every pair judged in both orders by the real fixture model after the study is
committed, uncertainty-first order written from the stored judgements, failures recorded, raters blind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from annotation.models import Study, Task
from annotation.queue import task_assign_next
from annotation.services import consent_accept, study_create_from_run
from evalhub.errors import ValidationFailed
from evalhub.judging.logprob import OrderJudgement
from evalhub.judging.models import Judgement
from evalhub.judging.services import judge_prediction, study_judge
from metrics.routing import routing_plan
from tests.annotation.factories import rater_user, run_rows
from tests.factories import BaseModelFactory
from tests.judging.test_logprob_judge import FIXTURE_BASE

pytestmark = pytest.mark.django_db
slow = pytest.mark.slow  # loads the fixture judge and judges every pair (seconds each on a busy CPU)
LONG = "revenue " * 2000  # more tokens than the fixture judge's 1024-token context


def _texts(long_case: int | None = None):
    def text(key, case, i):
        if i == long_case and key == "candidate":
            return LONG
        wrong = "down 40 percent, margins collapsed" if (i + len(key)) % 3 == 0 else "up 3 percent"
        return (
            f"Summary {i}: revenue {wrong}."
            if key == "candidate"
            else f"Summary {i}: revenue up; margins flat."
        )

    return text


def _judged_study(project, django_capture_on_commit_callbacks, *, n_cases=8, long_case=None, **options):
    rows = run_rows(project, n_cases=n_cases, text=_texts(long_case))
    judge_model = BaseModelFactory(project=project, name="judge-base", folder=str(FIXTURE_BASE))
    gold = [{"case": rows.cases[0].key, "preference": "candidate"}]
    with django_capture_on_commit_callbacks(execute=True):
        study = study_create_from_run(
            run=rows.run,
            name="Judged study",
            judge_base_model=judge_model,
            gold_rate=0.2,
            gold_tasks=gold,
            seed=5,
            **options,
        )
    study.refresh_from_db()
    return rows, study


@slow
def test_the_judge_rates_every_pair_and_the_queue_follows_its_uncertainty(
    project, django_capture_on_commit_callbacks
):
    _, study = _judged_study(
        project, django_capture_on_commit_callbacks, routing="uncertainty_first", audit_share=0.3
    )
    pairs = list(Task.objects.filter(study=study, is_gold=False, output_b__isnull=False).order_by("pk"))
    gold = Task.objects.get(study=study, is_gold=True)
    state = study.judge_state
    assert state["status"] == "done" and state["pairs"] == len(pairs) == 7 and state["judged"] == 7
    assert state["routing"]["applied"] is True and state["failures"] == []
    # Both orders of every pair are stored; the gold task is neither judged nor routed.
    for task in pairs:
        assert sorted(Judgement.objects.filter(task=task).values_list("order", flat=True)) == ["ab", "ba"]
    assert not Judgement.objects.filter(task=gold).exists() and gold.routing == {}

    # The order is the routing plan computed from the stored judgements and the study's seed.
    uncertainty = [judge_prediction(list(t.judgements.all()))[1] for t in pairs]
    plan = routing_plan(uncertainty, audit_share=0.3, seed=study.seed)
    queue = [t.pk for t in sorted(pairs, key=lambda t: t.order_key)]
    assert queue == [pairs[i].pk for i in plan.order.tolist()]
    for i, task in enumerate(pairs):
        assert task.routing["weight"] == pytest.approx(plan.weights[i])
        assert task.routing["key"] == pytest.approx(plan.keys[i])
    # Weights are the inclusion probabilities' ingredients: they sum to 1 and favour the uncertain pairs.
    weights = np.array([t.routing["weight"] for t in pairs])
    assert weights.sum() == pytest.approx(1.0)
    u = np.array(uncertainty)
    assert np.all((u[:, None] > u[None, :]) <= (weights[:, None] > weights[None, :]))
    # The first rater gets the first pair of the plan.
    rater = rater_user(project, "first-expert")
    consent_accept(study=study, rater=rater)
    first = task_assign_next(study=study, rater=rater)
    assert first is not None and (first.task.is_gold or first.task.pk == queue[0])


@slow
def test_a_pair_the_judge_cannot_hold_is_recorded_and_routed_as_most_uncertain(
    project, django_capture_on_commit_callbacks
):
    rows, study = _judged_study(
        project, django_capture_on_commit_callbacks, long_case=3, routing="uncertainty_first"
    )
    state = study.judge_state
    assert state["status"] == "done" and state["judged"] == state["pairs"] - 1
    (failure,) = state["failures"]
    failed = Task.objects.get(public_id=failure["task"])
    assert failed.case_id == rows.cases[3].pk
    assert "JudgeContextError" in failure["reason"] and "context holds 1024" in failure["reason"]
    assert not Judgement.objects.filter(task=failed).exists()
    # The study carries on: routed, with the failed pair given the largest weight (uncertainty 0.5).
    pairs = Task.objects.filter(study=study, is_gold=False)
    assert state["routing"]["applied"] and failed.routing["weight"] == max(t.routing["weight"] for t in pairs)


@slow
def test_routing_is_left_alone_once_a_rater_has_a_task(project, django_capture_on_commit_callbacks):
    _, study = _judged_study(project, django_capture_on_commit_callbacks)  # random: nothing routed
    assert study.judge_state["status"] == "done" and "routing" not in study.judge_state
    before = dict(Task.objects.filter(study=study).values_list("pk", "order_key"))
    rater = rater_user(project, "early-expert")
    consent_accept(study=study, rater=rater)
    assert task_assign_next(study=study, rater=rater) is not None
    Study.objects.filter(pk=study.pk).update(routing="uncertainty_first")
    state = study_judge(study_id=study.pk)  # judges nothing again, and does not reorder
    assert state["routing"] == {
        "applied": False,
        "reason": "raters had started before the judge finished; the order stays random",
    }
    assert dict(Task.objects.filter(study=study).values_list("pk", "order_key")) == before
    assert Judgement.objects.filter(task__study=study).count() == 2 * state["pairs"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"routing": "uncertainty_first"}, "routing"),
        ({"routing": "sideways", "judge": True}, "routing"),
        ({"routing": "uncertainty_first", "audit_share": 0.0, "judge": True}, "audit_share"),
        ({"audit_share": 1.5, "judge": True}, "audit_share"),
    ],
)
def test_bad_judge_options_are_refused_on_their_field(project, options, field):
    rows = run_rows(project, n_cases=3)
    options = dict(options)
    if options.pop("judge", False):
        options["judge_base_model"] = rows.base_model
    with pytest.raises(ValidationFailed) as refused:
        study_create_from_run(run=rows.run, name="s", **options)
    assert field in refused.value.fields
    assert not Study.objects.exists()


def test_the_api_and_form_take_the_options_and_refuse_bad_ones_with_400(
    project, django_capture_on_commit_callbacks
):
    from evalhub.accounts.models import Role
    from evalhub.accounts.services import membership_set, user_create

    rows = run_rows(project, n_cases=3)
    lead = user_create(username="lead-judge", password="x-Secret-123")
    membership_set(project=project, user=lead, role=Role.LEAD)
    client = Client()
    client.force_login(lead)
    bad = client.post(
        "/api/v1/rater/studies/",
        {"run": rows.run.pk, "name": "s", "routing": "uncertainty_first"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "routing" in json.dumps(bad.json())
    unknown = client.post(
        "/api/v1/rater/studies/",
        {"run": rows.run.pk, "name": "s", "judge_base_model": "nope"},
        content_type="application/json",
    )
    assert unknown.status_code == 400 and "judge_base_model" in json.dumps(unknown.json())
    ok = client.post(
        "/api/v1/rater/studies/",
        {"run": rows.run.pk, "name": "s", "judge_base_model": rows.base_model.name, "audit_share": 0.5},
        content_type="application/json",
    )
    assert ok.status_code == 201, ok.content
    body = ok.json()
    assert body["routing"] == "random" and body["audit_share"] == 0.5
    assert body["judge"] == {"kind": "local", "base_model": rows.base_model.pk, "adapter": None}
    # The web form: a judge is a choice among the project's models; uncertainty-first without one is refused.
    url = reverse("annotation:study-new", args=[rows.run.pk])
    page = client.get(url).content.decode()
    assert f'value="base:{rows.base_model.pk}"' in page and 'name="audit_share"' in page
    form = {
        "name": "Form study",
        "baseline": rows.adapters["baseline"].pk,
        "candidates": [rows.adapters["candidate"].pk],
        "pairing": "baseline",
        "sampling": "all",
        "rubric_template": "summary_pairwise",
        "overlap": 2,
        "lease_minutes": 15,
        "routing": "uncertainty_first",
        "audit_share": 0.2,
    }
    refused = client.post(url, form)
    assert refused.status_code == 200 and "needs a judge" in refused.content.decode()
    created = client.post(url, {**form, "judge": f"base:{rows.base_model.pk}", "routing": "random"})
    assert created.status_code == 302
    made = Study.objects.get(name="Form study")
    assert made.judge_spec["base_model"] == rows.base_model.pk and made.routing == "random"


@slow
def test_raters_never_receive_the_judges_answers(project, django_capture_on_commit_callbacks):
    """Blinding: with every pair judged, nothing a rater gets (page or API) carries the judge's prompt,
    raw output, probabilities or any judge field."""
    _, study = _judged_study(project, django_capture_on_commit_callbacks, routing="uncertainty_first")
    judgements = list(Judgement.objects.filter(task__study=study))
    assert judgements
    secrets = {j.raw_output for j in judgements} | {f"{j.prob_a:.4f}" for j in judgements if j.prob_a}
    # Field names too ("judge" alone is ordinary English on the rating page: "judge whether ...").
    secrets |= {study.judge_state["judge_version"], "judge_", "judgement", "logprob", "prob_a", "routing"}
    secrets |= {"uncertain", "audit_"}
    rater = rater_user(project, "blind-expert")
    client = Client()
    client.force_login(rater)
    client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"})
    bodies = []
    for _ in range(3):
        response = client.get(reverse("annotation:next", args=[study.public_id]))
        if response.status_code != 302:
            break
        bodies.append(client.get(response["Location"]).content.decode())
        api = client.get("/api/v1/rater/next", {"study": study.public_id})
        bodies.append(api.content.decode())
        assert set(api.json()["task"]) == {"public_id", "input", "reference", "sides", "rubric", "expected"}
        client.post(
            f"/api/v1/rater/tasks/{api.json()['task']['public_id']}/skip",
            {"reason": "checking"},
            content_type="application/json",
        )
    bodies.append(client.get("/api/v1/rater/assigned-studies").content.decode())
    assert len(bodies) >= 3
    for body in bodies:
        leaked = [s for s in secrets if s.lower() in body.lower()]
        assert not leaked, f"a rater-visible response carries {leaked}"


def test_a_judge_that_cannot_load_leaves_the_study_open_in_random_order(
    project, django_capture_on_commit_callbacks
):
    """The judging task gives up (the judge model's folder is not a model): the study says why and carries on."""
    rows = run_rows(project, n_cases=3)  # its base model's folder does not exist on disk
    with django_capture_on_commit_callbacks(execute=True):
        study = study_create_from_run(
            run=rows.run, name="s", judge_base_model=rows.base_model, routing="uncertainty_first"
        )
    study.refresh_from_db()
    assert study.judge_state["status"] == "failed" and "no config.json" in study.judge_state["error"]
    assert study.judge_state["routing"] == {"applied": False, "reason": "the judge failed"}
    assert not Task.objects.filter(study=study).exclude(routing={}).exists()
    rater = rater_user(project, "carries-on")
    consent_accept(study=study, rater=rater)
    assert task_assign_next(study=study, rater=rater) is not None


def test_a_study_can_name_an_http_judge_endpoint_through_the_api_and_the_form(project, settings):
    """The study's judge may be one of the project's HTTP endpoints (judge_spec kind "endpoint"), loaded as
    the HTTP judge; an unknown name is a 400 on its field, and a catalogue judge beside it is refused."""
    from evalhub.accounts.models import Role
    from evalhub.accounts.services import membership_set, user_create
    from evalhub.judging.endpoints import endpoint_save
    from evalhub.judging.http import HttpJudge
    from evalhub.judging.services import judge_for_spec

    settings.EVALHUB_JUDGE_ALLOW_PRIVATE = True
    rows = run_rows(project, n_cases=3)
    lead = user_create(username="lead-endpoint", password="x-Secret-123")
    membership_set(project=project, user=lead, role=Role.LEAD)
    endpoint = endpoint_save(
        project=project, create=True, actor=lead, name="vllm-judge", base_url="http://127.0.0.1:8011/v1",
        model="judge",
    )  # fmt: skip
    client = Client()
    client.force_login(lead)
    unknown = client.post(
        "/api/v1/rater/studies/",
        {"run": rows.run.pk, "name": "s", "judge_endpoint": "nope"},
        content_type="application/json",
    )
    assert unknown.status_code == 400 and "judge_endpoint" in json.dumps(unknown.json())
    both = client.post(
        "/api/v1/rater/studies/",
        {
            "run": rows.run.pk,
            "name": "s",
            "judge_endpoint": "vllm-judge",
            "judge_base_model": rows.base_model.name,
        },
        content_type="application/json",
    )
    assert both.status_code == 400 and "judge_endpoint" in json.dumps(both.json())
    assert not Study.objects.exists()
    ok = client.post(
        "/api/v1/rater/studies/",
        {"run": rows.run.pk, "name": "s", "judge_endpoint": "vllm-judge"},
        content_type="application/json",
    )
    assert ok.status_code == 201, ok.content
    spec = ok.json()["judge"]
    assert spec == {"kind": "endpoint", "endpoint": endpoint.pk, "name": "vllm-judge"}
    judge = judge_for_spec(spec)
    assert isinstance(judge, HttpJudge) and judge.name
    page = client.get(reverse("annotation:study-new", args=[rows.run.pk])).content.decode()
    assert f'value="endpoint:{endpoint.pk}"' in page


class BatchJudge:
    """A judge that prefers A in both orders and records the batches it is handed. It fails a whole batch
    (as a model error would) when a pair holds ``erring``, and the database goes away on call ``crash_on``."""

    name, version = "batch-judge", "fedcba9876543210"

    def __init__(self, *, erring: str = "", crash_on: int = 0) -> None:
        self.erring, self.crash_on = erring, crash_on
        self.batches: list[list[str]] = []

    def judge_pairs(self, pairs, *, rubric):
        self.batches.append([p.output_a for p in pairs])
        if len(self.batches) == self.crash_on:
            raise OperationalError("the database went away")
        if self.erring and any(self.erring in p.output_a + p.output_b for p in pairs):
            raise RuntimeError("the model erred")
        return [
            (
                OrderJudgement("ab", rubric, "A", "A", 0.9, 1.0),
                OrderJudgement("ba", rubric, "B", "A", 0.8, 1.0),
            )
            for _ in pairs
        ]


def test_pairs_go_to_the_judge_in_batches_and_a_failing_pair_costs_only_itself(project):
    rows = run_rows(project, n_cases=7, text=lambda key, case, i: f"{key} {i}" + (" ERR" if i == 2 else ""))
    study = study_create_from_run(run=rows.run, name="s", judge_base_model=rows.base_model, seed=2)
    judge = BatchJudge(erring="ERR")
    state = study_judge(study_id=study.pk, judge=judge, batch_pairs=3)
    # Batches of 3, 3 and 1; the first fails as a whole and is asked again one pair at a time.
    assert [len(b) for b in judge.batches] == [3, 1, 1, 1, 3, 1]
    assert state["pairs"] == 7 and state["judged"] == 6 and state["unparseable"] == 0
    (failure,) = state["failures"]
    failed = Task.objects.get(public_id=failure["task"])
    assert failed.case_id == rows.cases[2].pk and failure["reason"] == "RuntimeError: the model erred"
    assert not Judgement.objects.filter(task=failed).exists()
    assert Judgement.objects.filter(task__study=study).count() == 12


def test_each_batch_is_stored_before_the_next_so_a_crash_loses_one_batch_and_a_redelivery_resumes(project):
    rows = run_rows(project, n_cases=7)
    study = study_create_from_run(run=rows.run, name="s", judge_base_model=rows.base_model, seed=2)
    with pytest.raises(OperationalError):  # transient: the task's retry policy takes it
        study_judge(study_id=study.pk, judge=BatchJudge(crash_on=2), batch_pairs=3)
    assert Judgement.objects.filter(task__study=study).count() == 6  # the first batch, kept
    again = BatchJudge()
    state = study_judge(study_id=study.pk, judge=again, batch_pairs=3)
    assert [len(b) for b in again.batches] == [3, 1]  # only the pairs not judged yet
    assert state["judged"] == state["pairs"] == 7 and state["failures"] == []
    assert Judgement.objects.filter(task__study=study).count() == 14
    redelivered = BatchJudge()
    assert study_judge(study_id=study.pk, judge=redelivered, batch_pairs=3)["judged"] == 7
    assert redelivered.batches == [] and Judgement.objects.filter(task__study=study).count() == 14
