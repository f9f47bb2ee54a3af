"""Writes for suites: staging an upload, importing it as the next version, PII decisions, locking.

Every path (web, API, CLI, demo) goes through `suite_import`: one streaming pass validates the rows,
screens them for PII (redacting if chosen) and spools the valid cases to a scratch file, outside any
transaction; if anything is wrong (unless the uploader chose to import only the valid rows) nothing
is stored. Otherwise one short transaction inserts the spooled cases in batches, makes the next
version with its diff and writes the audit events. PII decisions live here and nowhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import reset_queries, transaction
from django.utils import timezone

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.errors import Conflict, DomainError, ValidationFailed
from evalhub.suites.models import Case, PiiDecision, Suite, SuiteVersion, Upload, UploadStatus
from evalhub.suites.parsing import FileProblem, RawRow, Source, detect_format, limits, open_source
from evalhub.suites.sandbox import LimitExceeded, run_limited, sandbox_available, sandbox_limits
from evalhub.suites.validation import (
    FIELDS,
    CaseData,
    Problem,
    RowStream,
    auto_mapping,
    check_mapping,
)
from evalhub.untrusted import HUGE_INT, display, printable, unstorable

PII_ACTIONS = ("redact", "keep", "reject")
PII_FIELDS = ("input", "reference")
PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 300
PII_ROWS_SHOWN = 200
PII_EXCERPT_CHARS = 1500
BATCH = 500
PROGRESS_ROWS = 100


@dataclass
class ImportOptions:
    """How to read a file: format (guessed from the name when empty), CSV delimiter, XLSX sheet,
    promptfoo input variable, and a field -> column mapping over the automatic one."""

    format: str = ""
    delimiter: str = ","
    sheet: str = ""
    input_var: str = ""
    mapping: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "delimiter": self.delimiter,
            "sheet": self.sheet,
            "input_var": self.input_var,
            "mapping": self.mapping or {},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportOptions:
        return cls(
            format=str(data.get("format") or ""),
            delimiter=str(data.get("delimiter") or ","),
            sheet=str(data.get("sheet") or ""),
            input_var=str(data.get("input_var") or ""),
            mapping=dict(data.get("mapping") or {}) or None,
        )


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


@dataclass
class ScanReport:
    """What a pass over a file found. JSON-ready through `to_dict()` (stored on staged uploads)."""

    filename: str = ""
    format: str = ""
    encoding: str = ""
    columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    valid_rows: int = 0
    problem_count: int = 0
    problem_rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    pii_rows: list[dict[str, Any]] = field(default_factory=list)
    pii_row_count: int = 0
    pii_entities: dict[str, int] = field(default_factory=dict)
    pii_seconds: float = 0.0
    pii_scanned: bool = True
    pii_screened_rows: int = 0
    pii_partial: bool = False  # only the first rows were screened (the preview of a large file)
    pii_through: int = 0  # the last row screened
    seconds: float = 0.0
    peak_memory_bytes: int = 0  # what a sandboxed read used above the forked process (0: in process)
    cpu_seconds: float = 0.0

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": printable(self.filename),
            "format": self.format,
            "encoding": self.encoding,
            "columns": [printable(c) for c in self.columns],
            "mapping": {f: printable(c) for f, c in self.mapping.items()},
            "preview": self.preview,
            "rows_read": self.rows_read,
            "valid_rows": self.valid_rows,
            "problem_count": self.problem_count,
            "problem_rows": self.problem_rows,
            "fatal": self.fatal,
            "problems": [p.to_dict() for p in self.problems],
            "pii_rows": self.pii_rows,
            "pii_row_count": self.pii_row_count,
            "pii_entities": self.pii_entities,
            "pii_seconds": round(self.pii_seconds, 3),
            "pii_scanned": self.pii_scanned,
            "pii_screened_rows": self.pii_screened_rows,
            "pii_partial": self.pii_partial,
            "seconds": round(self.seconds, 3),
        }


def problems_error(message: str, report: ScanReport) -> ValidationFailed:
    """The ValidationFailed every interface shows: row-level problems under fields["rows"]."""
    error = ValidationFailed(
        printable(message),
        fields={
            "rows": [p.to_dict() for p in report.problems],
            "problem_count": report.problem_count,
            "rows_with_problems": report.problem_rows,
        },
    )
    error.problems = list(report.problems)  # type: ignore[attr-defined]
    error.report = report  # type: ignore[attr-defined]
    return error


# --- PII ---------------------------------------------------------------------------------------------


def _pii_enabled() -> bool:
    return bool(getattr(settings, "EVALHUB_SUITE_PII_SCAN", True))


def screening_in_process() -> bool:
    """Whether a request may screen for PII itself: only where tasks run in process (the embedded
    mode) or screening is off. Elsewhere Presidio and spaCy (about 490 MB) load only in workers, so
    previews are screened by a task and imports that screen are queued."""
    return bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)) or not _pii_enabled()


@dataclass
class KnownFindings:
    """PII spans saved by an earlier screening of the same staged file: rows up to `through`."""

    through: int = 0
    spans: dict[tuple[int, str], list[tuple[str, int, int, float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> KnownFindings:
        known = cls()
        with path.open(encoding="utf-8") as saved:
            for line in saved:
                item = json.loads(line)
                if "through" in item:
                    known.through = int(item["through"])
                else:
                    known.spans[(item["row"], item["field"])] = [
                        (str(t), int(a), int(b), float(sc)) for t, a, b, sc in item["spans"]
                    ]
        return known


def _pii_screen(
    cases: list[CaseData],
    report: ScanReport,
    *,
    redact: bool,
    known: KnownFindings | None = None,
    record: IO[str] | None = None,
) -> None:
    """Find PII in each case's input and reference; record it on the report; redact in place if asked.

    `known` holds the findings of an earlier scan of the same staged file under the same options
    (row, field) -> spans, so confirming an upload does not run the analyzer twice; `record`
    receives this scan's spans (types and offsets only, never the text) for that purpose.
    """
    from metrics.pii import PiiFinding, detect_pii_batch, redact_pii, resolve_overlaps

    texts: list[str] = []
    where: list[tuple[int, str]] = []
    for i, case in enumerate(cases):
        for name in PII_FIELDS:
            value = getattr(case, name)
            if value.strip():
                texts.append(value)
                where.append((i, name))
    if not texts:
        return
    started = time.perf_counter()
    results: list[list[Any]] = [[] for _ in texts]
    fresh = [j for j, (i, _) in enumerate(where) if known is None or cases[i].row > known.through]
    for j, ((i, name), text) in enumerate(zip(where, texts, strict=True)):
        if known is not None and cases[i].row <= known.through:
            results[j] = [
                PiiFinding(t, a, b, text[a:b], sc)
                for t, a, b, sc in known.spans.get((cases[i].row, name), [])
            ]
    if fresh:
        for j, found in zip(fresh, detect_pii_batch([texts[j] for j in fresh], batch_size=64), strict=True):
            results[j] = found
    report.pii_seconds += time.perf_counter() - started
    by_case: dict[int, list[dict[str, Any]]] = {}
    for (i, name), text, found in zip(where, texts, results, strict=True):
        if not found:
            continue
        kept = resolve_overlaps(found)
        if record is not None:
            spans = [[f.entity_type, f.start, f.end, f.score] for f in kept]
            record.write(json.dumps({"row": cases[i].row, "field": name, "spans": spans}) + "\n")
        for f in kept:
            report.pii_entities[f.entity_type] = report.pii_entities.get(f.entity_type, 0) + 1
        by_case.setdefault(i, []).append(
            {
                "field": name,
                "entities": sorted({f.entity_type for f in kept}),
                "findings": [
                    {
                        "entity_type": f.entity_type,
                        "start": f.start,
                        "end": f.end,
                        "text": f.text,
                        "score": round(f.score, 2),
                    }
                    for f in kept
                ],
                "excerpt": text[:PII_EXCERPT_CHARS],
                "redacted": redact_pii(
                    text[:PII_EXCERPT_CHARS], [f for f in kept if f.end <= PII_EXCERPT_CHARS]
                ),
                "truncated": len(text) > PII_EXCERPT_CHARS,
            }
        )
        if redact:
            setattr(cases[i], name, redact_pii(text, kept))
    for i, fields_found in by_case.items():
        report.pii_row_count += 1
        if len(report.pii_rows) < PII_ROWS_SHOWN:
            report.pii_rows.append({"row": cases[i].row, "key": cases[i].key, "fields": fields_found})


def _pii_summary(report: ScanReport) -> dict[str, Any]:
    """What is kept on the version: counts and where, never the found text itself."""
    return {
        "rows_with_pii": report.pii_row_count,
        "entities": report.pii_entities,
        "rows": [
            {
                "row": r["row"],
                "key": r["key"],
                "fields": {f["field"]: f["entities"] for f in r["fields"]},
            }
            for r in report.pii_rows
        ],
        "seconds": round(report.pii_seconds, 3),
        "scanned": report.pii_scanned,
    }


# --- one pass over a file ----------------------------------------------------------------------------


def _preview_row(raw: RawRow) -> dict[str, Any]:
    """The first cells of a row as text safe to store and render, whatever the file held."""
    out = {}
    for name, value in list(raw.values.items())[:50]:
        text = "" if value is None else display(value)
        out[printable(str(name))] = (
            text if len(text) <= PREVIEW_CELL_CHARS else text[:PREVIEW_CELL_CHARS] + "…"
        )
    return out


def _peek_columns(source: Source, sample: int = 50) -> tuple[list[str], Iterator[RawRow]]:
    """JSONL and promptfoo have no header: their columns are the keys of the first records."""
    head = list(islice(source.rows, sample))
    columns: list[str] = []
    for raw in head:
        for key in raw.values:
            if key not in columns:
                columns.append(str(key))
    return columns, chain(head, source.rows)


def scan_file(
    *,
    path: Path,
    filename: str = "",
    options: ImportOptions | None = None,
    spool: Path | None = None,
    pii: str = "scan",
    preview: bool = False,
    pii_record: Path | None = None,
    pii_known: Path | None = None,
    pii_row_limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Read, validate and PII-screen a file; the valid cases go to `spool` (JSON lines) if given.

    Two passes: `read_file` parses and validates (for a file over EVALHUB_SUITE_SANDBOX_BYTES, in
    a fresh process under hard memory and CPU limits, see `sandbox.py`: a limit hit is a fatal
    problem on the report), then the valid cases are screened for PII here, in the calling process.
    `pii` is "scan" (report only), "redact" (replace findings with typed placeholders before the
    spool gets them) or "off". File-level problems are returned on the report, never raised.
    `pii_record` saves the findings' spans; `pii_known` reuses spans saved by an earlier scan of the
    same file under the same options instead of running the analyzer again. `pii_row_limit` screens
    only the first rows (a large file's preview); the rest is screened on import. `progress` is called
    with the number of rows screened so far, every PROGRESS_ROWS rows.
    """
    screening = pii != "off" and _pii_enabled()
    with tempfile.TemporaryDirectory(dir=_staging_dir(), prefix="scan-") as scratch:
        read_to = Path(scratch) / "read.jsonl" if screening else spool
        report = _read(
            path=path, filename=filename, options=options or ImportOptions(), spool=read_to, preview=preview
        )
        report.pii_scanned = screening
        if screening and read_to is not None and read_to.is_file():
            known = KnownFindings.load(pii_known) if pii_known is not None and pii_known.is_file() else None
            with contextlib.ExitStack() as files:
                record = (
                    files.enter_context(pii_record.open("w", encoding="utf-8"))
                    if pii_record is not None and known is None
                    else None
                )
                out = files.enter_context(spool.open("w", encoding="utf-8")) if spool is not None else None
                _screen_spool(
                    read_to, report, redact=pii == "redact", known=known, record=record, out=out,
                    row_limit=pii_row_limit, progress=progress,
                )  # fmt: skip
    return report


