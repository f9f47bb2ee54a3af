"""Large imports run as a task: 202 and a status URL from the API, a status page on the web; small
imports stay synchronous; a failed import stores nothing and says why, field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, user_create
from evalhub.suites.models import Case, Suite, SuiteVersion, Upload, UploadStatus
from evalhub.suites.services import scan_file, scanning, suite_upload_import, uploads
from tests.suites.conftest import GOOD

pytestmark = pytest.mark.django_db

CASES = [{"id": f"c{i}", "input": f"Revenue rose {i}%.", "reference": "Up."} for i in range(3)]


@pytest.fixture
def threshold(settings: Any) -> Any:
    settings.EVALHUB_SUITE_BACKGROUND_ROWS = 2
    settings.EVALHUB_SUITE_PII_SCAN = False
    return settings


def post_cases(api: APIClient, project: Any, cases: list[Any], **extra: Any) -> Any:
    return api.post(
        "/api/v1/suites/", {"project": project.slug, "name": "big", "cases": cases, **extra}, format="json"
    )


def test_small_json_import_stays_synchronous(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = post_cases(api, project, CASES[:2])
    assert response.status_code == 201, response.json()
    assert response.json()["case_count"] == 2
    assert queued == [] and not Upload.objects.exists()


def test_large_json_import_answers_202_and_its_status_url_reports_the_version(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_cases(api, project, CASES)
        # The answer leaves before the task runs: nothing is stored yet.
        assert response.status_code == 202, response.json()
        body = response.json()
        assert body["status"] == "pending" and body["rows_total"] == 3 and body["version"] is None
        assert response["Location"] == body["url"] == f"/api/v1/suite-uploads/{body['id']}/"
        assert not SuiteVersion.objects.exists()
    status = api.get(body["url"]).json()
    assert status["status"] == "imported", status
    assert status["rows_screened"] == status["rows_total"] == 3
    assert status["version"]["case_count"] == 3 and status["version"]["number"] == 1
    assert sorted(Case.objects.values_list("key", flat=True)) == ["c0", "c1", "c2"]
    assert not (Path(threshold.MEDIA_ROOT) / Upload.objects.get().path).exists()


def test_large_multipart_upload_is_queued_and_imported(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "big", "file": handle, "data_source": "tickets"},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "imported" and status["version"]["case_count"] == 4
    assert Suite.objects.get().data_source == "tickets"


def test_failed_background_import_stores_nothing_and_reports_the_row_problems(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    cases = [*CASES, {"id": "bad", "input": ""}]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_cases(api, project, cases)
    assert response.status_code == 202
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "failed" and status["version"] is None
    assert "nothing was imported" in status["error"]["message"]
    assert status["error"]["code"] == "invalid"
    assert status["error"]["fields"]["rows"] == [{"row": 4, "column": "input", "problem": "empty input"}]
    assert not Suite.objects.exists() and not SuiteVersion.objects.exists() and not Case.objects.exists()
    upload = Upload.objects.get()
    assert upload.finished_at is not None
    assert not (Path(threshold.MEDIA_ROOT) / upload.path).parent.exists()


def test_choices_are_checked_before_anything_is_queued(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = post_cases(api, project, CASES, pii_action="keep")
    assert response.status_code == 400
    assert "pii_justification" in response.json()["error"]["fields"]
    assert queued == [] and not Upload.objects.exists()


def test_an_unexpected_error_marks_the_import_failed(
    api: APIClient,
    project: Any,
    threshold: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(uploads, "suite_import", broken)  # what the queued import calls
    with django_capture_on_commit_callbacks(execute=True):
        response = post_cases(api, project, CASES)
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "failed" and "disk on fire" in status["error"]["message"]
    assert not SuiteVersion.objects.exists()


def test_a_second_delivery_of_the_task_changes_nothing(
    api: APIClient, project: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        upload_id = post_cases(api, project, CASES).json()["id"]
    first = Upload.objects.get(pk=upload_id)
    again = suite_upload_import(upload_id=upload_id)
    assert again.status == UploadStatus.IMPORTED and again.version_id == first.version_id
    assert SuiteVersion.objects.count() == 1


def test_status_url_is_private_to_the_project(
    api: APIClient,
    project: Any,
    threshold: Any,
    other_project: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        url = post_cases(api, project, CASES).json()["url"]
    outsider = user_create(username="outsider", password="a-long-test-password-1")
    membership_set(project=other_project, user=outsider, role=Role.LEAD)
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.get(url).status_code == 404


def test_progress_is_reported_as_rows_are_screened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanning, "PROGRESS_ROWS", 2)
    path = tmp_path / "five.csv"
    path.write_text("id,input\n" + "".join(f"r{i},Margins fell {i}%.\n" for i in range(5)))
    seen: list[int] = []
    report = scan_file(path=path, progress=seen.append)
    assert seen == [2, 4, 5] and report.pii_screened_rows == 5


def test_a_large_web_upload_shows_a_status_page_then_the_suite(
    project: Any, engineer: Any, threshold: Any, django_capture_on_commit_callbacks: Any
) -> None:
    web = Client()
    web.force_login(engineer)
    with (GOOD / "small.csv").open("rb") as handle:
        web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "web big"})
    upload = Upload.objects.get()
    page_url = f"/p/{project.slug}/suites/uploads/{upload.pk}/"
    with django_capture_on_commit_callbacks() as queued:
        response = web.post(page_url, {"action": "confirm", "pii_action": "redact"})
    assert response.status_code == 302 and response["Location"] == page_url
    page = web.get(page_url).content.decode()
    assert "Importing “small.csv”" in page and "Pending" in page and "0</span> of <span" in page
    assert f'data-status-url="/api/v1/suite-uploads/{upload.pk}/"' in page
    assert not SuiteVersion.objects.exists()
    listing = web.get(f"/p/{project.slug}/suites/").content.decode()
    assert "Imports in progress" in listing and f'href="{page_url}"' in listing
    for callback in queued:
        callback()
    response = web.get(page_url, follow=True)
    assert "Counts" in response.content.decode()
    assert SuiteVersion.objects.get().case_count == 4


def test_a_failed_web_import_lists_why_and_stored_nothing(
    project: Any, engineer: Any, threshold: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("id,input\na,One.\na,Two.\nb,Three.\n")
    web = Client()
    web.force_login(engineer)
    with path.open("rb") as handle:
        web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "web big"})
    upload = Upload.objects.get()
    page_url = f"/p/{project.slug}/suites/uploads/{upload.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        web.post(page_url, {"action": "confirm", "pii_action": "redact"})
    page = web.get(page_url).content.decode()
    assert "Not imported." in page and "Nothing was stored" in page
    assert "duplicate id &#x27;a&#x27;" in page
    assert not SuiteVersion.objects.exists()
