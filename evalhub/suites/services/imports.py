"""Importing a read file as the next version of a suite, all or nothing: the uploader's choices, the
version's hash and diff, the bulk insert and the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from django.db import reset_queries, transaction

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.errors import ValidationFailed
from evalhub.suites.models import Case, PiiDecision, Suite, SuiteVersion
from evalhub.suites.services.pii import PII_ACTIONS, _pii_summary
from evalhub.suites.services.scanning import BATCH, ImportOptions, ScanReport, problems_error, scan_file
from evalhub.suites.services.storage import scratch_folder
from evalhub.suites.validation import (
    CaseData,
)
from evalhub.untrusted import printable, unstorable


@dataclass(frozen=True)
class ImportChoices:
    """What the uploader decided for an import: the PII action (and why personal data may be kept),
    the data's provenance, and whether to import only the valid rows. One object, passed whole
    through every entry point and stored whole on a queued upload."""

    pii_action: str = "redact"
    pii_justification: str = ""
    data_source: str = ""
    consent_statement: str = ""
    only_valid_rows: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportChoices:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Imported:
    """What an import made: the new version, or the latest one when the file matched it exactly
    (`unchanged`: no version was made)."""

    version: SuiteVersion
    unchanged: bool = False


def _check_choices(*, name: str, choices: ImportChoices) -> None:
    pii_action, pii_justification = choices.pii_action, choices.pii_justification
    if not name.strip():
        raise ValidationFailed("A suite needs a name.", fields={"name": ["This field is required."]})
    if len(name) > 200:
        raise ValidationFailed("The suite name is too long.", fields={"name": ["At most 200 characters."]})
    if pii_action not in PII_ACTIONS:
        raise ValidationFailed(
            f"Unknown PII choice {pii_action!r}.",
            fields={"pii_action": [f"One of {', '.join(PII_ACTIONS)}."]},
        )
    for field_name, text in (("name", name), ("pii_justification", pii_justification)):
        if (found := unstorable(text)) is not None:
            raise ValidationFailed(
                f"The {field_name} {found[1]}.", fields={field_name: [f"This {found[1]}."]}
            )
    if pii_action == "keep" and not pii_justification.strip():
        raise ValidationFailed(
            "Keeping personal data needs a justification.",
            fields={"pii_justification": ["Say why the personal data may be kept."]},
        )


def _diff(previous: SuiteVersion | None, hashes: dict[str, str]) -> dict[str, Any]:
    if previous is None:
        return {
            "previous": None,
            "added": sorted(hashes)[:1000],
            "removed": [],
            "changed": [],
            "counts": {"added": len(hashes), "removed": 0, "changed": 0, "unchanged": 0},
        }
    old = dict(
        Case.objects.filter(version=previous).values_list("key", "content_hash").iterator(chunk_size=5000)
    )
    added = sorted(set(hashes) - set(old))
    removed = sorted(set(old) - set(hashes))
    changed = sorted(k for k in set(hashes) & set(old) if hashes[k] != old[k])
    return {
        "previous": previous.number,
        "added": added[:1000],
        "removed": removed[:1000],
        "changed": changed[:1000],
        "counts": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "unchanged": len(set(hashes) & set(old)) - len(changed),
        },
    }


def _version_hash(hashes: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(hashes):
        digest.update(f"{key}\t{hashes[key]}\n".encode())
    return digest.hexdigest()


def suite_import(
    *,
    project: Project,
    name: str,
    path: Path,
    filename: str = "",
    options: ImportOptions | None = None,
    actor: Any = None,
    choices: ImportChoices | None = None,
    description: str = "",
    pii_known: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Imported:
    """Import a file as the next version of the suite `name` (created if new), all or nothing.

    Raises ValidationFailed with the row-level problems (`fields["rows"]`, `.problems`) and stores
    nothing when the file has any problem, unless `only_valid_rows` (file-level problems still
    refuse). With `pii_action="reject"` any PII found refuses the upload; "redact" replaces it with
    typed placeholders; "keep" needs `pii_justification`. The choice, the data source and the
    consent statement are audited. An upload identical to the latest version returns that version,
    marked `unchanged`.
    """
    choices = choices or ImportChoices()
    _check_choices(name=name, choices=choices)
    name = name.strip()
    filename = printable(filename or path.name)
    # Check, then write: the slow pass (parse, validate, PII screen and redact) spools the cases to a
    # scratch file outside any transaction; only the bulk insert holds one, briefly.
    with scratch_folder("spool-") as spool_dir:
        spool = spool_dir / "cases.jsonl"
        try:
            report = scan_file(
                path=path,
                filename=filename,
                options=options,
                spool=spool,
                pii="redact" if choices.pii_action == "redact" else "scan",
                pii_known=pii_known,
                progress=progress,
            )
            _check_report(report, filename=filename, choices=choices)
            return _write_version(
                project=project, name=name, filename=filename, spool=spool, report=report,
                choices=choices, actor=actor, description=description,
            )  # fmt: skip
        except ValidationFailed as error:
            if "pii" in error.fields:
                _audit_pii_rejection(
                    project=project, name=name, filename=filename, choices=choices, actor=actor, error=error
                )
            raise


def _check_report(report: ScanReport, *, filename: str, choices: ImportChoices) -> None:
    """The four refusals: a file-level problem, row problems (unless only the valid rows are
    wanted), nothing valid, and personal data found when the uploader chose to reject it."""
    if report.fatal:
        raise problems_error(f"{filename}: {report.problems[0].problem}", report)
    if report.problem_count and not choices.only_valid_rows:
        raise problems_error(
            f"{filename}: {report.problem_count} problem(s) in {report.problem_rows} row(s); nothing was "
            "imported. Fix them, or choose to import only the valid rows.",
            report,
        )
    if report.valid_rows == 0:
        raise problems_error(f"{filename}: no valid cases to import.", report)
    if report.pii_row_count and choices.pii_action == "reject":
        raise ValidationFailed(
            f"{filename}: personal data found in {report.pii_row_count} row(s) "
            f"({', '.join(sorted(report.pii_entities))}); the upload was rejected as chosen.",
            fields={"pii": _pii_summary(report)["rows"]},
        )


def _write_version(
    *,
    project: Project,
    name: str,
    filename: str,
    spool: Path,
    report: ScanReport,
    choices: ImportChoices,
    actor: Any,
    description: str,
) -> Imported:
    """The write: the next version with the spooled cases, its diff and audit events, in one short
    transaction; nothing when the cases match the latest version's exactly."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    hashes = _spool_hashes(spool)
    content_hash = _version_hash(hashes)
    with transaction.atomic():
        suite, created = Suite.objects.select_for_update().get_or_create(
            project=project, name=name, defaults={"created_by": user, "description": description}
        )
        previous = suite.versions.order_by("-number").first()
        if previous is not None and previous.content_hash == content_hash:
            return Imported(previous, unchanged=True)
        version = SuiteVersion.objects.create(
            suite=suite,
            number=(previous.number + 1) if previous else 1,
            content_hash="",
            source_filename=filename[:300],
            created_by=user,
        )
        _insert_spooled(version=version, spool=spool, hashes=hashes)
        decision = PiiDecision.NONE_FOUND
        if report.pii_row_count:
            decision = PiiDecision.REDACTED if choices.pii_action == "redact" else PiiDecision.KEPT
        version.content_hash = content_hash
        version.source_format = report.format
        version.case_count = len(hashes)
        version.pii_decision = decision
        version.pii_justification = choices.pii_justification.strip() if decision == PiiDecision.KEPT else ""
        version.pii_report = _pii_summary(report)
        version.diff = _diff(previous, hashes)
        version.fidelity = report.fidelity
        version.save()
        _audit_import(
            actor=actor,
            suite=suite,
            version=version,
            report=report,
            created=created,
            only_valid_rows=choices.only_valid_rows,
            pii_action=choices.pii_action,
            pii_justification=choices.pii_justification,
            data_source=choices.data_source,
            consent_statement=choices.consent_statement,
        )
    return Imported(version)


