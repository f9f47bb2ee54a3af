"""PII screening at upload: found row by row, then rejected, redacted or kept with a justification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalhub.audit.models import AuditEvent
from evalhub.errors import ValidationFailed
from evalhub.suites.models import Case, PiiDecision, Suite
from evalhub.suites.services import scan_file, suite_import_file

pytestmark = pytest.mark.django_db

PII_CSV = (
    "id,input,reference\n"
    "p1,Email jane.doe@example.com or call 212-555-0187 about the refund.,Customer asked about a refund.\n"
    "p2,The quarterly revenue rose 4%.,Revenue up 4%.\n"
    "p3,John Smith lives at 42 Baker Street.,A customer moved.\n"
)


@pytest.fixture
def pii_file(tmp_path: Path) -> Path:
    path = tmp_path / "pii.csv"
    path.write_text(PII_CSV, encoding="utf-8")
    return path


def test_scan_reports_findings_row_by_row(pii_file: Path) -> None:
    report = scan_file(path=pii_file, preview=True)
    rows = {r["key"]: r for r in report.pii_rows}
    assert set(rows) == {"p1", "p3"}
    assert report.pii_row_count == 2
    p1 = rows["p1"]["fields"][0]
    assert p1["field"] == "input" and {"EMAIL_ADDRESS", "PHONE_NUMBER"} <= set(p1["entities"])
    assert "<EMAIL_ADDRESS>" in p1["redacted"] and "jane.doe@example.com" not in p1["redacted"]
    assert "PERSON" in rows["p3"]["fields"][0]["entities"]


def test_reject_stores_nothing_and_audits_the_rejection(project: Any, pii_file: Path, engineer: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(
            project=project,
            name="pii",
            path=pii_file,
            pii_action="reject",
            actor=engineer,
            data_source="CRM export",
            consent_statement="none recorded",
        )
    assert "personal data found in 2 row(s)" in str(caught.value)
    assert [r["key"] for r in caught.value.fields["pii"]] == ["p1", "p3"]
    assert not Suite.objects.exists() and not Case.objects.exists()
    event = AuditEvent.objects.get(action="suite.upload_rejected_pii")
    assert event.after["data_source"] == "CRM export" and event.project == project


def test_redact_replaces_findings_with_typed_placeholders(project: Any, pii_file: Path) -> None:
    version = suite_import_file(project=project, name="pii", path=pii_file, pii_action="redact")
    p1 = version.cases.get(key="p1").input
    assert "<EMAIL_ADDRESS>" in p1 and "<PHONE_NUMBER>" in p1 and "jane.doe" not in p1
    assert "<PERSON>" in version.cases.get(key="p3").input
    assert version.cases.get(key="p2").input == "The quarterly revenue rose 4%."
    assert version.pii_decision == PiiDecision.REDACTED
    assert version.pii_report["rows_with_pii"] == 2
    assert "jane.doe@example.com" not in str(version.pii_report)  # the report keeps types, not the values
    event = AuditEvent.objects.get(action="suite_version.pii_decision")
    assert event.after["decision"] == "redacted"


def test_keep_needs_a_justification_and_records_it(project: Any, pii_file: Path, lead: Any) -> None:
    with pytest.raises(ValidationFailed, match="justification"):
        suite_import_file(project=project, name="pii", path=pii_file, pii_action="keep")
    version = suite_import_file(
        project=project,
        name="pii",
        path=pii_file,
        pii_action="keep",
        actor=lead,
        pii_justification="Synthetic people; checked by the DPO.",
        consent_statement="n/a: invented data",
    )
    assert "jane.doe@example.com" in version.cases.get(key="p1").input
    assert version.pii_decision == PiiDecision.KEPT
    assert version.pii_justification == "Synthetic people; checked by the DPO."
    event = AuditEvent.objects.get(action="suite_version.pii_decision")
    assert event.after["justification"] == "Synthetic people; checked by the DPO."
    assert event.note == "Synthetic people; checked by the DPO."
    assert event.after["consent_statement"] == "n/a: invented data"
    assert event.actor == lead


def test_a_file_without_pii_records_none_found(project: Any, tmp_path: Path) -> None:
    path = tmp_path / "clean.csv"
    path.write_text("input\nRevenue rose 4% this quarter.\n")
    version = suite_import_file(project=project, name="clean", path=path, pii_action="reject")
    assert version.pii_decision == PiiDecision.NONE_FOUND


def test_confirming_a_staged_upload_reuses_its_findings(
    project: Any, pii_file: Path, monkeypatch: Any
) -> None:
    from evalhub.suites.services import ImportChoices, suite_upload_confirm, suite_upload_stage

    with pii_file.open("rb") as handle:
        upload = suite_upload_stage(project=project, name="pii", file=handle, filename="pii.csv")
    assert upload.report["pii_row_count"] == 2

    def no_second_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the analyzer ran again")

    monkeypatch.setattr("metrics.pii.detect_pii_batch", no_second_scan)
    version = suite_upload_confirm(upload=upload, choices=ImportChoices(pii_action="redact")).version
    assert "<EMAIL_ADDRESS>" in version.cases.get(key="p1").input
    assert version.pii_report["rows_with_pii"] == 2


def test_a_large_preview_screens_the_first_rows_and_import_screens_the_rest(
    project: Any, tmp_path: Path, settings: Any, monkeypatch: Any
) -> None:
    from evalhub.suites.services import ImportChoices, suite_upload_confirm, suite_upload_stage
    from metrics import pii

    settings.EVALHUB_SUITE_PREVIEW_PII_ROWS = 2
    path = tmp_path / "big.csv"
    path.write_text(PII_CSV + "p4,Call Maria Garcia on 212-555-0199 today.,x\n")
    with path.open("rb") as handle:
        upload = suite_upload_stage(project=project, name="big", file=handle, filename="big.csv")
    assert upload.report["pii_partial"] is True and upload.report["pii_screened_rows"] == 2
    assert [r["key"] for r in upload.report["pii_rows"]] == ["p1"]

    screened: list[str] = []
    real = pii.detect_pii_batch

    def counting(texts: Any, **kwargs: Any) -> Any:
        screened.extend(texts)
        return real(texts, **kwargs)

    monkeypatch.setattr(pii, "detect_pii_batch", counting)
    version = suite_upload_confirm(upload=upload, choices=ImportChoices(pii_action="redact")).version
    assert len(screened) == 4  # rows 4 and 5 (input and reference): rows 2 and 3 came from the preview
    assert version.pii_report["rows_with_pii"] == 3
    redacted = version.cases.get(key="p4").input
    assert "<PERSON>" in redacted and "Maria Garcia" not in redacted and "212-555-0199" not in redacted


def test_a_staged_upload_rejected_for_personal_data_is_discarded_with_its_file(
    project: Any, pii_file: Path, settings: Any
) -> None:
    from evalhub.errors import ValidationFailed
    from evalhub.suites.models import UploadStatus
    from evalhub.suites.services import ImportChoices, suite_upload_confirm, suite_upload_stage

    with pii_file.open("rb") as handle:
        upload = suite_upload_stage(project=project, name="pii", file=handle, filename="pii.csv")
    staged = Path(settings.MEDIA_ROOT) / upload.path
    with pytest.raises(ValidationFailed):
        suite_upload_confirm(upload=upload, choices=ImportChoices(pii_action="reject"))
    upload.refresh_from_db()
    assert upload.status == UploadStatus.DISCARDED and not staged.exists()
    assert upload.report["pii_rows"] == [] and upload.report["preview"] == []