def _read(
    *, path: Path, filename: str, options: ImportOptions, spool: Path | None, preview: bool
) -> ScanReport:
    """`read_file` here for a small file, else in the sandbox."""
    threshold = int(getattr(settings, "EVALHUB_SUITE_SANDBOX_BYTES", 256 * 1024))
    kwargs = {
        "path": path.resolve(),
        "filename": filename,
        "options": options,
        "spool": spool.resolve() if spool is not None else None,
        "preview": preview,
    }
    if not sandbox_available() or path.stat().st_size <= threshold:
        return read_file(**kwargs)  # type: ignore[arg-type]
    try:
        outcome = run_limited(f"{__name__}.read_file", kwargs, limits=sandbox_limits())
    except LimitExceeded as exc:
        report = ScanReport(filename=filename or path.name)
        report.problems = [Problem(None, "", str(exc), fatal=True)]
        report.problem_count = 1
        return report
    report = outcome.value
    report.peak_memory_bytes = outcome.peak_extra_bytes
    report.cpu_seconds = outcome.cpu_seconds
    return report


def read_file(
    *, path: Path, filename: str, options: ImportOptions, spool: Path | None, preview: bool
) -> ScanReport:
    """Parse and validate a file in one streaming pass, writing the valid cases to `spool` (with
    their row). No PII screening and no database: this is what runs in the sandbox."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(spool.open("w", encoding="utf-8")) if spool is not None else None

        def sink(cases: list[CaseData]) -> None:
            if out is not None:
                for case in cases:
                    line = {"row": case.row, "key": case.key, **case.content()}
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")

        return _scan(path=path, filename=filename, options=options, sink=sink, preview=preview)


def _scan(
    *,
    path: Path,
    filename: str,
    options: ImportOptions,
    sink: Callable[[list[CaseData]], None],
    preview: bool,
) -> ScanReport:
    lim = limits()
    started = time.perf_counter()
    report = ScanReport(filename=filename or path.name)
    stream = RowStream(mapping={}, lim=lim)
    try:
        source = open_source(
            path,
            format=options.format,
            filename=filename,
            delimiter=options.delimiter,
            sheet=options.sheet,
            input_var=options.input_var,
        )
    except FileProblem as exc:
        stream.add(Problem(exc.row, exc.column, exc.message, fatal=True))
        try:
            report.format = options.format or detect_format(filename or path.name)
        except FileProblem:
            report.format = ""
        return _finish(report, stream, started)
    report.format = source.format
    try:
        rows: Iterator[RawRow] = source.rows
        if source.format in ("jsonl", "promptfoo"):
            try:
                columns, rows = _peek_columns(source)
            except FileProblem as exc:
                stream.add(Problem(exc.row, exc.column, exc.message, fatal=True))
                return _finish(report, stream, started)
        else:
            columns = source.columns
        report.columns = columns
        report.encoding = source.encoding
        report.mapping = _mapping(columns, options, source.format)
        for problem in check_mapping(
            {**(options.mapping or {}), **report.mapping} if source.format != "promptfoo" else report.mapping,
            columns if (columns or source.format in ("csv", "xlsx")) else None,
        ):
            stream.add(problem)
        if stream.fatal:
            return _finish(report, stream, started)
        stream.mapping = report.mapping

        def previewing(raws: Iterator[RawRow]) -> Iterator[RawRow]:
            for raw in raws:
                if preview and len(report.preview) < PREVIEW_ROWS:
                    report.preview.append({"row": raw.row, "values": _preview_row(raw)})
                yield raw

        batch: list[CaseData] = []
        for case in stream.cases(previewing(rows)):
            batch.append(case)
            if len(batch) >= BATCH:
                sink(batch)
                batch = []
        if batch and not stream.fatal:
            sink(batch)
    finally:
        source.close()
    return _finish(report, stream, started)


def _mapping(columns: list[str], options: ImportOptions, fmt: str) -> dict[str, str]:
    """field -> column: the automatic mapping, overridden by the uploader's (not for promptfoo)."""
    mapping = auto_mapping(columns)
    if options.mapping and fmt != "promptfoo":
        for fld, column in options.mapping.items():
            if column:
                mapping[fld] = column
            else:
                mapping.pop(fld, None)
    return {f: mapping[f] for f in FIELDS if f in mapping}


