"""The rater API: one path through Django's session, authentication and CSRF middleware and DRF, where a
rater who loses access (logged out, deactivated, re-passworded, removed, dropped from the pool, a
token revoked or scoped to another project) is refused on the very next request, a held task
included, and their leases go back to the queue at once."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Assignment, AssignmentStatus, Rating
from annotation.services import consent_accept, pool_create, study_create_from_run
from evalhub.accounts.models import Membership, Role
from evalhub.accounts.services import membership_remove, membership_set, token_create, token_revoke
from tests.annotation.factories import rating_data, run_rows

pytestmark = pytest.mark.django_db


def fetch(client, study):
    return client.get(f"/api/v1/rater/next?study={study.public_id}")


def submit(client, public_id, data=None):
    return client.post(
        f"/api/v1/rater/tasks/{public_id}/rating",
        json.dumps(data or rating_data()),
        content_type="application/json",
    )


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def logged_in(raters):
    client = Client()
    client.force_login(raters[0])
    return client


def test_session_rater_fetches_and_submits(logged_in, study):
    got = fetch(logged_in, study)
    assert got.status_code == 200 and got["Content-Type"] == "application/json"
    body = got.json()
    assert set(body) == {"task", "lease_seconds"} and body["lease_seconds"] == study.lease_seconds
    assert set(body["task"]) == {"public_id", "input", "reference", "sides", "rubric", "expected"}
    assert fetch(logged_in, study).json() == body  # a live lease is handed back, not a new task
    stored = submit(logged_in, body["task"]["public_id"])
    assert (stored.status_code, stored.json()) == (201, {"status": "stored"})
    assert submit(logged_in, body["task"]["public_id"]).json() == {"status": "already_stored"}
    assert Rating.objects.count() == 1


def test_session_submit_needs_the_csrf_token(raters, study):
    client = Client(enforce_csrf_checks=True)
    client.force_login(raters[0])
    task = fetch(client, study).json()["task"]
    refused = submit(client, task["public_id"])
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    client.get("/rate/")  # any page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    stored = client.post(
        f"/api/v1/rater/tasks/{task['public_id']}/rating",
        json.dumps(rating_data()),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert stored.status_code == 201 and Rating.objects.count() == 1


def test_logged_out_session_is_refused_on_the_next_request(logged_in, study):
    assert fetch(logged_in, study).status_code == 200
    cookie = logged_in.cookies["sessionid"].value
    logged_in.logout()
    replay = Client()
    replay.cookies["sessionid"] = cookie
    assert fetch(replay, study).status_code in (401, 403)


def test_deactivated_rater_is_refused_on_the_next_request(logged_in, study, raters):
    assert fetch(logged_in, study).status_code == 200
    raters[0].is_active = False
    raters[0].save(update_fields=["is_active"])
    assert fetch(logged_in, study).status_code in (401, 403)


def test_password_change_ends_other_sessions_at_once(logged_in, study, raters):
    assert fetch(logged_in, study).status_code == 200
    raters[0].set_password("a-new-long-password")
    raters[0].save(update_fields=["password"])
    assert fetch(logged_in, study).status_code in (401, 403)


def test_removed_rater_role_hides_the_study_at_once(logged_in, study, raters):
    assert fetch(logged_in, study).status_code == 200
    Membership.objects.filter(user=raters[0]).delete()
    refused = fetch(logged_in, study)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_removed_rater_cannot_submit_a_task_they_held(logged_in, study, raters):
    """Issue #14: the membership was deleted and a held task was still accepted (201)."""
    task = fetch(logged_in, study).json()["task"]
    membership_remove(membership=Membership.objects.get(user=raters[0]))
    refused = submit(logged_in, task["public_id"])
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    skipped = logged_in.post(
        f"/api/v1/rater/tasks/{task['public_id']}/skip", {"reason": "x"}, content_type="application/json"
    )
    assert skipped.status_code == 404
    assert Rating.objects.count() == 0


def test_removing_a_rater_releases_their_leases_at_once(logged_in, study, raters):
    task = fetch(logged_in, study).json()["task"]
    held = Assignment.objects.get(rater=raters[0], task__public_id=task["public_id"])
    membership_remove(membership=Membership.objects.get(user=raters[0]))
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED
    # overlap 2: with the lease released, two other raters both get that first task
    for rater in raters[1:]:
        other = Client()
        other.force_login(rater)
        assert fetch(other, study).json()["task"]["public_id"] == task["public_id"]


def test_turning_a_rater_into_staff_releases_their_leases(logged_in, project, study, raters):
    fetch(logged_in, study)
    membership_set(project=project, user=raters[0], role=Role.ENGINEER)
    assert not Assignment.objects.filter(rater=raters[0], status=AssignmentStatus.ACTIVE).exists()
    assert fetch(logged_in, study).status_code == 404


