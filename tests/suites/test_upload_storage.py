"""Uploads kept through Django's storage API: with InMemoryStorage as the default storage (standing in
for S3 through django-storages) the web and API flows, the background read and import and the purge
work, and nothing is written under MEDIA_ROOT; a removed or expired upload leaves the storage."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage, default_storage, storages
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from evalhub.errors import ValidationFailed
from evalhub.settings import env_storage
from evalhub.suites.models import Case, SuiteVersion, Upload, UploadStatus
from evalhub.suites.services import (
    ImportChoices,
    suite_upload_confirm,
    suite_upload_purge,
    suite_upload_stage,
)
from evalhub.suites.services.storage import FINDINGS, STAGING, local_copy
from tests.suites.conftest import GOOD, files_under

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_memory(settings: Any, tmp_path: Path) -> Path:
    """InMemoryStorage as the default storage; MEDIA_ROOT and the scratch folder of this test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"
    settings.EVALHUB_SUITE_PII_SCAN = False
    assert isinstance(storages["default"], InMemoryStorage)
    return Path(settings.MEDIA_ROOT)


def stored() -> list[str]:
    """Every file name in the default storage."""

    def walk(folder: str) -> list[str]:
        try:
            folders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            return []
        prefix = f"{folder}/" if folder else ""
        return [f"{prefix}{f}" for f in files] + [n for sub in folders for n in walk(f"{prefix}{sub}")]

    return walk("")


def nothing_left(media: Path) -> None:
    assert stored() == []
    assert files_under(media, media.parent / "scratch") == []
    assert not media.exists()  # nothing was ever written under MEDIA_ROOT


@pytest.fixture
def web(engineer: Any) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def web_upload(web: Client, project: Any, path: Path, name: str = "kept") -> Any:
    with path.open("rb") as handle:
        return web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": name})


def test_web_upload_preview_remap_and_confirm(web: Client, project: Any, in_memory: Path) -> None:
    response = web_upload(web, project, GOOD / "small.csv")
    upload = Upload.objects.get()
    assert response.status_code == 302 and upload.status == UploadStatus.STAGED
    # The staged file is in the storage, and only there.
    assert stored() == [upload.path] and upload.path.startswith(f"{STAGING}/")
    assert default_storage.open(upload.path).read() == (GOOD / "small.csv").read_bytes()
    assert files_under(in_memory, in_memory.parent / "scratch") == [] and not in_memory.exists()
    page = web.get(response["Location"]).content.decode()
    assert "All 4 rows are valid" in page
    # Remapping reads the kept file again (a local copy, removed after).
    mapping = dict.fromkeys(("tags", "slices", "origin", "generator", "split", "category", "expected"), "")
    mapping.update({"key": "id", "input": "input", "reference": "reference", "action": "remap"})
    page = web.post(response["Location"], mapping, follow=True).content.decode()
    assert "Checked the file again with your column mapping." in page and "All 4 rows are valid" in page
    assert stored() == [upload.path] and files_under(in_memory.parent / "scratch") == []
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/",
        {"action": "confirm", "pii_action": "redact", "data_source": "web", "consent_statement": "ok"},
        follow=True,
    )
    assert "Imported 4 cases as version 1." in response.content.decode()
    upload.refresh_from_db()
    assert upload.status == UploadStatus.IMPORTED and upload.version is not None
    assert upload.version.case_count == 4
    nothing_left(in_memory)


def test_web_discard_deletes_the_staged_file_from_the_storage(
    web: Client, project: Any, in_memory: Path
) -> None:
    web_upload(web, project, GOOD / "small.csv")
    upload = Upload.objects.get()
    assert stored() == [upload.path]
    response = web.post(f"/p/{project.slug}/suites/uploads/{upload.pk}/discard/")
    assert response.status_code == 302
    upload.refresh_from_db()
    assert upload.status == UploadStatus.DISCARDED
    nothing_left(in_memory)


def test_a_staged_file_gone_from_the_storage_is_a_clear_conflict(
    web: Client, project: Any, in_memory: Path
) -> None:
    web_upload(web, project, GOOD / "small.csv")
    upload = Upload.objects.get()
    default_storage.delete(upload.path)
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "confirm", "pii_action": "redact"}
    )
    assert response.status_code in (200, 409)
    assert "The staged file is gone; upload it again." in response.content.decode()
    assert not SuiteVersion.objects.exists()


