"""Quality controls: consent before the first task, gold accuracy and agreement for the study owner, progress."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Consent
from annotation.queue import task_assign_next
from annotation.selectors import rater_progress, study_progress, study_rater_stats
from annotation.services import rating_submit, study_create_from_run
from tests.annotation.factories import rater_user, rating_data, run_rows

pytestmark = pytest.mark.django_db


def test_no_task_before_consent_and_changed_terms_ask_again(study, project):
    rater = rater_user(project, "new")
    client = Client()
    client.force_login(rater)
    response = client.get(reverse("annotation:next", args=[study.public_id]))
    assert response.status_code == 302 and response["Location"] == reverse(
        "annotation:start", args=[study.public_id]
    )
    api = client.get("/api/v1/rater/next", {"study": study.public_id})
    assert api.status_code == 403 and "accept its terms" in api.json()["error"]["message"]
    page = client.post(reverse("annotation:start", args=[study.public_id]), {})
    assert page.status_code == 400 and b"Tick the box" in page.content
    assert not Consent.objects.filter(rater=rater).exists()
    client.post(reverse("annotation:start", args=[study.public_id]), {"accept": "1"})
    assert client.get("/api/v1/rater/next", {"study": study.public_id}).status_code == 200
    study.terms = "New terms."
    study.save()
    assert client.get("/api/v1/rater/next", {"study": study.public_id}).status_code == 403


def test_owner_sees_gold_accuracy_and_agreement(project, lead):
    rows = run_rows(project, n_cases=5)
    gold = [{"case": rows.cases[0].key, "preference": "candidate"}]
    study = study_create_from_run(run=rows.run, name="q", overlap=2, gold_rate=1.0, gold_tasks=gold)
    gold_task = study.tasks.select_related("output_a").get(is_gold=True)
    candidate_side = gold_task.gold_answer["preference"]
    wrong = "B" if candidate_side == "A" else "A"
    good, bad = rater_user(project, "good"), rater_user(project, "bad")
    for rater, gold_pick in ((good, candidate_side), (bad, wrong)):
        while (a := task_assign_next(study=study, rater=rater)) is not None:
            pick = gold_pick if a.task.is_gold else "A"
            rating_submit(public_id=a.task.public_id, rater=rater, data=rating_data(preference=pick))
    stats = {s.username: s for s in study_rater_stats(study=study)}
    assert (stats["good"].gold_correct, stats["good"].gold_rated) == (1, 1)
    assert (stats["bad"].gold_correct, stats["bad"].gold_rated) == (0, 1)
    assert stats["good"].agreement == 1.0 and stats["good"].agreement_n == 4
    assert study_progress(study=study).complete == 4

    client = Client()
    client.force_login(lead)
    page = client.get(reverse("annotation:owner-study", args=[study.public_id])).content.decode()
    assert "1/1 (100%)" in page and "0/1 (0%)" in page
    detail = client.get(f"/api/v1/rater/studies/{study.public_id}/").json()
    assert {r["username"] for r in detail["raters"]} == {"good", "bad"}


def test_progress_counts_done_skipped_and_remaining(study, raters):
    a = task_assign_next(study=study, rater=raters[0])
    rating_submit(public_id=a.task.public_id, rater=raters[0], data=rating_data())
    b = task_assign_next(study=study, rater=raters[0])
    client = Client()
    client.force_login(raters[0])
    client.post(reverse("annotation:skip", args=[study.public_id, b.task.public_id]), {"reason": "broken"})
    progress = rater_progress(study=study, rater=raters[0])
    assert progress.as_dict() == {"done": 1, "skipped": 1, "remaining": 4}
    assert client.get("/api/v1/rater/progress", {"study": study.public_id}).json() == progress.as_dict()
    c = client.get(reverse("annotation:next", args=[study.public_id]))
    page = client.get(c["Location"]).content.decode()
    assert "1 rated · <strong>4</strong> left" in page


def test_skip_needs_a_reason(study, raters):
    a = task_assign_next(study=study, rater=raters[0])
    client = Client()
    client.force_login(raters[0])
    response = client.post(
        reverse("annotation:skip", args=[study.public_id, a.task.public_id]), {"reason": "other"}, follow=True
    )
    assert b"Choose why you skip" in response.content
    api = client.post(
        f"/api/v1/rater/tasks/{a.task.public_id}/skip",
        json.dumps({"reason": ""}),
        content_type="application/json",
    )
    assert api.status_code == 400


def test_owner_creates_a_study_through_the_api(project, engineer, rows):
    client = Client()
    client.force_login(engineer)
    payload = {"run": rows.run.pk, "name": "API study", "overlap": 3, "gold_tasks": [], "seed": 4}
    response = client.post("/api/v1/rater/studies/", json.dumps(payload), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["tasks"] == 6 and body["needed"] == 18
    status = client.post(
        f"/api/v1/rater/studies/{body['public_id']}/status",
        json.dumps({"status": "paused"}),
        content_type="application/json",
    )
    assert status.json()["status"] == "paused"


def test_rater_cannot_create_studies(project, rows, raters):
    client = Client()
    client.force_login(raters[0])
    response = client.post(
        "/api/v1/rater/studies/",
        json.dumps({"run": rows.run.pk, "name": "x"}),
        content_type="application/json",
    )
    assert response.status_code == 404


def test_admin_lists_studies_and_shows_ratings_read_only(study, raters, admin_user):
    a = task_assign_next(study=study, rater=raters[0])
    rating, _ = rating_submit(public_id=a.task.public_id, rater=raters[0], data=rating_data())
    client = Client()
    client.force_login(admin_user)
    for model in ("study", "task", "assignment", "rating", "consent", "raterpool"):
        assert client.get(f"/admin/annotation/{model}/").status_code == 200, model
    page = client.get(f"/admin/annotation/rating/{rating.pk}/change/")
    assert page.status_code == 200 and b'name="rationale"' not in page.content
