"""One adapter as both candidate and baseline is refused with a field error, never silently deduplicated."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotation.models import Study
from evalhub.runs.models import Run
from tests.annotation.factories import run_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_completion_hooks")]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_runs_api_refuses_the_baseline_among_the_adapters(project, tiny, suite_version, engineer):
    body = {
        "project": project.slug,
        "suite": "tiny-suite",
        "base_model": "tiny-base",
        "adapters": ["alpha@1", "beta@1"],
        "baseline": "beta@1",
    }
    response = _client(engineer).post("/api/v1/runs/", json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert "both a candidate and the baseline" in " ".join(response.json()["error"]["fields"]["baseline"])
    assert not Run.objects.exists()


def test_study_api_refuses_the_baseline_among_the_candidates(project, engineer):
    rows = run_rows(project, n_cases=2)
    payload = {
        "run": rows.run.pk,
        "name": "API study",
        "baseline": rows.adapters["baseline"].label,
        "candidates": [rows.adapters["baseline"].label, rows.adapters["candidate"].label],
    }
    response = _client(engineer).post(
        "/api/v1/rater/studies/", json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "cannot also be a candidate" in " ".join(response.json()["error"]["fields"]["candidates"])
    assert not Study.objects.exists()
