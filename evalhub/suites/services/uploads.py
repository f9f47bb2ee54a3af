"""Uploads through the API and the web: import now or queue as a task, the staged flow (preview, map,
confirm, discard), the queued import's task body, and the purge of what was left behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.errors import Conflict, DomainError, ValidationFailed
from evalhub.suites.models import Upload, UploadStatus
from evalhub.suites.services.imports import ImportChoices, Imported, _check_choices, suite_import
from evalhub.suites.services.pii import _pii_enabled, screening_in_process
from evalhub.suites.services.scanning import (
    ImportOptions,
    ScanReport,
    problems_error,
    sandbox_threshold,
    scan_file,
)
from evalhub.suites.services.storage import (
    Received,
    _file_chunks,
    delete_kept,
    is_kept,
    keep,
    local_copy,
    purge_kept,
    purge_scratch,
    receive,
)
from evalhub.suites.validation import (
    Problem,
)
from evalhub.untrusted import HUGE_INT, printable, unstorable


def suite_import_cases(
    *,
    project: Project,
    name: str,
    cases: list[Any],
    actor: Any = None,
    choices: ImportChoices | None = None,
) -> Imported | Upload:
    """Import cases given as JSON objects (the API's JSON body): the same checks as a JSONL file.

    More than `background_rows()` cases are imported by a task: the queued Upload is returned.
    """

    _check_storable(cases)

    def lines() -> Iterator[bytes]:
        # ASCII escapes keep unpaired surrogates encodable; the reader then refuses them by row.
        for case in cases:
            yield json.dumps(case).encode("ascii") + b"\n"

    return _import_or_queue(
        project=project,
        name=name,
        received=receive(lines(), "cases.jsonl"),
        filename="cases.jsonl",
        options=ImportOptions(format="jsonl"),
        actor=actor,
        rows=len(cases),
        choices=choices or ImportChoices(),
    )


def _check_storable(cases: list[Any]) -> None:
    """Refuse values JSON cannot even write (integers of more than 4,300 digits, say) by row and
    field, as the JSONL reader would; what JSON can write is left to the reader's checks."""
    for row, case in enumerate(cases, start=1):
        found = unstorable(case)
        if found is not None and found[1] == HUGE_INT:
            where, reason = found
            column = where.split(".")[0].split("[")[0]
            report = ScanReport(filename="cases.jsonl", problems=[Problem(row, column, f"{where} {reason}")])
            report.problem_count = report.problem_rows = 1
            raise problems_error(f"cases.jsonl: row {row}: {where} {reason}.", report)


def suite_import_upload(
    *,
    project: Project,
    name: str,
    file: IO[bytes] | Any,
    filename: str,
    actor: Any = None,
    options: ImportOptions | None = None,
    choices: ImportChoices | None = None,
) -> Imported | Upload:
    """Import an uploaded file object (the API's multipart upload) in one step, or queue it when large.

    The rows are counted by a pass without PII screening (thousands of rows a second) first; more
    than `background_rows()` are imported by a task and the queued Upload is returned. A file over
    the sandbox threshold is not read here at all: it is queued at once (`reads_in_background`).
    """
    received = receive(_file_chunks(file), filename)
    rows: int | None = None  # unknown: a large file is counted, read and checked by the task
    if not reads_in_background(received.size):
        try:
            rows = scan_file(path=received.path, filename=filename, options=options, pii="off").rows_read
        except BaseException:
            received.remove()
            raise
    return _import_or_queue(
        project=project,
        name=name,
        received=received,
        filename=filename,
        options=options or ImportOptions(),
        actor=actor,
        rows=rows,
        choices=choices or ImportChoices(),
    )


def background_rows() -> int:
    """Imports of more rows than this run as a task (PII screening takes tens of rows a second)."""
    return int(getattr(settings, "EVALHUB_SUITE_BACKGROUND_ROWS", 500))


def reads_in_background(size: int) -> bool:
    """The one rule for reading a file a request uploaded: a file over the sandbox threshold is parsed,
    validated and screened by a task (under the sandbox's hard limits), so the request answers at once
    and a hostile file costs a worker's bounded time, never a web process's."""
    return size > sandbox_threshold()


def _import_now(rows: int | None) -> bool:
    """The one rule for an import asked for by a request: now, or queued as a task. Queued when
    large (or of unknown size: not yet read), and whenever it must screen for PII outside the
    embedded mode (see screening_in_process)."""
    return rows is not None and rows <= background_rows() and screening_in_process()


def _upload_create(
    *,
    project: Project,
    name: str,
    filename: str,
    path: str,
    size: int,
    fmt: str,
    options: ImportOptions,
    actor: Any,
    **extra: Any,
) -> Upload:
    """The Upload row of a file kept in the storage (staged for preview, or queued for import);
    `path` is its storage name."""
    return Upload.objects.create(
        project=project,
        suite_name=name.strip()[:200],
        filename=printable(filename)[:300],
        path=path,
        size=size,
        format=fmt,
        options=options.to_dict(),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **extra,
    )


def _import_or_queue(
    *,
    project: Project,
    name: str,
    received: Received,
    filename: str,
    options: ImportOptions,
    actor: Any,
    rows: int | None,
    choices: ImportChoices,
) -> Imported | Upload:
    """Import the received file now, or keep it in the storage and queue it as an Upload when it
    has more than background_rows() (or `rows` is None: a large file not read in the request).

    Owns the received file: removed after a synchronous import; a queued one's kept copy is removed
    by the task.
    """
    try:
        _check_choices(name=name, choices=choices)
        if _import_now(rows):
            return suite_import(
                project=project,
                name=name,
                path=received.path,
                filename=filename,
                options=options,
                actor=actor,
                choices=choices,
            )
        stored = keep(received)
        try:
            with transaction.atomic():
                upload = _upload_create(
                    project=project, name=name, filename=filename, path=stored, size=received.size,
                    fmt=options.format, options=options, actor=actor,
                )  # fmt: skip
                _queue(upload=upload, actor=actor, rows=rows, choices=choices)
        except BaseException:
            delete_kept(stored)  # no Upload row points at it
            raise
        return upload
    finally:
        received.remove()


def suite_upload_check(
    *,
    project: Project,
    file: IO[bytes] | Any,
    filename: str,
    options: ImportOptions | None = None,
    actor: Any = None,
) -> ScanReport | Upload:
    """Scan an uploaded file and report, storing nothing (the API's dry run).

    A file over the sandbox threshold is read by a task: the Upload returned ends `checked` with the
    report on it (its file removed), or `failed`.
    """
    received = receive(_file_chunks(file), filename)
    if reads_in_background(received.size):
        return _read_later(
            project=project, name="", filename=filename, received=received,
            options=options or ImportOptions(), actor=actor, dry_run=True,
        )  # fmt: skip
    try:
        pii = "scan" if screening_in_process() else "off"  # reported as not scanned
        return scan_file(path=received.path, filename=filename, options=options, preview=True, pii=pii)
    finally:
        received.remove()


def suite_upload_stage(
    *,
    project: Project,
    name: str,
    file: IO[bytes] | Any,
    filename: str,
    actor: Any = None,
    options: ImportOptions | None = None,
) -> Upload:
    """Scan the file and keep it in the storage: the preview, the row problems and the PII found.

    A file over the sandbox threshold is scanned by a task (`suite_upload_read`): the Upload is
    returned `reading` at once, and its page follows the task until the preview is ready.
    """
    if not name.strip():
        raise ValidationFailed("A suite needs a name.", fields={"name": ["This field is required."]})
    received = receive(_file_chunks(file), filename)
    options = options or ImportOptions()
    if reads_in_background(received.size):
        return _read_later(
            project=project, name=name, filename=filename, received=received,
            options=options, actor=actor, dry_run=False,
        )  # fmt: skip
    try:
        report = _preview_scan(
            path=received.path, findings=received.findings, filename=filename, options=options
        )
        stored = keep(received)  # with the PII findings recorded beside it
    finally:
        received.remove()
    try:
        upload = _stage_record(
            project=project, name=name, filename=filename, path=stored, size=received.size,
            options=options, actor=actor, report=report,
        )  # fmt: skip
    except BaseException:
        # No Upload row points at the file, so nothing else would ever remove it.
        delete_kept(stored)
        raise
    return upload


def _stage_record(
    *,
    project: Project,
    name: str,
    filename: str,
    path: str,
    size: int,
    options: ImportOptions,
    actor: Any,
    report: ScanReport,
) -> Upload:
    with transaction.atomic():
        upload = _upload_create(
            project=project, name=name, filename=filename, path=path, size=size,
            fmt=report.format, options=options, actor=actor, report=_report_dict(report),
        )  # fmt: skip
        _queue_screening(upload)
        audit_record(
            actor=actor,
            action="suite_upload.stage",
            obj=upload,
            after={
                "file": filename,
                "suite": upload.suite_name,
                "size": size,
                "problems": report.problem_count,
            },
        )
    return upload


def _read_later(
    *,
    project: Project,
    name: str,
    filename: str,
    received: Received,
    options: ImportOptions,
    actor: Any,
    dry_run: bool,
) -> Upload:
    """Keep a received file in the storage, record it as `reading` and enqueue its read after the
    commit."""
    from evalhub.suites.tasks import read_upload

    size = received.size
    stored = keep(received)
    try:
        with transaction.atomic():
            upload = _upload_create(
                project=project, name=name, filename=filename, path=stored, size=size,
                fmt=options.format, options=options, actor=actor, status=UploadStatus.READING,
                choices={"dry_run": dry_run},
            )  # fmt: skip
            audit_record(
                actor=actor,
                action="suite_upload.read_queued",
                obj=upload,
                after={"file": filename, "suite": upload.suite_name, "size": size, "dry_run": dry_run},
            )
            upload_id = str(upload.pk)
            transaction.on_commit(lambda: read_upload.delay(upload_id=upload_id))
    except BaseException:
        delete_kept(stored)
        raise
    return upload


def suite_upload_read(*, upload_id: str) -> None:
    """Read, validate and screen a large upload's preview (the task's body), under the sandbox's limits.

    The upload becomes `staged` (its preview ready), `checked` (a dry run: the report stays on it, the
    file goes) or `failed` with the reason: a limit hit or an unreadable file is a fatal problem named on
    its status page and in the API, never a timeout. A second delivery finds it no longer `reading`.
    """
    upload = Upload.objects.filter(pk=upload_id, status=UploadStatus.READING).first()
    if upload is None:
        return
    try:
        if not is_kept(upload.path):
            raise Conflict("The uploaded file is gone; upload it again.")
        options = ImportOptions.from_dict(upload.options)
        with local_copy(upload.path, record_findings=True) as local:
            report = _preview_scan(
                path=local.path, findings=local.findings, filename=upload.filename, options=options
            )
        if report.fatal and not upload.choices.get("dry_run"):  # a dry run's answer is its report
            fatal = next((p.problem for p in report.problems if p.fatal), "the file cannot be read")
            raise problems_error(f"{upload.filename}: {fatal}", report)
    except DomainError as error:
        _finish_upload(upload, status=UploadStatus.FAILED, error=error)
        return
    with transaction.atomic():
        locked = Upload.objects.select_for_update().filter(pk=upload_id, status=UploadStatus.READING).first()
        if locked is None:
            return
        locked.format = report.format
        locked.report = _report_dict(report)
        if locked.choices.get("dry_run"):
            locked.report = {**report.to_dict(), "pii_pending": False}
            locked.save(update_fields=["format", "report"])
            _finish_upload(locked, status=UploadStatus.CHECKED, keep_report=True)
            return
        locked.status = UploadStatus.STAGED
        locked.save(update_fields=["format", "report", "status"])
        _queue_screening(locked)


def _preview_pii_rows() -> int:
    """Rows screened for the preview; screening runs at about 40 rows a second, so a large file's
    remaining rows are screened when the upload is confirmed. 200 rows keep the preview request
    around 5 s, well inside a web server's request timeout (gunicorn's default is 30 s; 2,000
    rows took about 50 s)."""
    return int(getattr(settings, "EVALHUB_SUITE_PREVIEW_PII_ROWS", 200))


def _check_staged(upload: Upload) -> None:
    if upload.status != UploadStatus.STAGED:
        raise Conflict(f"This upload was already {upload.get_status_display().lower()}.")
    if not is_kept(upload.path):
        raise Conflict("The staged file is gone; upload it again.")


def suite_upload_remap(*, upload: Upload, options: ImportOptions, actor: Any = None) -> Upload:
    """Scan the staged file again under another mapping (or delimiter, sheet, input variable)."""
    _check_staged(upload)
    with local_copy(upload.path, record_findings=True) as local:
        report = _preview_scan(
            path=local.path, findings=local.findings, filename=upload.filename, options=options
        )
    with transaction.atomic():
        upload.options = options.to_dict()
        upload.format = report.format
        upload.report = _report_dict(report)
        upload.save(update_fields=["options", "format", "report"])
        _queue_screening(upload)
    return upload


def _preview_scan(*, path: Path, findings: Path, filename: str, options: ImportOptions) -> ScanReport:
    """The preview's pass: PII screening of the first rows here, or later by `suite_upload_screen`;
    the spans found are recorded in `findings`, for the import to reuse."""
    return scan_file(
        path=path,
        filename=filename,
        options=options,
        preview=True,
        pii="scan" if screening_in_process() else "off",
        pii_record=findings,
        pii_row_limit=_preview_pii_rows(),
    )


def _report_dict(report: ScanReport) -> dict[str, Any]:
    """The report as stored on a staged upload; `pii_pending` while a task is to screen it."""
    pending = not report.pii_scanned and _pii_enabled() and not report.fatal
    return {**report.to_dict(), "pii_pending": pending}


def _queue_screening(upload: Upload) -> None:
    """Enqueue the preview's PII screening after the commit, if it is pending. Call in a transaction."""
    if upload.report.get("pii_pending"):
        from evalhub.suites.tasks import screen_upload

        upload_id = str(upload.pk)
        transaction.on_commit(lambda: screen_upload.delay(upload_id=upload_id))


def suite_upload_screen(*, upload_id: str) -> None:
    """Screen a staged upload's first rows for PII for its preview (the task's body).

    Runs where the analyzer may load (a worker). A second delivery, or one for an upload no longer
    staged or already screened, does nothing.
    """
    upload = Upload.objects.filter(pk=upload_id, status=UploadStatus.STAGED).first()
    if upload is None or not upload.report.get("pii_pending") or not is_kept(upload.path):
        return
    with local_copy(upload.path, record_findings=True) as local:
        report = scan_file(
            path=local.path,
            filename=upload.filename,
            options=ImportOptions.from_dict(upload.options),
            preview=True,
            pii_record=local.findings,
            pii_row_limit=_preview_pii_rows(),
        )
    with transaction.atomic():
        locked = Upload.objects.select_for_update().filter(pk=upload_id, status=UploadStatus.STAGED).first()
        if locked is not None and locked.report.get("pii_pending") and locked.options == upload.options:
            locked.report = _report_dict(report)
            locked.save(update_fields=["report"])


def _import_kept(
    upload: Upload, *, actor: Any, choices: ImportChoices, progress: Callable[[int], None] | None = None
) -> Imported:
    """Import a kept upload's file with its options and the uploader's choices, reusing the PII
    findings recorded beside it (the web confirm and the queued import both end here)."""
    with local_copy(upload.path) as local:
        return suite_import(
            project=upload.project,
            name=upload.suite_name,
            path=local.path,
            filename=upload.filename,
            options=ImportOptions.from_dict(upload.options),
            actor=actor,
            choices=choices,
            pii_known=local.findings,
            progress=progress,
        )


def suite_upload_confirm(*, upload: Upload, choices: ImportChoices, actor: Any = None) -> Imported:
    """Import a staged upload with the uploader's choices; the staged file is removed on success.

    An upload refused because personal data was found and the uploader chose to reject it is
    discarded at once (its file may hold that data); one refused for row problems stays staged, to
    be remapped or imported with only its valid rows.
    """
    _check_staged(upload)
    try:
        imported = _import_kept(upload, actor=actor, choices=choices)
    except ValidationFailed as error:
        if "pii" in error.fields:
            suite_upload_discard(upload=upload, actor=actor)
        raise
    upload.status = UploadStatus.IMPORTED
    upload.version = imported.version
    upload.report = {**upload.report, "pii_rows": [], "preview": []}  # the staged copy of personal data goes
    upload.save(update_fields=["status", "version", "report"])
    delete_kept(upload.path)
    return imported


def suite_upload_submit(*, upload: Upload, choices: ImportChoices, actor: Any = None) -> Imported | Upload:
    """Confirm a staged upload: import it now (`suite_upload_confirm`), or queue it when it has more
    than `background_rows()` rows; the queued Upload is returned and its status follows the task."""
    _check_staged(upload)
    rows = int(upload.report.get("rows_read", 0))
    if _import_now(rows):
        return suite_upload_confirm(upload=upload, actor=actor, choices=choices)
    _check_choices(name=upload.suite_name, choices=choices)
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        _check_staged(locked)
        _queue(upload=locked, actor=actor, rows=rows, choices=choices)
    upload.refresh_from_db()
    return upload


def _queue(*, upload: Upload, actor: Any, rows: int | None, choices: ImportChoices) -> None:
    """Mark `upload` pending and enqueue its import after the commit. Call inside a transaction."""
    from evalhub.suites.tasks import import_upload

    upload.status = UploadStatus.PENDING
    upload.rows_total = rows or 0
    upload.rows_screened = 0
    upload.error = {}
    upload.choices = {**choices.to_dict(), "actor_id": getattr(actor, "pk", None)}
    upload.save(update_fields=["status", "rows_total", "rows_screened", "error", "choices"])
    audit_record(
        actor=actor,
        action="suite_upload.queue",
        obj=upload,
        after={"file": upload.filename, "suite": upload.suite_name, "rows": rows},
    )
    upload_id = str(upload.pk)
    transaction.on_commit(lambda: import_upload.delay(upload_id=upload_id))


def suite_upload_import(*, upload_id: str) -> Upload:
    """The queued import of an upload (the task's body): screen, import, record the outcome.

    A second delivery finds the upload no longer pending and does nothing; one that finds it still
    screening (the worker died) starts over, which is safe because the import is all or nothing.
    A DomainError (row problems, PII rejected) marks the upload failed with its message and fields.
    """
    from django.contrib.auth import get_user_model

    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload_id)
        if upload.status not in (UploadStatus.PENDING, UploadStatus.SCREENING):
            return upload
        upload.status = UploadStatus.SCREENING
        upload.rows_screened = 0
        upload.save(update_fields=["status", "rows_screened"])
    choices = ImportChoices.from_dict(upload.choices)
    actor_id = upload.choices.get("actor_id")
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None

    def progress(done: int) -> None:
        # rows_total is 0 for a large file queued unread: its count is known only as it is read.
        screened = min(done, upload.rows_total) if upload.rows_total else done
        Upload.objects.filter(pk=upload.pk).update(rows_screened=screened)

    try:
        if not is_kept(upload.path):
            raise Conflict("The staged file is gone; upload it again.")
        imported = _import_kept(upload, actor=actor, choices=choices, progress=progress)
    except DomainError as error:
        _finish_upload(upload, status=UploadStatus.FAILED, error=error)
        return upload
    upload.version = imported.version
    upload.rows_total = upload.rows_total or imported.version.case_count
    _finish_upload(upload, status=UploadStatus.IMPORTED)
    return upload