def test_dropping_a_rater_from_the_pool_refuses_their_held_task(project, raters):
    rows = run_rows(project, n_cases=2)
    pool = pool_create(project=project, name="experts", members=raters[:2])
    study = study_create_from_run(run=rows.run, name="pooled", pool=pool, seed=2)
    consent_accept(study=study, rater=raters[0])
    client = Client()
    client.force_login(raters[0])
    task = fetch(client, study).json()["task"]
    pool.members.remove(raters[0])
    assert Assignment.objects.get(rater=raters[0]).status == AssignmentStatus.EXPIRED
    assert submit(client, task["public_id"]).status_code == 404
    assert Rating.objects.count() == 0


def test_revoking_a_token_releases_the_leases_it_took(project, study, raters):
    token, secret = token_create(user=raters[1], project=project, name="t")
    client = bearer(secret)
    task = fetch(client, study).json()["task"]
    held = Assignment.objects.get(rater=raters[1], task__public_id=task["public_id"])
    assert held.token_id == token.pk
    token_revoke(token=token)
    held.refresh_from_db()
    assert held.status == AssignmentStatus.EXPIRED
    refused = submit(client, task["public_id"])
    assert refused.status_code == 401 and Rating.objects.count() == 0


def test_a_token_scoped_to_another_project_reaches_no_study(project, other_project, study, raters):
    """Issue #14: an engineer of project A and a rater of project B, with a token scoped to A, listed
    B's studies, accepted B's terms, fetched a B task and stored a rating in B."""
    user = raters[2]  # a rater of the study's project (B here) ...
    membership_set(project=other_project, user=user, role=Role.ENGINEER)  # ... and an engineer of A
    session = Client()
    session.force_login(user)
    task = fetch(session, study).json()["task"]  # held through the session, where B is in reach
    scoped_to_a = bearer(token_create(user=user, project=other_project, name="a")[1])
    assert scoped_to_a.get("/api/v1/rater/assigned-studies").json() == []
    assert scoped_to_a.post(f"/api/v1/rater/assigned-studies/{study.public_id}/consent").status_code == 404
    assert fetch(scoped_to_a, study).status_code == 404
    assert scoped_to_a.get(f"/api/v1/rater/progress?study={study.public_id}").status_code == 404
    assert submit(scoped_to_a, task["public_id"]).status_code == 404
    skip = scoped_to_a.post(f"/api/v1/rater/tasks/{task['public_id']}/skip", {"reason": "x"}, format="json")
    assert skip.status_code == 404
    assert Rating.objects.count() == 0
    scoped_to_b = bearer(token_create(user=user, project=study.project, name="b")[1])
    assert submit(scoped_to_b, task["public_id"]).status_code == 201


def test_errors_keep_the_api_format(logged_in, study):
    missing = logged_in.get("/api/v1/rater/next")
    assert missing.status_code == 400 and missing.json()["error"]["fields"] == {"study": ["Required."]}
    unknown = logged_in.get("/api/v1/rater/next?study=nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    task = fetch(logged_in, study).json()["task"]
    bad = submit(logged_in, task["public_id"], rating_data(scores={"factual_accuracy": {"A": 9}}))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    not_object = logged_in.post(
        f"/api/v1/rater/tasks/{task['public_id']}/rating", "[1]", content_type="application/json"
    )
    assert not_object.status_code == 400 and not_object.json()["error"]["fields"] == {
        "non_field_errors": ["Not an object."]
    }
    broken = logged_in.post(
        f"/api/v1/rater/tasks/{task['public_id']}/rating", "{", content_type="application/json"
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "parse_error"
    empty = logged_in.post(
        f"/api/v1/rater/tasks/{task['public_id']}/rating", "", content_type="application/json"
    )
    assert empty.status_code == 400 and "scores" in json.dumps(empty.json()["error"]["fields"])
    wrong_method = logged_in.delete(f"/api/v1/rater/tasks/{task['public_id']}/rating")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert Rating.objects.count() == 0


def test_bearer_token_rater_fetches_and_submits(project, study, raters):
    client = bearer(token_create(user=raters[1], project=project, name="t")[1])
    task = fetch(client, study).json()["task"]
    assert submit(client, task["public_id"]).status_code == 201
    client.credentials(HTTP_AUTHORIZATION="Bearer ehk_nope_nope")
    assert fetch(client, study).status_code == 401


def test_anonymous_gets_401(study):
    assert fetch(Client(), study).status_code == 401


def test_a_rating_costs_a_bounded_number_of_statements(logged_in, study, django_assert_max_num_queries):
    """Pins the cost of the hot path, so a change that adds queries per rating shows here."""
    first = fetch(logged_in, study).json()["task"]
    submit(logged_in, first["public_id"])
    with django_assert_max_num_queries(12):
        task = fetch(logged_in, study).json()["task"]
    assert task is not None and task["public_id"] != first["public_id"]
    with django_assert_max_num_queries(12):
        assert submit(logged_in, task["public_id"]).status_code == 201
