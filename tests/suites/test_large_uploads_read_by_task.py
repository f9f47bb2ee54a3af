"""Uploads over the sandbox threshold are read by a task (issue #14): the request answers at once, with
a status page (web) or 202 and a status URL (API); parsing, validation and screening run in the task
under the sandbox's hard limits, and a limit hit is a clear error on that status, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.suites.models import SuiteVersion, Upload, UploadStatus
from tests.data import make_files
from tests.suites.conftest import GOOD, assert_no_internals

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]


@pytest.fixture(autouse=True)
def read_every_upload_in_a_task(settings: Any, tmp_path: Path) -> None:
    settings.EVALHUB_SUITE_SANDBOX_BYTES = 10  # small.csv is larger
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"


@pytest.fixture
def web(engineer: Any) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def test_the_web_request_returns_before_the_file_is_parsed(
    web: Client, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as queued, (GOOD / "small.csv").open("rb") as handle:
        response = web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "big"})
    upload = Upload.objects.get()
    page_url = f"/p/{project.slug}/suites/uploads/{upload.pk}/"
    assert response.status_code == 302 and response["Location"] == page_url
    # The request is over and nothing has read the file: no report, no format sniffed, one task queued.
    assert upload.status == UploadStatus.READING and upload.report == {} and len(queued) == 1
    page = web.get(page_url).content.decode()
    assert "Reading the file" in page and 'http-equiv="refresh"' in page
    assert f'data-status-url="/api/v1/suite-uploads/{upload.pk}/"' in page
    for callback in queued:
        callback()
    upload.refresh_from_db()
    assert upload.status == UploadStatus.STAGED and upload.report["rows_read"] == 4
    page = web.get(page_url).content.decode()
    assert "Reading the file" not in page and 'http-equiv="refresh"' not in page
    assert 'name="action" value="confirm"' in page


def test_a_limit_hit_while_reading_is_a_clear_error_on_the_status_page(
    web: Client, project: Any, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_SCAN_CPU_SECONDS = 1
    path = tmp_path / "scalars.yaml"
    path.write_bytes(make_files.many_yaml_scalars(900_000))
    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as handle:
        response = web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "big"})
    assert response.status_code == 302
    page = web.get(response["Location"]).content.decode()
    assert "Not imported." in page and "needs more than 1 seconds of computing" in page
    upload = Upload.objects.get()
    assert upload.status == UploadStatus.FAILED and not (Path(settings.MEDIA_ROOT) / upload.path).exists()
    assert_no_internals(page)
    assert not SuiteVersion.objects.exists()


def test_an_api_upload_over_the_threshold_answers_202_then_imports(
    api: APIClient, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "big", "file": handle},
            format="multipart",
        )
        assert response.status_code == 202, response.json()
        assert response.json()["status"] == "pending" and response.json()["rows_total"] == 0
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "imported" and status["rows_total"] == status["version"]["case_count"] == 4


def test_an_api_dry_run_over_the_threshold_answers_202_then_its_report(
    api: APIClient, project: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "big", "file": handle, "dry_run": True},
            format="multipart",
        )
        assert response.status_code == 202 and response.json()["status"] == "reading"
        assert response.json()["report"] is None
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "checked" and status["report"]["valid_rows"] == 4
    assert not SuiteVersion.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / Upload.objects.get().path).exists()
