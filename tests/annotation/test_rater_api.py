"""The lean rater views (annotation.rater_api): same answers as the DRF views, fewer statements, and a
session that is logged out, deactivated, re-passworded or stripped of its role is refused at once."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotation.models import Rating
from evalhub.accounts.models import Membership
from evalhub.accounts.services import token_create
from tests.annotation.factories import rating_data

pytestmark = pytest.mark.django_db


def fetch(client, study):
    return client.get(f"/api/v1/rater/next?study={study.public_id}")


def submit(client, public_id, data=None):
    return client.post(
        f"/api/v1/rater/tasks/{public_id}/rating",
        json.dumps(data or rating_data()),
        content_type="application/json",
    )


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
    assert set(body["task"]) == {"public_id", "input", "reference", "sides", "rubric"}
    assert fetch(logged_in, study).json() == body  # a live lease is handed back, not a new task
    stored = submit(logged_in, body["task"]["public_id"])
    assert (stored.status_code, stored.json()) == (201, {"status": "stored"})
    assert submit(logged_in, body["task"]["public_id"]).json() == {"status": "already_stored"}
    assert Rating.objects.count() == 1


def test_fetch_reads_user_session_and_study_in_one_statement(logged_in, study):
    fetch(logged_in, study)  # the process decodes this session once
    with CaptureQueriesContext(connection) as first:
        task = fetch(logged_in, study).json()["task"]  # the live lease: no transaction at all
    sqls = [q["sql"] for q in first.captured_queries]
    assert not any("django_session" in sql and "session_data" in sql for sql in sqls), sqls
    assert sum("auth_user" in sql for sql in sqls) == 1, sqls
    with CaptureQueriesContext(connection) as second:
        submit(logged_in, task["public_id"])
    assert sum("auth_user" in q["sql"] for q in second.captured_queries) == 1
    assert not any("session_data" in q["sql"] for q in second.captured_queries)


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


def test_bearer_token_rater_is_served_by_the_drf_view(project, study, raters):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {token_create(user=raters[1], project=project, name='t')[1]}"
    )
    task = fetch(client, study).json()["task"]
    assert submit(client, task["public_id"]).status_code == 201
    client.credentials(HTTP_AUTHORIZATION="Bearer ehk_nope_nope")
    assert fetch(client, study).status_code == 401


def test_anonymous_gets_401(study):
    assert fetch(Client(), study).status_code == 401


@pytest.mark.postgres
def test_rating_is_two_statements_to_fetch_and_three_to_submit_on_postgresql(
    require_postgres, logged_in, study
):
    first = fetch(logged_in, study).json()["task"]
    submit(logged_in, first["public_id"])
    with CaptureQueriesContext(connection) as fetching:
        task = fetch(logged_in, study).json()["task"]
    assert task is not None and task["public_id"] != first["public_id"]
    assert len(fetching.captured_queries) == 2, [q["sql"][:80] for q in fetching.captured_queries]
    with CaptureQueriesContext(connection) as submitting:
        assert submit(logged_in, task["public_id"]).status_code == 201
    assert len(submitting.captured_queries) == 3, [q["sql"][:80] for q in submitting.captured_queries]