def suite_upload_fail(*, upload_id: str, message: str) -> None:
    """Mark a queued read or import failed when its task gives up on an unexpected error."""
    upload = Upload.objects.filter(
        pk=upload_id, status__in=[UploadStatus.READING, UploadStatus.PENDING, UploadStatus.SCREENING]
    ).first()
    if upload is not None:
        _finish_upload(upload, status=UploadStatus.FAILED, error=DomainError(message))


def _finish_upload(
    upload: Upload, *, status: str, error: DomainError | None = None, keep_report: bool = False
) -> None:
    upload.status = status
    upload.finished_at = timezone.now()
    if status == UploadStatus.IMPORTED:
        upload.rows_screened = upload.rows_total
    if error is not None:
        upload.error = {"code": error.code, "message": str(error), "fields": error.fields}
    # The staged file and the preview's copy of personal data go either way: a failed import is
    # uploaded again once fixed.
    if not keep_report:  # a dry run's report is its answer
        upload.report = {**upload.report, "pii_rows": [], "preview": []}
    fields = ["status", "finished_at", "rows_total", "rows_screened", "error", "report", "version"]
    upload.save(update_fields=fields)
    delete_kept(upload.path)


def suite_upload_discard(*, upload: Upload, actor: Any = None) -> None:
    if upload.status == UploadStatus.STAGED:
        delete_kept(upload.path)
        upload.status = UploadStatus.DISCARDED
        upload.report = {**upload.report, "pii_rows": [], "preview": []}
        upload.save(update_fields=["status", "report"])
        audit_record(actor=actor, action="suite_upload.discard", obj=upload, after={"file": upload.filename})


def suite_upload_purge(*, older_than: timedelta, actor: Any = None) -> int:
    """Discard staged uploads nobody confirmed (their files may hold personal data), and delete
    kept files older than the cutoff that no live upload points at, and this machine's scratch
    files older than the cutoff (both left by a crash). Returns how many uploads were discarded."""
    cutoff = timezone.now() - older_than
    count = 0
    for upload in Upload.objects.filter(status=UploadStatus.STAGED, created_at__lt=cutoff):
        suite_upload_discard(upload=upload, actor=actor)
        count += 1
    _purge_orphans(before=cutoff)
    return count


def _purge_orphans(*, before: datetime) -> int:
    """Delete kept upload folders older than `before` with no live Upload row, and scratch entries."""
    live = {
        Path(path).parent.name
        for path in Upload.objects.filter(
            status__in=[
                UploadStatus.READING,
                UploadStatus.STAGED,
                UploadStatus.PENDING,
                UploadStatus.SCREENING,
            ]
        ).values_list("path", flat=True)
    }
    return purge_kept(before=before, live=live) + purge_scratch(before=before.timestamp())
