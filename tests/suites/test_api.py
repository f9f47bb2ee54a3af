"""The suites API: uploads (multipart and JSON), listing with filters, counts, export, permissions."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from evalhub.suites.models import Case, SuiteVersion
from evalhub.suites.services import suite_import_file
from tests.suites.conftest import GOOD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]


def upload(api: APIClient, project: Any, name: str = "small", **extra: Any) -> Any:
    with (GOOD / name).open("rb") as handle:
        return api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "small", "file": handle, **extra},
            format="multipart",
        )


def test_multipart_upload_creates_a_version(api: APIClient, project: Any) -> None:
    response = upload(api, project, "small.xlsx", data_source="tickets", consent_statement="opt-in")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1 and body["case_count"] == 4 and body["source_format"] == "xlsx"
    assert body["project"] == project.slug


def test_multipart_upload_takes_a_mapping_and_options(api: APIClient, project: Any) -> None:
    response = upload(
        api, project, "small_semicolon.csv", delimiter=";", mapping="reference=", only_valid_rows="true"
    )
    assert response.status_code == 201, response.json()
    assert set(Case.objects.values_list("reference", flat=True)) == {""}


def test_dry_run_reports_without_storing(api: APIClient, project: Any) -> None:
    response = upload(api, project, "small.csv", dry_run="true")
    assert response.status_code == 200
    assert response.json()["valid_rows"] == 4 and response.json()["mapping"]["input"] == "input"
    assert not SuiteVersion.objects.exists()


def test_json_import_and_row_problems(api: APIClient, project: Any) -> None:
    cases = [{"id": "a", "input": "one", "tags": ["x"]}, {"id": "b", "input": ""}, "not an object"]
    response = api.post(
        "/api/v1/suites/", {"project": project.slug, "name": "j", "cases": cases}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["rows"] == [
        {"row": 2, "column": "input", "problem": "empty input"},
        {"row": 3, "column": "", "problem": "each line must be a JSON object, not str"},
    ]
    assert not SuiteVersion.objects.exists()
    response = api.post(
        "/api/v1/suites/", {"project": project.slug, "name": "j", "cases": cases[:1]}, format="json"
    )
    assert response.status_code == 201 and response.json()["case_count"] == 1


def test_lists_filters_counts_and_export(api: APIClient, project: Any) -> None:
    version = suite_import_file(project=project, name="small", path=GOOD / "small.csv")
    suites = api.get("/api/v1/suites/", {"project": project.slug}).json()["results"]
    assert suites[0]["name"] == "small" and suites[0]["latest_version"] == 1
    assert api.get(f"/api/v1/suite-versions/{version.pk}/").json()["case_count"] == 4

    def keys(**params: Any) -> list[str]:
        response = api.get("/api/v1/cases/", {"version": version.pk, **params})
        assert response.status_code == 200, response.json()
        return [c["key"] for c in response.json()["results"]]

    assert keys() == ["c1", "c2", "c3", "c4"]
    assert keys(tag="finance") == ["c1", "c3"]
    assert keys(origin="synthetic") == ["c3"]
    assert keys(split="heldout") == ["c2"]
    assert keys(category="injection") == ["c4"]
    assert keys(slice="domain:clinical") == ["c2"]
    assert keys(search="MARGIN") == ["c3"]
    counts = api.get(f"/api/v1/suite-versions/{version.pk}/counts/").json()
    assert counts["origin"] == {"real": 3, "synthetic": 1}
    assert counts["split"] == {"eval": 3, "heldout": 1}
    assert counts["tags"]["finance"] == 2 and counts["slices"]["domain"] == {"finance": 2, "clinical": 1}
    csv_response = api.get(f"/api/v1/suite-versions/{version.pk}/export/", {"type": "csv"})
    assert csv_response.status_code == 200
    assert b"".join(csv_response.streaming_content).decode("utf-8-sig").startswith("id,input,reference")
    xlsx_response = api.get(f"/api/v1/suite-versions/{version.pk}/export/", {"type": "xlsx"})
    assert xlsx_response.status_code == 200 and b"".join(xlsx_response.streaming_content)[:2] == b"PK"


def test_raters_and_other_projects_never_reach_suites(
    project: Any, other_project: Any, rater: Any, engineer: Any
) -> None:
    version = suite_import_file(project=project, name="small", path=GOOD / "small.csv")
    client = APIClient()
    client.force_authenticate(rater)
    assert client.get("/api/v1/suites/").json()["results"] == []
    assert client.get(f"/api/v1/suite-versions/{version.pk}/").status_code == 404
    assert client.get("/api/v1/cases/", {"version": version.pk}).json()["results"] == []
    with (GOOD / "small.csv").open("rb") as handle:
        response = client.post(
            "/api/v1/suites/upload/", {"project": project.slug, "name": "x", "file": handle}
        )
    assert response.status_code == 400 and "project" in response.json()["error"]["fields"]
    client.force_authenticate(engineer)
    with (GOOD / "small.csv").open("rb") as handle:
        response = client.post(
            "/api/v1/suites/upload/", {"project": other_project.slug, "name": "x", "file": handle}
        )
    assert response.status_code == 400
    assert APIClient().get("/api/v1/suites/").status_code in (401, 403)


def test_groups_for_synthetic_validation(project: Any) -> None:
    from evalhub.suites.selectors import case_groups_for_synthetic_validation

    version = suite_import_file(project=project, name="small", path=GOOD / "small.csv")
    groups = case_groups_for_synthetic_validation(version=version)
    assert {name: sorted(qs.values_list("key", flat=True)) for name, qs in groups.items()} == {
        "real_eval": ["c1", "c4"],
        "synthetic_eval": ["c3"],
        "heldout_real": ["c2"],
    }