def _audit_pii_rejection(
    *, project: Project, name: str, filename: str, choices: ImportChoices, actor: Any, error: ValidationFailed
) -> None:
    audit_record(
        actor=actor,
        action="suite.upload_rejected_pii",
        project=project,
        object_type="suites.suite",
        object_id=name[:64],
        after={
            "file": filename,
            "rows_with_pii": len(error.fields["pii"]),
            "data_source": choices.data_source,
            "consent_statement": choices.consent_statement,
        },
        note="Rejected at upload because personal data was found.",
    )


def _spool_hashes(spool: Path) -> dict[str, str]:
    """key -> content hash of the spooled cases (the version's hash is made of these)."""
    hashes: dict[str, str] = {}
    with spool.open(encoding="utf-8") as lines:
        for line in lines:
            case = CaseData(**json.loads(line))
            hashes[case.key] = case.content_hash()
    return hashes


def _insert_spooled(*, version: SuiteVersion, spool: Path, hashes: dict[str, str]) -> None:
    """Bulk-insert the spooled cases in batches. Call inside a transaction."""
    batch: list[Case] = []
    with spool.open(encoding="utf-8") as lines:
        for position, line in enumerate(lines):
            data = json.loads(line)
            data.pop("row", None)
            key = data.pop("key")
            batch.append(Case(version=version, key=key, position=position, content_hash=hashes[key], **data))
            if len(batch) >= BATCH:
                Case.objects.bulk_create(batch)
                batch = []
                # With DEBUG on (the embedded default) Django keeps every query's SQL; the inserts
                # of a large file would otherwise stay in memory until the command ends.
                reset_queries()
    if batch:
        Case.objects.bulk_create(batch)


