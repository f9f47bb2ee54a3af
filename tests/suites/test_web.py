"""The web upload flow: upload → preview with problems and PII → mapping → confirm → suite page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from evalhub.audit.models import AuditEvent
from evalhub.suites.models import Case, SuiteVersion, Upload, UploadStatus
from evalhub.suites.services import suite_import_file, suite_version_lock
from tests.suites.conftest import GOOD, HOSTILE

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(engineer: Any) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def post_file(web: Client, project: Any, path: Path, name: str = "web suite", **extra: Any) -> Any:
    with path.open("rb") as handle:
        return web.post(
            f"/p/{project.slug}/suites/upload/", {"file": handle, "name": name, **extra}, follow=True
        )


def test_upload_preview_and_confirm(web: Client, project: Any, settings: Any) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    response = post_file(web, project, GOOD / "small.csv")
    assert response.status_code == 200
    page = response.content.decode()
    assert "All 4 rows are valid" in page and "First rows as read" in page and "→ input" in page
    assert not SuiteVersion.objects.exists()
    upload = Upload.objects.get()
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/",
        {"action": "confirm", "pii_action": "redact", "data_source": "web test", "consent_statement": "ok"},
        follow=True,
    )
    page = response.content.decode()
    assert "Imported 4 cases as version 1." in page
    assert "Counts" in page and "finance" in page and "heldout" in page
    upload.refresh_from_db()
    assert upload.status == UploadStatus.IMPORTED
    assert not (Path(settings.MEDIA_ROOT) / upload.path).exists()


def test_hostile_file_shows_escaped_problems_and_cannot_be_imported(
    web: Client, project: Any, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    page = post_file(web, project, HOSTILE / "html_script.csv").content.decode()
    assert "2 problems in 2 rows" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page and "<iframe" not in page
    upload = Upload.objects.get()
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "confirm", "pii_action": "redact"}
    )
    assert "nothing was imported" in response.content.decode()
    assert not Case.objects.exists()
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/",
        {"action": "confirm", "pii_action": "redact", "only_valid_rows": "on"},
        follow=True,
    )
    assert "Imported 1 cases as version 1." in response.content.decode()


def test_fatal_file_offers_no_import_and_the_delimiter_can_be_changed(
    web: Client, project: Any, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    page = post_file(web, project, GOOD / "small_semicolon.csv").content.decode()
    assert "This file cannot be imported." in page and "semicolon" in page
    assert 'value="confirm"' not in page
    upload = Upload.objects.get()
    page = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "reread", "delimiter": ";"}, follow=True
    ).content.decode()
    assert "All 3 rows are valid" in page


def test_mapping_form_fixes_a_missing_input_column(
    web: Client, project: Any, tmp_path: Path, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    path = tmp_path / "odd.csv"
    path.write_text("case_no,the text\n1,hello\n2,bye\n")
    page = post_file(web, project, path).content.decode()
    assert "missing required column" in page
    upload = Upload.objects.get()
    mapping = {
        f: ""
        for f in (
            "key",
            "input",
            "reference",
            "tags",
            "slices",
            "origin",
            "generator",
            "split",
            "category",
            "expected",
        )
    }
    mapping.update({"key": "case_no", "input": "the text", "action": "remap"})
    page = web.post(f"/p/{project.slug}/suites/uploads/{upload.pk}/", mapping, follow=True).content.decode()
    assert "All 2 rows are valid" in page


def test_pii_findings_are_shown_and_keep_needs_a_justification(
    web: Client, project: Any, tmp_path: Path
) -> None:
    path = tmp_path / "pii.csv"
    path.write_text(
        "id,input\np1,Write to jane.doe@example.com about <b>the refund</b>.\np2,Revenue rose 4%.\n"
    )
    page = post_file(web, project, path).content.decode()
    assert "Personal data found in 1 row" in page
    assert '<mark title="EMAIL_ADDRESS">jane.doe@example.com</mark>' in page
    assert "&lt;EMAIL_ADDRESS&gt;" in page and "&lt;b&gt;the refund&lt;/b&gt;" in page
    # Each finding with its entity type and score, and no action preselected: the uploader must choose.
    assert re.search(r'EMAIL_ADDRESS <span class="score"[^>]*>[01]\.\d\d</span>', page), page
    assert re.findall(r'<input type="radio" name="pii_action"[^>]*>', page)
    assert not re.findall(r'<input type="radio" name="pii_action"[^>]*checked[^>]*>', page)
    upload = Upload.objects.get()
    page = web.post(f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "confirm"}).content.decode()
    assert "Choose what happens to the personal data found" in page and not SuiteVersion.objects.exists()
    page = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/", {"action": "confirm", "pii_action": "keep"}
    ).content.decode()
    assert "Say why the personal data may be kept." in page
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/",
        {"action": "confirm", "pii_action": "keep", "pii_justification": "Test addresses only."},
        follow=True,
    )
    assert "Imported 2 cases" in response.content.decode()
    assert (
        AuditEvent.objects.get(action="suite_version.pii_decision").after["justification"]
        == "Test addresses only."
    )


def test_suite_page_filters_counts_versions_and_export(
    web: Client, project: Any, tmp_path: Path, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    version = suite_import_file(project=project, name="browse", path=GOOD / "small.csv")
    path = tmp_path / "v2.csv"
    path.write_text((GOOD / "small.csv").read_text().replace("c1,", "c9,"))
    suite_import_file(project=project, name="browse", path=path)
    suite_version_lock(version=version)
    base = f"/p/{project.slug}/suites/{version.suite_id}/"
    page = web.get(base).content.decode()
    assert "+1 added" in page and "1 removed" in page and "locked" in page
    page = web.get(base, {"v": 1, "origin": "synthetic"}).content.decode()
    assert "matching your filters: 1" in page and "c3" in page and "c2</td>" not in page
    page = web.get(base, {"v": 1, "q": "cough"}).content.decode()
    assert "matching your filters: 1" in page
    response = web.get(f"{base}v1/export.csv")
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\xef\xbb\xbfid,")
    assert web.get(f"{base}v1/export.pdf").status_code == 404


def test_raters_and_outsiders_get_404(project: Any, rater: Any, other_project: Any, engineer: Any) -> None:
    client = Client()
    client.force_login(rater)
    assert client.get(f"/p/{project.slug}/suites/").status_code == 404
    assert client.get(f"/p/{project.slug}/suites/upload/").status_code == 404
    client.force_login(engineer)
    assert client.get(f"/p/{other_project.slug}/suites/").status_code == 404
    assert Client().get(f"/p/{project.slug}/suites/").status_code == 302


def test_stale_staged_uploads_are_purged_with_their_files(web: Client, project: Any, settings: Any) -> None:
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command

    settings.EVALHUB_SUITE_PII_SCAN = False
    post_file(web, project, GOOD / "small.csv")
    upload = Upload.objects.get()
    staged_file = Path(settings.MEDIA_ROOT) / upload.path
    assert staged_file.exists()
    Upload.objects.filter(pk=upload.pk).update(created_at=upload.created_at - timedelta(days=2))
    out = StringIO()
    call_command("purge_suite_uploads", "--hours", "24", stdout=out)
    assert "Discarded 1 staged upload(s)." in out.getvalue()
    upload.refresh_from_db()
    assert upload.status == UploadStatus.DISCARDED and not staged_file.exists()


def test_a_file_without_any_valid_row_offers_no_import(web: Client, project: Any, settings: Any) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False
    page = post_file(web, project, HOSTILE / "promptfoo_bad_asserts.yaml").content.decode()
    assert "No row can be imported" in page and "&#x27;contains&#x27; needs a value" in page
    assert 'value="confirm"' not in page and "Columns are separated by" not in page


def test_a_partly_screened_preview_says_so_and_still_offers_the_choice(
    web: Client, project: Any, tmp_path: Path, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PREVIEW_PII_ROWS = 1
    path = tmp_path / "two.csv"
    path.write_text("id,input\na,Revenue rose 4%.\nb,Margins fell.\n")
    page = post_file(web, project, path).content.decode()
    assert "looked for in the first 1 valid row only" in page
    assert 'name="pii_action" value="keep"' in page
