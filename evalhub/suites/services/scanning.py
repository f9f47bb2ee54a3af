"""One pass over an uploaded file: read and validate (in the sandbox when large), then screen the
valid cases for PII; the report every interface shows.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from evalhub.errors import ValidationFailed
from evalhub.suites.parsing import FileProblem, RawRow, Source, detect_format, limits, open_source
from evalhub.suites.sandbox import LimitExceeded, run_limited, sandbox_available, sandbox_limits
from evalhub.suites.services.pii import KnownFindings, _pii_enabled, _pii_screen
from evalhub.suites.services.storage import scratch_dir
from evalhub.suites.validation import (
    FIELDS,
    CaseData,
    Problem,
    RowStream,
    auto_mapping,
    check_mapping,
)
from evalhub.untrusted import display, printable

PREVIEW_ROWS = 10


PREVIEW_CELL_CHARS = 300


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
    fidelity: dict[str, Any] = field(default_factory=dict)  # a promptfoo config's (see promptfoo.Fidelity)

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
            "fidelity": self.fidelity,
            "dropped": self.fidelity.get("dropped", {}),
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
    with tempfile.TemporaryDirectory(dir=scratch_dir(), prefix="scan-") as scratch:
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


def sandbox_threshold() -> int:
    """Files larger than this many bytes are read in the sandbox, and by a task (see
    `uploads.reads_in_background`), never inside a web request."""
    return int(getattr(settings, "EVALHUB_SUITE_SANDBOX_BYTES", 256 * 1024))


def _read(
    *, path: Path, filename: str, options: ImportOptions, spool: Path | None, preview: bool
) -> ScanReport:
    """`read_file` here for a small file, else in the sandbox."""
    threshold = sandbox_threshold()
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

        current: list[RawRow] = []

        def previewing(raws: Iterator[RawRow]) -> Iterator[RawRow]:
            for raw in raws:
                if preview and len(report.preview) < PREVIEW_ROWS:
                    report.preview.append({"row": raw.row, "values": _preview_row(raw)})
                current[:] = [raw]
                yield raw

        batch: list[CaseData] = []
        for case in stream.cases(previewing(rows)):
            if source.fidelity is not None:  # the row just read became this case: a promptfoo case made
                source.fidelity.kept(current[0])
            batch.append(case)
            if len(batch) >= BATCH:
                sink(batch)
                batch = []
        if batch and not stream.fatal:
            sink(batch)
        if source.fidelity is not None:
            report.fidelity = source.fidelity.to_dict()
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