def test_api_upload_imported_at_once_never_touches_the_storage(
    api: APIClient, project: Any, in_memory: Path
) -> None:
    with (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "now", "file": handle},
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    assert response.json()["case_count"] == 4
    nothing_left(in_memory)


def test_api_upload_queued_is_kept_then_imported_by_the_task(
    api: APIClient, project: Any, in_memory: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_BACKGROUND_ROWS = 2
    with django_capture_on_commit_callbacks() as queued, (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "later", "file": handle},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    upload = Upload.objects.get()
    assert upload.status == UploadStatus.PENDING and stored() == [upload.path] and not in_memory.exists()
    for callback in queued:  # the import task, run in process (CELERY_TASK_ALWAYS_EAGER)
        callback()
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "imported" and status["version"]["case_count"] == 4, status
    assert sorted(Case.objects.values_list("key", flat=True)) == sorted(
        SuiteVersion.objects.get().cases.values_list("key", flat=True)
    )
    nothing_left(in_memory)


@pytest.mark.slow  # a sandboxed read
def test_api_dry_run_read_by_a_task_in_the_sandbox(
    api: APIClient, project: Any, in_memory: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_SANDBOX_BYTES = 10  # small.csv is larger: read by a task, in a child process
    with django_capture_on_commit_callbacks(execute=True), (GOOD / "small.csv").open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "check", "file": handle, "dry_run": True},
            format="multipart",
        )
        assert response.status_code == 202 and response.json()["status"] == "reading"
    status = api.get(response.json()["url"]).json()
    assert status["status"] == "checked" and status["report"]["valid_rows"] == 4, status
    nothing_left(in_memory)


@pytest.mark.slow  # two sandboxed reads
def test_web_upload_read_by_a_task_then_queued_import(
    web: Client, project: Any, in_memory: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_SANDBOX_BYTES = 10
    settings.EVALHUB_SUITE_BACKGROUND_ROWS = 2
    with django_capture_on_commit_callbacks(execute=True):
        response = web_upload(web, project, GOOD / "small.csv")
    upload = Upload.objects.get()
    assert upload.status == UploadStatus.STAGED and upload.report["rows_read"] == 4
    assert stored() == [upload.path]
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(
            f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "confirm", "pii_action": "redact"}
        )
    assert response.status_code == 302
    upload.refresh_from_db()
    assert upload.status == UploadStatus.IMPORTED and upload.version.case_count == 4
    nothing_left(in_memory)


def test_an_expired_staged_upload_is_purged_from_the_storage(
    web: Client, project: Any, in_memory: Path
) -> None:
    web_upload(web, project, GOOD / "small.csv", name="expired")
    web_upload(web, project, GOOD / "small.csv", name="fresh")
    expired, fresh = Upload.objects.get(suite_name="expired"), Upload.objects.get(suite_name="fresh")
    Upload.objects.filter(pk=expired.pk).update(created_at=expired.created_at - timedelta(days=2))
    assert sorted(stored()) == sorted([expired.path, fresh.path])
    out = io.StringIO()
    call_command("purge_suite_uploads", "--hours", "24", stdout=out)
    assert "Discarded 1 staged upload(s)." in out.getvalue()
    expired.refresh_from_db()
    fresh.refresh_from_db()
    assert expired.status == UploadStatus.DISCARDED and fresh.status == UploadStatus.STAGED
    assert stored() == [fresh.path]


def test_the_purge_keeps_a_queued_upload_and_removes_orphans(
    api: APIClient, project: Any, in_memory: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVALHUB_SUITE_BACKGROUND_ROWS = 2
    with django_capture_on_commit_callbacks(), (GOOD / "small.csv").open("rb") as handle:
        api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "q", "file": handle},
            format="multipart",
        )
    queued = Upload.objects.get()
    assert queued.status == UploadStatus.PENDING
    default_storage.save(f"{STAGING}/0123abcd/cases.csv", ContentFile(b"id,input\n"))
    default_storage.save(f"{STAGING}/stray.csv", ContentFile(b"id,input\n"))
    suite_upload_purge(older_than=timedelta(0))
    assert stored() == [queued.path]