def _spooled(spool: Path) -> Iterator[list[CaseData]]:
    """The spooled cases in batches of BATCH."""
    batch: list[CaseData] = []
    with spool.open(encoding="utf-8") as lines:
        for line in lines:
            batch.append(CaseData(**json.loads(line)))
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _screen_spool(
    spool: Path,
    report: ScanReport,
    *,
    redact: bool,
    known: KnownFindings | None,
    record: IO[str] | None,
    out: IO[str] | None,
    row_limit: int | None,
    progress: Callable[[int], None] | None,
) -> None:
    """Screen the spooled cases for PII (the first `row_limit` only, if given), redacting them if
    asked, and copy them to `out`."""
    for batch in _spooled(spool):
        screen = batch
        if row_limit is not None:
            screen = batch[: max(row_limit - report.pii_screened_rows, 0)]
            report.pii_partial = report.pii_partial or len(screen) < len(batch)
        # Smaller pieces than the write batch only so that progress moves every few seconds.
        step = PROGRESS_ROWS if progress is not None else max(len(screen), 1)
        for start in range(0, len(screen), step):
            piece = screen[start : start + step]
            _pii_screen(piece, report, redact=redact, known=known, record=record)
            report.pii_screened_rows += len(piece)
            report.pii_through = piece[-1].row
            if progress is not None:
                progress(report.pii_screened_rows)
        if out is not None:
            for case in batch:
                out.write(
                    json.dumps({"row": case.row, "key": case.key, **case.content()}, ensure_ascii=False)
                    + "\n"
                )
    if record is not None:
        record.write(json.dumps({"through": report.pii_through}) + "\n")


