"""Outside the embedded mode a request never screens for PII: Presidio and spaCy load only in workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.suites.models import Upload, UploadStatus
from evalhub.suites.services import screening_in_process, suite_upload_screen
from tests.suites.conftest import GOOD
from tests.suites.test_pii_screening import PII_CSV

pytestmark = pytest.mark.django_db


@pytest.fixture
def pii_file(tmp_path: Path) -> Path:
    path = tmp_path / "pii.csv"
    path.write_text(PII_CSV, encoding="utf-8")
    return path


@pytest.fixture
def with_workers(settings: Any) -> None:
    """Tasks go to a broker, as in production (no worker consumes them in this test)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert not screening_in_process()


def test_staging_leaves_pii_to_a_task_which_fills_in_the_preview(
    with_workers: None, engineer: Any, project: Any, pii_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(engineer)
    with pii_file.open("rb") as handle, django_capture_on_commit_callbacks() as queued:
        page = client.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "pii"}, follow=True)
    assert "Looking for personal data in the first rows" in page.content.decode()
    upload = Upload.objects.get()
    assert upload.report["pii_pending"] and not upload.report["pii_scanned"]
    assert len(queued) == 1  # the screening task, enqueued after the commit
    suite_upload_screen(upload_id=str(upload.pk))  # what the worker runs
    upload.refresh_from_db()
    assert not upload.report["pii_pending"] and upload.report["pii_row_count"] > 0
    suite_upload_screen(upload_id=str(upload.pk))  # a redelivery changes nothing
    assert Upload.objects.get().report == upload.report


def test_an_api_import_that_screens_is_queued_not_run_in_the_request(
    with_workers: None, engineer: Any, project: Any
) -> None:
    client = APIClient()
    client.force_authenticate(engineer)
    with (GOOD / "small.csv").open("rb") as handle:
        response = client.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "q", "file": handle},
            format="multipart",
        )
    assert response.status_code == 202
    assert Upload.objects.get().status == UploadStatus.PENDING


def test_without_screening_a_small_import_still_runs_in_the_request(
    with_workers: None, settings: Any, engineer: Any, project: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    client = APIClient()
    client.force_authenticate(engineer)
    with (GOOD / "small.csv").open("rb") as handle:
        response = client.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "q", "file": handle},
            format="multipart",
        )
    assert response.status_code == 201