def _audit_import(
    *,
    actor: Any,
    suite: Suite,
    version: SuiteVersion,
    report: ScanReport,
    created: bool,
    only_valid_rows: bool,
    pii_action: str,
    pii_justification: str,
    data_source: str,
    consent_statement: str,
) -> None:
    if created:
        audit_record(actor=actor, action="suite.create", obj=suite, after={"name": suite.name})
    before = {"data_source": suite.data_source, "consent_statement": suite.consent_statement}
    after = {
        "data_source": data_source.strip() or suite.data_source,
        "consent_statement": consent_statement.strip() or suite.consent_statement,
    }
    if after != before:
        suite.data_source = after["data_source"][:300]
        suite.consent_statement = after["consent_statement"]
        suite.save(update_fields=["data_source", "consent_statement"])
    audit_record(
        actor=actor,
        action="suite.provenance",
        obj=suite,
        before=before,
        after=after,
        note=f"Stated with the upload of v{version.number}.",
    )
    audit_record(
        actor=actor,
        action="suite_version.import",
        object_type="suites.suiteversion",
        object_id=version.pk,
        project=suite.project,
        after={
            "suite": suite.name,
            "number": version.number,
            "file": version.source_filename,
            "format": version.source_format,
            "cases": version.case_count,
            "content_hash": version.content_hash,
            "diff": version.diff.get("counts"),
            "fidelity": version.fidelity or None,
            "only_valid_rows": only_valid_rows,
            "skipped_rows": report.problem_rows if only_valid_rows else 0,
        },
    )
    audit_record(
        actor=actor,
        action="suite_version.pii_decision",
        object_type="suites.suiteversion",
        object_id=version.pk,
        project=suite.project,
        after={
            "choice": pii_action,
            "decision": version.pii_decision,
            "justification": version.pii_justification,
            "rows_with_pii": report.pii_row_count,
            "entities": report.pii_entities,
            "data_source": after["data_source"],
            "consent_statement": after["consent_statement"],
        },
        note=pii_justification.strip(),
    )


def suite_import_file(
    *,
    project: Project,
    name: str,
    path: str | Path,
    actor: Any = None,
    pii_action: str = "redact",
    pii_justification: str = "",
    data_source: str = "",
    consent_statement: str = "",
    mapping: dict[str, str] | None = None,
    only_valid_rows: bool = False,
    format: str = "",
    delimiter: str = ",",
    sheet: str = "",
    input_var: str = "",
) -> SuiteVersion:
    """Import a file from disk, the choices spelled out (scripts, the demo, tests): the version made,
    or the latest one if the file matches it. See `suite_import_path`."""
    return suite_import_path(
        project=project,
        name=name,
        path=path,
        actor=actor,
        options=ImportOptions(
            format=format, delimiter=delimiter, sheet=sheet, input_var=input_var, mapping=mapping
        ),
        choices=ImportChoices(
            pii_action=pii_action,
            pii_justification=pii_justification,
            data_source=data_source,
            consent_statement=consent_statement,
            only_valid_rows=only_valid_rows,
        ),
    ).version


def suite_import_path(
    *,
    project: Project,
    name: str,
    path: str | Path,
    options: ImportOptions,
    choices: ImportChoices,
    actor: Any = None,
) -> Imported:
    """Import a file from disk (the CLI), or a folder holding a promptfoo config and its files (packed
    as a bundle, so it is checked like an uploaded one). See `suite_import`."""
    file_path = Path(path)
    if file_path.is_dir():
        return _import_folder(
            project=project, name=name, folder=file_path, options=options, choices=choices, actor=actor
        )
    if not file_path.is_file():
        raise ValidationFailed(f"{file_path.name}: no such file.", fields={"path": ["No such file."]})
    return suite_import(
        project=project,
        name=name,
        path=file_path,
        filename=file_path.name,
        options=options,
        actor=actor,
        choices=choices,
    )


def _import_folder(
    *, project: Project, name: str, folder: Path, options: ImportOptions, choices: ImportChoices, actor: Any
) -> Imported:
    from evalhub.suites.bundles import pack_folder
    from evalhub.suites.parsing import FileProblem

    with scratch_folder("folder-") as scratch:
        try:
            archive = pack_folder(folder, scratch)
        except FileProblem as exc:
            raise ValidationFailed(exc.message, fields={"path": [exc.message]}) from exc
        return suite_import(
            project=project,
            name=name,
            path=archive,
            filename=archive.name,
            options=ImportOptions(**{**options.to_dict(), "format": "bundle"}),
            actor=actor,
            choices=choices,
        )