def _finish(report: ScanReport, stream: RowStream, started: float) -> ScanReport:
    report.problems = sorted(stream.problems, key=lambda p: (not p.fatal, p.row or 0))
    report.problem_count = stream.problem_count
    report.problem_rows = len(stream.problem_rows)
    report.rows_read = stream.rows_read
    report.valid_rows = stream.valid_rows
    report.seconds = time.perf_counter() - started
    return report


# --- importing ----------------------------------------------------------------------------------------


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
    pii_action, pii_justification = choices.pii_action, choices.pii_justification
    data_source, consent_statement = choices.data_source, choices.consent_statement
    only_valid_rows = choices.only_valid_rows
    name = name.strip()
    user = actor if getattr(actor, "is_authenticated", False) else None
    filename = printable(filename or path.name)
    # Check, then write: the slow pass (parse, validate, PII screen and redact) spools the cases to a
    # scratch file outside any transaction; only the bulk insert holds one, briefly.
    spool_dir = _staging_dir() / f"spool-{uuid.uuid4().hex}"
    spool_dir.mkdir()
    spool = spool_dir / "cases.jsonl"
    try:
        report = scan_file(
            path=path,
            filename=filename,
            options=options,
            spool=spool,
            pii="redact" if pii_action == "redact" else "scan",
            pii_known=pii_known,
            progress=progress,
        )
        if report.fatal:
            raise problems_error(f"{filename}: {report.problems[0].problem}", report)
        if report.problem_count and not only_valid_rows:
            raise problems_error(
                f"{filename}: {report.problem_count} problem(s) in {report.problem_rows} row(s); nothing was "
                "imported. Fix them, or choose to import only the valid rows.",
                report,
            )
        if report.valid_rows == 0:
            raise problems_error(f"{filename}: no valid cases to import.", report)
        if report.pii_row_count and pii_action == "reject":
            raise ValidationFailed(
                f"{filename}: personal data found in {report.pii_row_count} row(s) "
                f"({', '.join(sorted(report.pii_entities))}); the upload was rejected as chosen.",
                fields={"pii": _pii_summary(report)["rows"]},
            )
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
                decision = PiiDecision.REDACTED if pii_action == "redact" else PiiDecision.KEPT
            version.content_hash = content_hash
            version.source_format = report.format
            version.case_count = len(hashes)
            version.pii_decision = decision
            version.pii_justification = pii_justification.strip() if decision == PiiDecision.KEPT else ""
            version.pii_report = _pii_summary(report)
            version.diff = _diff(previous, hashes)
            version.save()
            _audit_import(
                actor=actor,
                suite=suite,
                version=version,
                report=report,
                created=created,
                only_valid_rows=only_valid_rows,
                pii_action=pii_action,
                pii_justification=pii_justification,
                data_source=data_source,
                consent_statement=consent_statement,
            )
    except ValidationFailed as error:
        if "pii" in error.fields:
            audit_record(
                actor=actor,
                action="suite.upload_rejected_pii",
                project=project,
                object_type="suites.suite",
                object_id=name[:64],
                after={
                    "file": filename,
                    "rows_with_pii": len(error.fields["pii"]),
                    "data_source": data_source,
                    "consent_statement": consent_statement,
                },
                note="Rejected at upload because personal data was found.",
            )
        raise
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    return Imported(version)


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
    """Import a file from disk (the CLI). See `suite_import`."""
    file_path = Path(path)
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


