"""The runs API: create-and-start, progress, cancel/resume, outputs with filters, scoped to staff roles."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from evalhub.accounts.services import token_create
from evalhub.runs.models import Run, RunStatus
from evalhub.runs.services import run_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def body(project, **extra):
    return {
        "project": project.slug,
        "suite": "tiny-suite",
        "base_model": "tiny-base",
        "adapters": ["alpha@1"],
        "baseline": "beta@1",
        "generation_config": {"max_new_tokens": 5},
        **extra,
    }


def test_create_starts_the_run_and_reports_progress(project, tiny, suite_version, engineer):
    client = session(engineer)
    response = client.post("/api/v1/runs/", body(project), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "completed"  # no broker: the run executed before the reply
    assert data["progress"]["done"] == data["progress"]["total"] == 12
    assert {a["adapter"]: a["role"] for a in data["adapters"]} == {"beta@1": "baseline", "alpha@1": "candidate"}
    assert all(a["sanity"]["ok"] for a in data["adapters"])

    progress = client.get(f"/api/v1/runs/{data['id']}/progress/").json()
    assert progress["percent"] == 100.0 and progress["tokens_per_second"] > 0
    listing = client.get("/api/v1/runs/", {"project": project.slug}).json()
    assert [r["id"] for r in listing["results"]] == [data["id"]]


def test_outputs_are_paginated_and_filtered(project, tiny, suite_version, engineer):
    client = session(engineer)
    run_id = client.post("/api/v1/runs/", body(project), format="json").json()["id"]
    page = client.get(f"/api/v1/runs/{run_id}/outputs/").json()
    assert page["count"] == 12
    first = page["results"][0]
    for field in ("text", "prompt_tokens", "output_tokens", "finish_reason", "latency_ms", "backend",
                  "seed", "config_hash", "truncated"):
        assert field in first
    alpha = client.get(f"/api/v1/runs/{run_id}/outputs/", {"adapter": "alpha@1"}).json()
    assert alpha["count"] == 6 and {o["adapter"] for o in alpha["results"]} == {"alpha@1"}
    one_case = client.get(f"/api/v1/runs/{run_id}/outputs/", {"case": "c2"}).json()
    assert one_case["count"] == 2
    assert client.get(f"/api/v1/runs/{run_id}/outputs/", {"split": "heldout"}).json()["count"] == 0


def test_bad_input_is_a_400_with_the_field(project, tiny, suite_version, engineer):
    client = session(engineer)
    response = client.post("/api/v1/runs/", body(project, adapters=["ghost@1"]), format="json")
    assert response.status_code == 400 and "adapters" in response.json()["error"]["fields"]
    response = client.post("/api/v1/runs/", body(project, generation_config={"top_p": 2}), format="json")
    assert response.status_code == 400 and "generation_config" in response.json()["error"]["fields"]
    assert not Run.objects.exists()


def test_a_zeroed_adapter_fails_the_run_with_a_clear_error(project, tiny, suite_version, engineer):
    response = session(engineer).post("/api/v1/runs/", body(project, adapters=["zero@1"]), format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "failed" and "changes nothing" in response.json()["error"]


def test_cancel_and_resume(project, tiny, suite_version, engineer):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    client = session(engineer)
    assert client.post(f"/api/v1/runs/{run.pk}/cancel/").json()["status"] == "cancelled"
    conflict = client.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    resumed = client.post(f"/api/v1/runs/{run.pk}/resume/").json()
    assert resumed["status"] == "completed" and resumed["progress"]["done"] == 6


def test_raters_and_other_projects_see_no_runs(project, other_project, tiny, suite_version, rater, lead):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])
    assert session(rater).get(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert session(rater).post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 404
    _, secret = token_create(user=lead, project=other_project, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert session(lead).get(f"/api/v1/runs/{run.pk}/").status_code == 200
    assert Run.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_the_run_list_costs_the_same_few_queries_for_any_number_of_runs(
    project, tiny, suite_version, engineer, django_assert_num_queries
):
    from evalhub.runs.models import RunScoring

    client = session(engineer)

    def add_runs(count: int) -> None:
        for _ in range(count):
            run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                             adapters=[tiny["alpha"]], baseline=tiny["beta"])
            RunScoring.objects.create(run=run, kind="text", status="done")

    def listed() -> dict:
        return client.get("/api/v1/runs/", {"project": project.slug, "page_size": 100}).json()

    add_runs(2)
    # session, user, count, runs (with their progress counts), run adapters, scoring states
    with django_assert_num_queries(6):
        first = listed()
    add_runs(10)
    with django_assert_num_queries(6):
        second = listed()
    assert second["count"] == 12 and len(second["results"]) == len(first["results"]) + 10
    run = second["results"][0]
    assert [a["adapter"] for a in run["adapters"]] == ["beta@1", "alpha@1"]
    assert run["progress"]["chunks_total"] == 0 and run["scoring"][0]["status"] == "done"