def test_a_kept_file_is_copied_locally_under_the_size_limit(in_memory: Path, settings: Any) -> None:
    name = default_storage.save(f"{STAGING}/abc/big.csv", ContentFile(b"x" * 5000))
    default_storage.save(f"{STAGING}/abc/{FINDINGS}", ContentFile(b'{"row": 1}\n'))
    with local_copy(name) as local:
        assert local.path.read_bytes() == b"x" * 5000 and local.findings.read_text() == '{"row": 1}\n'
        assert local.path.is_relative_to(in_memory.parent / "scratch")
        copied = local.path.parent
    assert not copied.exists()  # the copy goes once read
    settings.EVALHUB_SUITE_MAX_FILE_BYTES = 4096
    with pytest.raises(ValidationFailed, match="larger than"), local_copy(name):
        pass
    assert files_under(in_memory.parent / "scratch") == []


def test_the_default_storage_is_a_folder_under_media_root(
    project: Any, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"
    settings.EVALHUB_SUITE_PII_SCAN = False
    assert type(storages["default"]) is FileSystemStorage
    upload = suite_upload_stage(
        project=project, name="local", file=io.BytesIO(b"id,input\nc1,x\n"), filename="l.csv"
    )
    assert (tmp_path / "media" / upload.path).read_bytes() == b"id,input\nc1,x\n"
    assert files_under(tmp_path / "scratch") == []  # moved into place, not left behind
    # Read in place: the local copy of a kept file is the file itself.
    with local_copy(upload.path) as local:
        assert local.path == tmp_path / "media" / upload.path


@pytest.mark.slow  # the PII analyzer's load
def test_pii_findings_are_kept_beside_the_file_and_reused_at_import(
    project: Any, in_memory: Path, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = True
    upload = suite_upload_stage(
        project=project,
        name="pii",
        file=io.BytesIO(b"id,input\np1,Email jane.doe@example.com about the refund.\np2,Revenue rose 4%.\n"),
        filename="pii.csv",
    )
    assert upload.report["pii_row_count"] == 1
    findings = f"{upload.path.rsplit('/', 1)[0]}/{FINDINGS}"
    assert sorted(stored()) == sorted([upload.path, findings])

    def no_second_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the analyzer ran again")

    monkeypatch.setattr("metrics.pii.detect_pii_batch", no_second_scan)
    version = suite_upload_confirm(upload=upload, choices=ImportChoices(pii_action="redact")).version
    assert "<EMAIL_ADDRESS>" in version.cases.get(key="p1").input
    nothing_left(in_memory)


def test_storage_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALHUB_STORAGE_BACKEND", raising=False)
    monkeypatch.delenv("EVALHUB_STORAGE_OPTIONS", raising=False)
    assert env_storage() == {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {}}
    monkeypatch.setenv("EVALHUB_STORAGE_BACKEND", "s3")
    monkeypatch.setenv(
        "EVALHUB_STORAGE_OPTIONS", '{"bucket_name": "evalhub", "endpoint_url": "http://minio:9000"}'
    )
    assert env_storage() == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "evalhub", "endpoint_url": "http://minio:9000"},
    }
    monkeypatch.setenv("EVALHUB_STORAGE_OPTIONS", "{bucket_name: evalhub}")
    with pytest.raises(ImproperlyConfigured, match="EVALHUB_STORAGE_OPTIONS is not valid JSON"):
        env_storage()
    monkeypatch.setenv("EVALHUB_STORAGE_OPTIONS", '["evalhub"]')
    with pytest.raises(ImproperlyConfigured, match="must be a JSON object"):
        env_storage()


def test_a_storage_that_cannot_be_set_up_fails_the_system_check(settings: Any) -> None:
    from django.core.checks import run_checks

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.nowhere.S3Storage"}}
    errors = [e for e in run_checks() if e.id == "suites.E001"]
    assert len(errors) == 1 and "No module named 'storages" in errors[0].msg
    assert "django-storages[s3]" in (errors[0].hint or "")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage", "OPTIONS": {"bucket_name": "x"}},
    }
    assert [e.id for e in run_checks() if e.id == "suites.E001"] == [
        "suites.E001"
    ]  # an option it does not take
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    assert [e for e in run_checks() if e.id == "suites.E001"] == []