def _staging_dir() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "suite_uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _store(chunks: Iterator[bytes], filename: str) -> tuple[Path, int]:
    """Copy an upload to the staging folder, refusing past the size limit without reading further."""
    lim = limits()
    folder = _staging_dir() / uuid.uuid4().hex
    folder.mkdir()
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name)[-100:] or "upload"
    target = folder / safe
    try:
        _copy(chunks, target, lim.max_file_bytes, filename)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target, target.stat().st_size


def _copy(chunks: Iterator[bytes], target: Path, max_bytes: int, filename: str) -> None:
    size = 0
    with target.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise ValidationFailed(
                    f"{printable(filename)}: the file is larger than {max_bytes / 1e6:,.0f} MB (the limit).",
                    fields={
                        "rows": [
                            Problem(None, "", f"file larger than {max_bytes:,} bytes", fatal=True).to_dict()
                        ]
                    },
                )
            out.write(chunk)


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

    path, size = _store(lines(), "cases.jsonl")
    return _import_or_queue(
        project=project,
        name=name,
        path=path,
        size=size,
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
    than `background_rows()` are imported by a task and the queued Upload is returned.
    """
    chunks = _file_chunks(file)
    path, size = _store(chunks, filename)
    try:
        rows = scan_file(path=path, filename=filename, options=options, pii="off").rows_read
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return _import_or_queue(
        project=project,
        name=name,
        path=path,
        size=size,
        filename=filename,
        options=options or ImportOptions(),
        actor=actor,
        rows=rows,
        choices=choices or ImportChoices(),
    )


def background_rows() -> int:
    """Imports of more rows than this run as a task (PII screening takes tens of rows a second)."""
    return int(getattr(settings, "EVALHUB_SUITE_BACKGROUND_ROWS", 500))


def _import_now(rows: int) -> bool:
    """The one rule for an import asked for by a request: now, or queued as a task. Queued when
    large, and whenever it must screen for PII outside the embedded mode (see screening_in_process)."""
    return rows <= background_rows() and screening_in_process()


def _file_chunks(file: IO[bytes] | Any) -> Iterator[bytes]:
    """A Django upload's chunks, or 1 MiB reads of a plain binary file."""
    return file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")


def _upload_create(
    *,
    project: Project,
    name: str,
    filename: str,
    path: Path,
    size: int,
    fmt: str,
    options: ImportOptions,
    actor: Any,
    **extra: Any,
) -> Upload:
    """The Upload row of a file stored under MEDIA_ROOT (staged for preview, or queued for import)."""
    return Upload.objects.create(
        project=project,
        suite_name=name.strip()[:200],
        filename=printable(filename)[:300],
        path=str(path.relative_to(Path(settings.MEDIA_ROOT))),
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
    path: Path,
    size: int,
    filename: str,
    options: ImportOptions,
    actor: Any,
    rows: int,
    choices: ImportChoices,
) -> Imported | Upload:
    """Import the stored file now, or queue it as an Upload when it has more than background_rows().

    Owns the stored file's folder: removed after a synchronous import, by the task after a queued one.
    """
    queued = False
    try:
        _check_choices(name=name, choices=choices)
        if _import_now(rows):
            return suite_import(
                project=project,
                name=name,
                path=path,
                filename=filename,
                options=options,
                actor=actor,
                choices=choices,
            )
        with transaction.atomic():
            upload = _upload_create(
                project=project, name=name, filename=filename, path=path, size=size,
                fmt=options.format, options=options, actor=actor,
            )  # fmt: skip
            _queue(upload=upload, actor=actor, rows=rows, choices=choices)
        queued = True
        return upload
    finally:
        if not queued:
            shutil.rmtree(path.parent, ignore_errors=True)


def suite_upload_check(
    *, file: IO[bytes] | Any, filename: str, options: ImportOptions | None = None
) -> ScanReport:
    """Scan an uploaded file and report, storing nothing (the API's dry run)."""
    chunks = _file_chunks(file)
    path, _ = _store(chunks, filename)
    try:
        pii = "scan" if screening_in_process() else "off"  # reported as not scanned
        return scan_file(path=path, filename=filename, options=options, preview=True, pii=pii)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


# --- staged uploads (the web flow: preview, map, confirm) -------------------------------------------


def suite_upload_stage(
    *,
    project: Project,
    name: str,
    file: IO[bytes] | Any,
    filename: str,
    actor: Any = None,
    options: ImportOptions | None = None,
) -> Upload:
    """Store the file under MEDIA_ROOT and scan it: the preview, the row problems and the PII found."""
    if not name.strip():
        raise ValidationFailed("A suite needs a name.", fields={"name": ["This field is required."]})
    chunks = _file_chunks(file)
    path, size = _store(chunks, filename)
    options = options or ImportOptions()
    try:
        report = _preview_scan(path=path, filename=filename, options=options)
        upload = _stage_record(
            project=project, name=name, filename=filename, path=path, size=size,
            options=options, actor=actor, report=report,
        )  # fmt: skip
    except BaseException:
        # No Upload row points at the file, so nothing else would ever remove it.
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return upload


def _stage_record(
    *,
    project: Project,
    name: str,
    filename: str,
    path: Path,
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


def _preview_pii_rows() -> int:
    """Rows screened for the preview; screening runs at about 40 rows a second, so a large file's
    remaining rows are screened when the upload is confirmed. 200 rows keep the preview request
    around 5 s, well inside a web server's request timeout (gunicorn's default is 30 s; 2,000
    rows took about 50 s)."""
    return int(getattr(settings, "EVALHUB_SUITE_PREVIEW_PII_ROWS", 200))


def _findings_path(staged: Path) -> Path:
    """The PII spans found when the upload was staged, beside the staged file."""
    return staged.parent / "pii#findings.jsonl"  # "#" never appears in a stored upload's name


def _upload_path(upload: Upload) -> Path:
    return Path(settings.MEDIA_ROOT) / upload.path


def _check_staged(upload: Upload) -> None:
    if upload.status != UploadStatus.STAGED:
        raise Conflict(f"This upload was already {upload.get_status_display().lower()}.")
    if not _upload_path(upload).is_file():
        raise Conflict("The staged file is gone; upload it again.")


def suite_upload_remap(*, upload: Upload, options: ImportOptions, actor: Any = None) -> Upload:
    """Scan the staged file again under another mapping (or delimiter, sheet, input variable)."""
    _check_staged(upload)
    path = _upload_path(upload)
    report = _preview_scan(path=path, filename=upload.filename, options=options)
    with transaction.atomic():
        upload.options = options.to_dict()
        upload.format = report.format
        upload.report = _report_dict(report)
        upload.save(update_fields=["options", "format", "report"])
        _queue_screening(upload)
    return upload


def _preview_scan(*, path: Path, filename: str, options: ImportOptions) -> ScanReport:
    """The preview's pass: PII screening of the first rows here, or later by `suite_upload_screen`."""
    return scan_file(
        path=path,
        filename=filename,
        options=options,
        preview=True,
        pii="scan" if screening_in_process() else "off",
        pii_record=_findings_path(path),
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
    if upload is None or not upload.report.get("pii_pending") or not _upload_path(upload).is_file():
        return
    path = _upload_path(upload)
    report = scan_file(
        path=path,
        filename=upload.filename,
        options=ImportOptions.from_dict(upload.options),
        preview=True,
        pii_record=_findings_path(path),
        pii_row_limit=_preview_pii_rows(),
    )
    with transaction.atomic():
        locked = Upload.objects.select_for_update().filter(pk=upload_id, status=UploadStatus.STAGED).first()
        if locked is not None and locked.report.get("pii_pending") and locked.options == upload.options:
            locked.report = _report_dict(report)
            locked.save(update_fields=["report"])


def suite_upload_confirm(*, upload: Upload, choices: ImportChoices, actor: Any = None) -> Imported:
    """Import a staged upload with the uploader's choices; the staged file is removed on success.

    An upload refused because personal data was found and the uploader chose to reject it is
    discarded at once (its file may hold that data); one refused for row problems stays staged, to
    be remapped or imported with only its valid rows.
    """
    _check_staged(upload)
    try:
        imported = suite_import(
            project=upload.project,
            name=upload.suite_name,
            path=_upload_path(upload),
            filename=upload.filename,
            options=ImportOptions.from_dict(upload.options),
            actor=actor,
            choices=choices,
            pii_known=_findings_path(_upload_path(upload)),
        )
    except ValidationFailed as error:
        if "pii" in error.fields:
            suite_upload_discard(upload=upload, actor=actor)
        raise
    upload.status = UploadStatus.IMPORTED
    upload.version = imported.version
    upload.report = {**upload.report, "pii_rows": [], "preview": []}  # the staged copy of personal data goes
    upload.save(update_fields=["status", "version", "report"])
    shutil.rmtree(_upload_path(upload).parent, ignore_errors=True)
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


def _queue(*, upload: Upload, actor: Any, rows: int, choices: ImportChoices) -> None:
    """Mark `upload` pending and enqueue its import after the commit. Call inside a transaction."""
    from evalhub.suites.tasks import import_upload

    upload.status = UploadStatus.PENDING
    upload.rows_total = rows
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
    path = _upload_path(upload)

    def progress(done: int) -> None:
        Upload.objects.filter(pk=upload.pk).update(rows_screened=min(done, upload.rows_total))

    try:
        if not path.is_file():
            raise Conflict("The staged file is gone; upload it again.")
        imported = suite_import(
            project=upload.project,
            name=upload.suite_name,
            path=path,
            filename=upload.filename,
            options=ImportOptions.from_dict(upload.options),
            actor=actor,
            choices=choices,
            pii_known=_findings_path(path),
            progress=progress,
        )
    except DomainError as error:
        _finish_upload(upload, status=UploadStatus.FAILED, error=error)
        return upload
    upload.version = imported.version
    _finish_upload(upload, status=UploadStatus.IMPORTED)
    return upload


def suite_upload_fail(*, upload_id: str, message: str) -> None:
    """Mark a queued import failed when its task gives up on an unexpected error."""
    upload = Upload.objects.filter(
        pk=upload_id, status__in=[UploadStatus.PENDING, UploadStatus.SCREENING]
    ).first()
    if upload is not None:
        _finish_upload(upload, status=UploadStatus.FAILED, error=DomainError(message))


def _finish_upload(upload: Upload, *, status: str, error: DomainError | None = None) -> None:
    upload.status = status
    upload.finished_at = timezone.now()
    if status == UploadStatus.IMPORTED:
        upload.rows_screened = upload.rows_total
    if error is not None:
        upload.error = {"code": error.code, "message": str(error), "fields": error.fields}
    # The staged file and the preview's copy of personal data go either way: a failed import is
    # uploaded again once fixed.
    upload.report = {**upload.report, "pii_rows": [], "preview": []}
    upload.save(update_fields=["status", "finished_at", "rows_screened", "error", "report", "version"])
    shutil.rmtree(_upload_path(upload).parent, ignore_errors=True)


def suite_upload_discard(*, upload: Upload, actor: Any = None) -> None:
    if upload.status == UploadStatus.STAGED:
        shutil.rmtree(_upload_path(upload).parent, ignore_errors=True)
        upload.status = UploadStatus.DISCARDED
        upload.report = {**upload.report, "pii_rows": [], "preview": []}
        upload.save(update_fields=["status", "report"])
        audit_record(actor=actor, action="suite_upload.discard", obj=upload, after={"file": upload.filename})


# --- immutability ---------------------------------------------------------------------------------


def suite_version_lock(*, version: SuiteVersion, actor: Any = None, note: str = "") -> SuiteVersion:
    """Freeze a version (the runs app calls this when a run starts). Idempotent: the first lock stays."""
    with transaction.atomic():
        locked = SuiteVersion.objects.select_for_update().get(pk=version.pk)
        if locked.locked_at is None:
            locked.locked_at = timezone.now()
            locked.save(update_fields=["locked_at"])
            audit_record(
                actor=actor,
                action="suite_version.lock",
                object_type="suites.suiteversion",
                object_id=locked.pk,
                project=locked.suite.project,
                after={"locked_at": locked.locked_at},
                note=note,
            )
    version.locked_at = locked.locked_at
    return version


EDITABLE = ("reference", "tags", "slices", "category", "expected", "input", "origin", "generator", "split")


def case_update(*, case: Case, actor: Any = None, **changes: Any) -> Case:
    """Edit one case of an unlocked version. Raises Conflict once a run has used the version."""
    with transaction.atomic():
        version = SuiteVersion.objects.select_for_update().get(pk=case.version_id)
        if version.locked_at is not None:
            raise Conflict(
                f"{version} is locked: a run has used it. Upload a new version instead.",
                fields={"version": ["Locked."]},
            )
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValidationFailed(f"Cannot edit {', '.join(sorted(unknown))}.")
        before = {k: getattr(case, k) for k in changes}
        for k, v in changes.items():
            setattr(case, k, v)
        data = CaseData(
            row=case.position,
            key=case.key,
            input=case.input,
            reference=case.reference,
            tags=case.tags,
            slices=case.slices,
            origin=case.origin,
            generator=case.generator,
            split=case.split,
            category=case.category,
            expected=case.expected,
        )
        case.content_hash = data.content_hash()
        case.save()
        hashes = dict(Case.objects.filter(version=version).values_list("key", "content_hash"))
        version.content_hash = _version_hash(hashes)
        version.save(update_fields=["content_hash"])
        audit_record(
            actor=actor,
            action="case.update",
            obj=case,
            project=version.suite.project,
            before=before,
            after=changes,
        )
    return case


def suite_version_delete(*, version: SuiteVersion, actor: Any = None) -> None:
    with transaction.atomic():
        locked = SuiteVersion.objects.select_for_update().get(pk=version.pk)
        if locked.locked_at is not None:
            raise Conflict(f"{locked} is locked: a run has used it, so it cannot be deleted.")
        audit_record(
            actor=actor,
            action="suite_version.delete",
            object_type="suites.suiteversion",
            object_id=locked.pk,
            project=locked.suite.project,
            before={"number": locked.number, "cases": locked.case_count},
        )
        locked.delete()


def suite_upload_purge(*, older_than: timedelta, actor: Any = None) -> int:
    """Discard staged uploads nobody confirmed (their files may hold personal data), and delete
    staged files and scratch folders older than the cutoff that no live upload points at (left by
    a crash). Returns how many uploads were discarded."""
    cutoff = timezone.now() - older_than
    count = 0
    for upload in Upload.objects.filter(status=UploadStatus.STAGED, created_at__lt=cutoff):
        suite_upload_discard(upload=upload, actor=actor)
        count += 1
    _purge_orphans(before=cutoff.timestamp())
    return count


def _purge_orphans(*, before: float) -> int:
    """Delete folders under the staging area older than `before` with no live Upload row."""
    live = {
        Path(path).parent.name
        for path in Upload.objects.filter(
            status__in=[UploadStatus.STAGED, UploadStatus.PENDING, UploadStatus.SCREENING]
        ).values_list("path", flat=True)
    }
    removed = 0
    for folder in _staging_dir().iterdir():
        if folder.name in live or folder.stat().st_mtime >= before:
            continue
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
        removed += 1
    return removed
