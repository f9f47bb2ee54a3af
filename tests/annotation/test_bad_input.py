"""Bad input: double submits, late submits, tampered ids, scores out of range, missing CSRF tokens.
Each gets a clear error; nothing is lost and nothing is counted twice."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, Rating, Task
from annotation.queue import task_assign_next
from annotation.services import rating_submit
from evalhub.errors import Conflict, NotFound, ValidationFailed
from tests.annotation.factories import rater_user, rating_data

pytestmark = pytest.mark.django_db


def api_post(client, path, data):
    return client.post(path, json.dumps(data), content_type="application/json")


@pytest.fixture
def held(study, raters):
    return task_assign_next(study=study, rater=raters[0])


def test_double_submit_same_rating_is_stored_once(held, raters):
    client = Client()
    client.force_login(raters[0])
    path = f"/api/v1/rater/tasks/{held.task.public_id}/rating"
    first = api_post(client, path, rating_data())
    again = api_post(client, path, rating_data())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"status": "already_stored"}
    changed = api_post(client, path, rating_data(preference="B"))
    assert changed.status_code == 409 and "already rated" in changed.json()["error"]["message"]
    assert Rating.objects.count() == 1 and Task.objects.get(pk=held.task_id).rating_count == 1


def test_double_submit_of_the_html_form_is_stored_once(held, raters):
    client = Client()
    client.force_login(raters[0])
    url = reverse("annotation:task", args=[held.study.public_id, held.task.public_id])
    form = {f"score__{k}__{s}": v for k, sides in rating_data()["scores"].items() for s, v in sides.items()}
    form.update({"preference": "tie", "rationale": "ok", "time_on_task_ms": "1200"})
    assert client.post(url, form).status_code == 302
    second = client.post(url, form, follow=True)
    assert b"already saved" in second.content
    assert Rating.objects.count() == 1 and Task.objects.get(pk=held.task_id).rating_count == 1


def test_late_submit_is_kept_while_the_task_still_has_room(held, raters):
    late = timezone.now() + timedelta(seconds=held.study.lease_seconds + 5)
    _, created = rating_submit(public_id=held.task.public_id, rater=raters[0], data=rating_data(), now=late)
    assert created and Task.objects.get(pk=held.task_id).rating_count == 1


def test_late_submit_after_others_took_the_place_is_refused_and_not_counted(project, rows, raters):
    from annotation.services import study_create_from_run

    study = study_create_from_run(run=rows.run, name="k1", overlap=1, lease_seconds=60)
    now = timezone.now()
    first = task_assign_next(study=study, rater=raters[0], now=now)
    later = now + timedelta(seconds=61)
    taken = task_assign_next(study=study, rater=raters[1], now=later)
    assert taken.task_id == first.task_id
    rating_submit(public_id=taken.task.public_id, rater=raters[1], data=rating_data(), now=later)
    with pytest.raises(Conflict, match="ran out"):
        rating_submit(public_id=first.task.public_id, rater=raters[0], data=rating_data(), now=later)
    assert Task.objects.get(pk=first.task_id).rating_count == 1
    assert Rating.objects.filter(task_id=first.task_id).count() == 1


def test_tampered_or_foreign_task_id_is_not_found(held, raters):
    for public_id in (held.task.public_id[:-1] + "x", "1", "../../admin"):
        with pytest.raises(NotFound):
            rating_submit(public_id=public_id, rater=raters[0], data=rating_data())
    with pytest.raises(NotFound):
        rating_submit(public_id=held.task.public_id, rater=raters[1], data=rating_data())
    client = Client()
    client.force_login(raters[1])
    response = api_post(client, f"/api/v1/rater/tasks/{held.task.public_id}/rating", rating_data())
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert Rating.objects.count() == 0


@pytest.mark.parametrize(
    ("scores", "field"),
    [
        ({"factual_accuracy": {"A": 6, "B": 3}}, "scores.factual_accuracy.A"),
        ({"factual_accuracy": {"A": 0, "B": 3}}, "scores.factual_accuracy.A"),
        ({"factual_accuracy": {"A": "five", "B": 3}}, "scores.factual_accuracy.A"),
        ({"factual_accuracy": {"A": 2.5, "B": 3}}, "scores.factual_accuracy.A"),
        ({"factual_accuracy": {"A": 3, "C": 3}}, "scores.factual_accuracy.C"),
        ({"made_up": {"A": 3, "B": 3}}, "scores.made_up"),
    ],
)
def test_scores_out_of_range_are_refused_with_the_field_named(held, raters, scores, field):
    data = rating_data()
    data["scores"] = {**data["scores"], **scores}
    client = Client()
    client.force_login(raters[0])
    response = api_post(client, f"/api/v1/rater/tasks/{held.task.public_id}/rating", data)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Rating.objects.count() == 0 and Assignment.objects.get(pk=held.pk).status == "active"


def test_missing_preference_and_bad_span_are_refused(held, raters):
    data = rating_data(preference="")
    data["hallucination"] = {"A": {"flagged": True, "spans": [{"start": 5, "end": 10_000}]}}
    with pytest.raises(ValidationFailed) as error:
        rating_submit(public_id=held.task.public_id, rater=raters[0], data=data)
    assert {"preference", "hallucination.A"} <= set(error.value.fields)


def test_span_text_is_taken_from_the_server_copy(held, raters):
    data = rating_data(
        hallucination={"B": {"flagged": True, "spans": [{"start": 0, "end": 11, "text": "forged"}]}}
    )
    rating, _ = rating_submit(public_id=held.task.public_id, rater=raters[0], data=data)
    assert rating.hallucination["B"]["spans"] == [
        {"start": 0, "end": 11, "text": held.task.output_b.text[:11]}
    ]
    assert rating.hallucination["A"] == {"flagged": False, "spans": []}


def test_missing_csrf_token_is_refused_for_form_and_api(held, raters):
    client = Client(enforce_csrf_checks=True)
    client.force_login(raters[0])
    url = reverse("annotation:task", args=[held.study.public_id, held.task.public_id])
    assert client.post(url, {"preference": "A"}).status_code == 403
    response = api_post(client, f"/api/v1/rater/tasks/{held.task.public_id}/rating", rating_data())
    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]
    assert Rating.objects.count() == 0


def test_invalid_form_is_shown_again_with_what_was_entered(held, raters):
    client = Client()
    client.force_login(raters[0])
    url = reverse("annotation:task", args=[held.study.public_id, held.task.public_id])
    response = client.post(url, {"score__factual_accuracy__A": "4", "rationale": "Half done"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'value="4" data-anchor="Accurate, with one trivial slip" checked' in page
    assert "Half done" in page and "Rate completeness for output A." in page


def test_time_on_task_is_capped_by_the_lease_time(held, raters):
    now = held.leased_at + timedelta(seconds=20)
    rating, _ = rating_submit(
        public_id=held.task.public_id, rater=raters[0], data=rating_data(time_on_task_ms=3_600_000), now=now
    )
    assert rating.time_on_task_ms == 20_000 and rating.client_time_ms == 3_600_000


def test_rater_outside_the_project_cannot_see_the_study(study, other_project):
    outsider = rater_user(other_project, "outsider")
    client = Client()
    client.force_login(outsider)
    assert client.get(reverse("annotation:start", args=[study.public_id])).status_code == 404
    assert client.get("/api/v1/rater/next", {"study": study.public_id}).status_code == 404


def test_a_full_task_refuses_a_rating_and_writes_nothing(held, raters):
    # A lease normally reserves its place; if the count is full anyway (a lease raced its expiry),
    # the conditional increment refuses and the rating, the assignment and the count stay as they were.
    Task.objects.filter(pk=held.task_id).update(rating_count=2)
    with pytest.raises(Conflict, match="already has all the ratings"):
        rating_submit(public_id=held.task.public_id, rater=raters[0], data=rating_data())
    assert Rating.objects.count() == 0
    assert Assignment.objects.get(pk=held.pk).status == "active"
    assert Task.objects.get(pk=held.task_id).rating_count == 2
