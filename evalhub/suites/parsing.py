"""Streaming readers for suite files: CSV, JSONL and XLSX (promptfoo configs: `promptfoo.py`).

Every reader yields `RawRow(row, values)` one record at a time, so a large upload is never held in
memory whole; a problem that makes the rest of the file unreadable is raised as `FileProblem`
(with the row where reading stopped). Limits come from settings at call time (see `limits()`).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from evalhub.untrusted import json_loads

log = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl", "xlsx", "promptfoo", "bundle")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_rows: int
    max_columns: int
    max_field_chars: int
    max_row_chars: int
    max_yaml_bytes: int
    max_yaml_nodes: int
    max_xlsx_uncompressed_bytes: int
    max_xlsx_ratio: int
    max_xlsx_shared_strings_bytes: int
    max_xlsx_shared_strings: int
    max_xlsx_cells: int
    max_problems: int
    max_bundle_files: int


def limits() -> Limits:
    """The configured limits, read now (never at import) so tests and deployments can change them."""

    def value(name: str, default: int) -> int:
        return int(getattr(settings, name, default))

    max_file = value("EVALHUB_SUITE_MAX_FILE_BYTES", value("EVALHUB_MAX_UPLOAD_BYTES", 200 * 1024 * 1024))
    field_chars = value("EVALHUB_SUITE_MAX_FIELD_CHARS", 100_000)
    return Limits(
        max_file_bytes=max_file,
        max_rows=value("EVALHUB_SUITE_MAX_ROWS", 100_000),
        max_columns=value("EVALHUB_SUITE_MAX_COLUMNS", 200),
        max_field_chars=field_chars,
        max_row_chars=value("EVALHUB_SUITE_MAX_ROW_CHARS", max(1_000_000, 4 * field_chars)),
        max_yaml_bytes=value("EVALHUB_SUITE_MAX_YAML_BYTES", 10 * 1024 * 1024),
        max_yaml_nodes=value("EVALHUB_SUITE_MAX_YAML_NODES", 1_000_000),
        max_xlsx_uncompressed_bytes=value("EVALHUB_SUITE_MAX_XLSX_UNCOMPRESSED_BYTES", 1024 * 1024 * 1024),
        max_xlsx_ratio=value("EVALHUB_SUITE_MAX_XLSX_RATIO", 200),
        max_xlsx_shared_strings_bytes=value("EVALHUB_SUITE_MAX_XLSX_SHARED_STRINGS_BYTES", 256 * 1024 * 1024),
        max_xlsx_shared_strings=value("EVALHUB_SUITE_MAX_XLSX_SHARED_STRINGS", 1_000_000),
        max_xlsx_cells=value("EVALHUB_SUITE_MAX_XLSX_CELLS", 5_000_000),
        max_problems=value("EVALHUB_SUITE_MAX_PROBLEMS", 1000),
        max_bundle_files=value("EVALHUB_SUITE_MAX_BUNDLE_FILES", 2000),
    )


class FileProblem(Exception):
    """The file cannot be read past this point; nothing from it is stored."""

    def __init__(self, message: str, *, row: int | None = None, column: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column


@dataclass
class RawRow:
    """One record as read: `row` is what the user sees (spreadsheet row, JSONL line, promptfoo test)."""

    row: int
    values: dict[str, Any]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (column, problem) found while reading


# --- formats and encodings -------------------------------------------------------------------------

_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an XLSX workbook is one: choose the XLSX format)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Word file (.xls/.doc): save it as XLSX or CSV"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)


def detect_format(filename: str, head: bytes = b"") -> str:
    """The format from the file name, falling back on the first bytes."""
    name = filename.lower()
    if name.endswith((".zip", ".tar.gz", ".tgz")):
        return "bundle"  # a promptfoo config with its files (bundles.py)
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".xlsx", ".xlsm")):
        return "xlsx"
    if name.endswith((".yaml", ".yml")):
        return "promptfoo"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.lstrip()[:1] == b"{":
        return "jsonl"
    raise FileProblem(
        f"Cannot tell the format of {filename!r}: name it .csv, .jsonl, .xlsx or .yaml, or choose the format."
    )


def _sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length). BOMs for UTF-32/UTF-16/UTF-8, BOM-less UTF-16 by its zero bytes, else UTF-8."""
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        return ("utf-32-le" if head.startswith(codecs.BOM_UTF32_LE) else "utf-32-be"), 4
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    sample = head[:2048]
    if len(sample) >= 8:
        even_zero = sample[0::2].count(0) / len(sample[0::2])
        odd_zero = sample[1::2].count(0) / len(sample[1::2])
        if odd_zero > 0.4 and even_zero == 0:
            return "utf-16-le", 0
        if even_zero > 0.4 and odd_zero == 0:
            return "utf-16-be", 0
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise FileProblem(
                f"This is {what}, not a text file. Upload a CSV, JSONL, XLSX or promptfoo YAML file.",
                row=None,
            )
    return "utf-8", 0


_NON_BLANK = re.compile(r"\S")


class DecodedReader:
    """Strict incremental decoding of a binary stream, with `readline(limit)`.

    Unlike `io.TextIOWrapper`, a decoding error names the byte and its offset in the file, and a line
    is never read past `limit` characters, so one enormous line cannot fill memory.
    """

    CHUNK = 64 * 1024

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        head = raw.read(4096)
        self.encoding, bom = _sniff_encoding(head)
        self._decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        self._consumed = 0  # bytes handed to the decoder so far
        self._buffer = ""
        self._pos = 0  # where the unread part of _buffer starts: lines are taken without copying the rest
        self._eof = False
        self._lines_done = 0
        self._pending_head: bytes | None = head[bom:]
        self._consumed = bom

    def _fill(self) -> bool:
        if self._eof:
            return False
        if self._pending_head is not None:
            data, self._pending_head = self._pending_head, None
        else:
            data = self.raw.read(self.CHUNK)
        final = not data
        pending = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(data, final=final)
        except UnicodeDecodeError as exc:
            offset = self._consumed - pending + exc.start
            bad = exc.object[exc.start : exc.start + 1]
            line = (
                self._lines_done
                + self._buffer.count("\n", self._pos)
                + bytes(exc.object[: exc.start]).count(b"\n")
                + 1
            )
            byte = f"0x{bad[0]:02x}" if bad else "end of file"
            raise FileProblem(
                f"File is not UTF-8 or UTF-16 (byte {byte} at offset {offset}, line {line}); "
                "save it as UTF-8 and upload again.",
                row=None,
            ) from exc
        self._consumed += len(data)
        if "\x00" in text:
            line = (
                self._lines_done
                + self._buffer.count("\n", self._pos)
                + text[: text.index("\x00")].count("\n")
                + 1
            )
            raise FileProblem(
                f"The file contains a NUL character (line {line}): it looks like a binary file, "
                "not a text file. Save it as UTF-8 CSV or JSONL.",
                row=None,
            )
        # Drop what was read before appending: each character is copied a bounded number of times.
        self._buffer = self._buffer[self._pos :] + text
        self._pos = 0
        if final:
            self._eof = True
        return True

    def readline(self, limit: int) -> str:
        """The next line including its newline; '' at the end. Raises FileProblem past `limit`."""
        while True:
            idx = self._buffer.find("\n", self._pos, self._pos + limit)
            if idx >= 0:
                line = self._buffer[self._pos : idx + 1]
                self._pos = idx + 1
                self._lines_done += 1
                return line
            if len(self._buffer) - self._pos > limit:
                raise FileProblem(
                    f"Line {self._lines_done + 1} is longer than {limit:,} characters; "
                    "the file may be truncated, binary, or have a row with far too many columns.",
                    row=None,
                )
            if not self._fill():
                line, self._buffer, self._pos = self._buffer[self._pos :], "", 0
                if line:
                    self._lines_done += 1
                return line

    def first_char(self) -> str:
        """The first non-blank character, without consuming anything ('' for a blank file)."""
        while True:
            match = _NON_BLANK.search(self._buffer, self._pos)
            if match is not None:
                return match.group()
            # Only blank text so far: keep no more than the last line of it, so a file of blank
            # lines is neither held whole nor searched again from its start.
            cut = self._buffer.rfind("\n", self._pos)
            if cut >= 0:
                self._lines_done += self._buffer.count("\n", self._pos, cut + 1)
                self._pos = cut + 1
            if not self._fill():
                return ""

    def read_all(self, limit: int) -> str:
        """Everything that is left, refusing past `limit` characters."""
        while self._fill():
            if len(self._buffer) - self._pos > limit:
                raise FileProblem(
                    f"The file is longer than {limit:,} characters (the limit for this format)."
                )
        text, self._buffer, self._pos = self._buffer[self._pos :], "", 0
        return text

    def lines(self, limit: int) -> Iterator[str]:
        while line := self.readline(limit):
            yield line


# --- CSV -------------------------------------------------------------------------------------------

_CSV_ERRORS = (
    (
        re.compile(r"field larger than field limit \((\d+)\)"),
        "a field is longer than {0} characters (the limit)",
    ),
    (
        re.compile(r"unexpected end of data"),
        "the file ends inside a quoted field: it is truncated or a quote is not closed",
    ),
    (
        re.compile(r"'.' expected after '\"'"),
        'malformed quoting: a quote inside a quoted field must be doubled ("")',
    ),
    (re.compile(r"line contains NUL"), "the row contains a NUL byte (binary data)"),
    (re.compile(r"new-line character seen in unquoted field"), "a line break inside an unquoted field"),
)


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    for pattern, message in _CSV_ERRORS:
        match = pattern.search(text)
        if match:
            return message.format(*(f"{int(g):,}" for g in match.groups()))
    return f"unreadable CSV ({text})"


def unformula(value: str) -> str:
    """Undo our own export's formula neutralisation ("'=x" back to "=x") on CSV/XLSX import."""
    if len(value) >= 2 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def read_header_and_rows_csv(raw: IO[bytes], *, delimiter: str = ",") -> tuple[list[str], Iterator[RawRow]]:
    lim = limits()
    header_row = 1
    reader_in = DecodedReader(raw)
    lines = reader_in.lines(lim.max_row_chars)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(lim.max_field_chars)
    try:
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise FileProblem(f"{_csv_message(exc).capitalize()}.", row=1) from exc
    finally:
        csv.field_size_limit(old_limit)
    if (
        header
        and len(header) <= 2
        and header[0].strip().lower().startswith("sep=")
        and len(header[0].strip()) <= 5
    ):
        # Excel's "sep=;" first line names the delimiter; the header follows it.
        header_row = 2
        sep = (header[0].strip()[4:] or ",") if len(header) == 1 else ","
        delimiter = sep if sep in DELIMITERS else delimiter
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        csv.field_size_limit(lim.max_field_chars)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise FileProblem(f"{_csv_message(exc).capitalize()}.", row=2) from exc
        finally:
            csv.field_size_limit(old_limit)
    if not header or not any(h.strip() for h in header):
        raise FileProblem("The file is empty: the first row must name the columns.", row=1)
    if len(header) > lim.max_columns:
        raise FileProblem(f"The header has {len(header):,} columns; the limit is {lim.max_columns:,}.", row=1)
    header = [h.strip() for h in header]
    if len(header) == 1:
        for other, name in DELIMITERS.items():
            if other != delimiter and other in header[0]:
                raise FileProblem(
                    f"The first row has one column ({header[0][:80]!r}): the file seems to separate "
                    f"columns with a {name} ({other!r}). Choose that delimiter, or save the file as "
                    "comma-separated CSV.",
                    row=1,
                )

    def rows() -> Iterator[RawRow]:
        number = header_row
        csv.field_size_limit(lim.max_field_chars)
        try:
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise FileProblem(f"{_csv_message(exc).capitalize()}.", row=number + 1) from exc
                number += 1
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                problems: list[tuple[str, str]] = []
                if len(cells) > lim.max_columns:
                    raise FileProblem(
                        f"This row has {len(cells):,} columns; the limit is {lim.max_columns:,}.",
                        row=number,
                    )
                if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                    problems.append(("", f"{len(cells)} cells but the header names {len(header)} columns"))
                values = {
                    name: unformula(cells[i]) if i < len(cells) else "" for i, name in enumerate(header)
                }
                yield RawRow(number, values, problems)
        finally:
            csv.field_size_limit(old_limit)

    return header, rows()


# --- JSONL -----------------------------------------------------------------------------------------


def read_rows_jsonl(raw: IO[bytes]) -> Iterator[RawRow]:
    lim = limits()
    reader = DecodedReader(raw)
    if reader.first_char() == "[":
        yield from _rows_json_array(reader, lim)
        return
    number = 0
    for line in reader.lines(lim.max_row_chars):
        number += 1
        text = line.strip()
        if not text:
            continue
        problems: list[tuple[str, str]] = []
        try:
            value = json_loads(text)
        except json.JSONDecodeError as exc:
            hint = "; the line is cut off: is the file truncated?" if not line.endswith("\n") else ""
            yield RawRow(number, {}, [("", f"not valid JSON ({exc.msg}, character {exc.pos + 1}){hint}")])
            continue
        except RecursionError:
            yield RawRow(number, {}, [("", "JSON nested too deeply")])
            continue
        if not isinstance(value, dict):
            problems.append(("", f"each line must be a JSON object, not {type(value).__name__}"))
            value = {}
        elif len(value) > lim.max_columns:
            raise FileProblem(
                f"This line has {len(value):,} fields; the limit is {lim.max_columns:,}.", row=number
            )
        yield RawRow(number, value, problems)


def _rows_json_array(reader: DecodedReader, lim: Limits) -> Iterator[RawRow]:
    """A JSON array of case objects (parsed whole, so capped like promptfoo files); row = position from 1."""
    text = reader.read_all(lim.max_yaml_bytes)
    try:
        value = json_loads(text)
    except json.JSONDecodeError as exc:
        raise FileProblem(
            f"This JSON array is not valid JSON ({exc.msg}, line {exc.lineno}, column {exc.colno}).",
            row=exc.lineno,
        ) from exc
    except RecursionError as exc:
        raise FileProblem("The JSON is nested too deeply.") from exc
    if not isinstance(value, list):
        raise FileProblem("A .json file must hold an array of case objects (or be JSON Lines).")
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            yield RawRow(number, {}, [("", f"each case must be a JSON object, not {type(item).__name__}")])
        elif len(item) > lim.max_columns:
            raise FileProblem(
                f"Case {number} has {len(item):,} fields; the limit is {lim.max_columns:,}.", row=number
            )
        else:
            yield RawRow(number, item, [])


# --- XLSX ------------------------------------------------------------------------------------------


def check_xlsx_archive(path: Path) -> None:
    """Refuse workbooks whose reading would cost more than the limits, before openpyxl opens them.

    Python's zipfile stops each member at its declared size and fails on a CRC mismatch, so the
    declared sizes checked here bound what openpyxl can ever inflate. The shared-strings table
    (which openpyxl holds whole, even in read-only mode) and the cells are then counted in one
    streaming pass over the inflated XML: a small file can declare millions of tiny strings.
    """
    lim = limits()
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_declared_sizes(infos, lim)
            if "xl/workbook.xml" not in {i.filename for i in infos}:
                raise FileProblem("This ZIP archive is not an XLSX workbook (no xl/workbook.xml).")
            _check_counts(archive, infos, lim)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise FileProblem(
            "This is not a valid XLSX workbook (the archive is damaged or truncated). "
            "Open it in your spreadsheet program and save it again as .xlsx."
        ) from exc


# Parts smaller than this may compress as well as they like: a sheet of one repeated value does.
_RATIO_FLOOR_BYTES = 16 * 1024 * 1024


def check_expansion(members: list[tuple[str, int, int]], lim: Limits, *, what: str, advice: str) -> None:
    """The zip-bomb rule, one home for XLSX workbooks and suite bundles: `members` are (name, size,
    compressed size) as the archive declares them, checked before anything is inflated to disk or
    memory. Refuses a total over the uncompressed limit and a member that expands by more than the
    ratio limit (small members may compress as well as they like)."""
    total = sum(size for _, size, _ in members)
    if total > lim.max_xlsx_uncompressed_bytes:
        raise FileProblem(
            f"The {what} expands to {total / 1e6:,.0f} MB when unpacked (limit "
            f"{lim.max_xlsx_uncompressed_bytes / 1e6:,.0f} MB). Nothing was read; {advice}"
        )
    for name, size, compressed in members:
        ratio = size // max(compressed, 1)
        if size > _RATIO_FLOOR_BYTES and ratio > lim.max_xlsx_ratio:
            raise FileProblem(
                f"Part {name!r} of the {what} expands from {compressed / 1e6:,.1f} MB to "
                f"{size / 1e6:,.0f} MB: {ratio:,} to 1, where real files stay under "
                f"{lim.max_xlsx_ratio} to 1. Content this repetitive is the mark of a zip bomb (a file "
                f"built to fill the server's memory), so nothing was read; {advice}"
            )


def _check_declared_sizes(infos: list[zipfile.ZipInfo], lim: Limits) -> None:
    check_expansion(
        [(i.filename, i.file_size, i.compress_size) for i in infos],
        lim,
        what="workbook",
        advice="save the suite as CSV or JSONL, or split it.",
    )
    for info in infos:
        # openpyxl holds the whole shared-strings table in memory, even in read-only mode.
        if (
            info.filename.lower().endswith("sharedstrings.xml")
            and info.file_size > lim.max_xlsx_shared_strings_bytes
        ):
            raise FileProblem(
                f"The workbook's text table expands to {info.file_size / 1e6:,.0f} MB (limit "
                f"{lim.max_xlsx_shared_strings_bytes / 1e6:,.0f} MB). Save the suite as CSV or JSONL instead."
            )


_SHARED_STRING = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s>/]")
_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s>/]")


def _count_tags(archive: zipfile.ZipFile, info: zipfile.ZipInfo, tag: re.Pattern[bytes], cap: int) -> int:
    """Occurrences of `tag` in a part, read in 1 MiB pieces; stops counting once past `cap`."""
    count = 0
    carry = b""
    with archive.open(info) as part:
        while chunk := part.read(1 << 20):
            data = carry + chunk
            cut = data.rfind(b"<")
            if cut < 0 or len(data) - cut > 64:  # no tag can start in the last piece
                cut = len(data)
            count += len(tag.findall(data, 0, cut))
            carry = data[cut:]
            if count > cap:
                return count
    return count + len(tag.findall(carry))


def _check_counts(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], lim: Limits) -> None:
    cells = 0
    for info in infos:
        name = info.filename.lower()
        if name.endswith("sharedstrings.xml"):
            strings = _count_tags(archive, info, _SHARED_STRING, lim.max_xlsx_shared_strings)
            if strings > lim.max_xlsx_shared_strings:
                raise FileProblem(
                    f"The workbook's text table holds more than {lim.max_xlsx_shared_strings:,} strings "
                    "(the limit). Nothing was read; save the suite as CSV or JSONL instead."
                )
        elif name.startswith("xl/worksheets/") and name.endswith(".xml"):
            cells += _count_tags(archive, info, _CELL, lim.max_xlsx_cells - cells)
            if cells > lim.max_xlsx_cells:
                raise FileProblem(
                    f"The workbook has more than {lim.max_xlsx_cells:,} cells (the limit). Nothing was "
                    "read; remove the columns the suite does not need, or save it as CSV or JSONL."
                )


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


_DAMAGED_WORKBOOK = (
    "This XLSX workbook cannot be read: it is damaged, or not a workbook we understand. "
    "Open it in your spreadsheet program and save it again as .xlsx."
)


def _guarded(rows: Iterator[tuple[Any, ...]], lim: Limits) -> Iterator[tuple[Any, ...]]:
    """openpyxl's rows, with any error it raises mid-sheet reported as a damaged workbook (its
    message may name server paths) at the row where it happened."""
    number = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except FileProblem:
            raise
        except Exception as exc:
            log.info("openpyxl failed at row %d", number + 1, exc_info=True)
            raise FileProblem(_DAMAGED_WORKBOOK, row=number + 1) from exc
        number += 1
        yield cells


def read_header_and_rows_xlsx(path: Path, *, sheet: str = "") -> tuple[list[str], Iterator[RawRow]]:
    import openpyxl

    lim = limits()
    check_xlsx_archive(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        # The exception's text may hold the server's path to the file: it is logged, never shown.
        log.info("openpyxl could not open a workbook", exc_info=True)
        raise FileProblem(_DAMAGED_WORKBOOK) from exc
    ws: Any
    if sheet:
        if sheet not in workbook.sheetnames:
            workbook.close()
            raise FileProblem(f"No sheet named {sheet!r}; the workbook has {', '.join(workbook.sheetnames)}.")
        ws = workbook[sheet]
    else:
        ws = workbook.worksheets[0]
    # Read-only mode trusts the sheet's <dimension ref>, which other tools often leave stale: rows
    # past it would be dropped without a word. Reset, the sheet is read to its real end.
    ws.reset_dimensions()
    iterator = _guarded(ws.iter_rows(values_only=True, max_col=lim.max_columns + 1), lim)
    first = next(iterator, None)
    if first is None or not any(v not in (None, "") for v in first):
        workbook.close()
        raise FileProblem("The first sheet is empty: its first row must name the columns.", row=1)
    header = [_cell_text(v).strip() for v in first]
    while header and not header[-1]:
        header.pop()
    if len(header) > lim.max_columns:
        workbook.close()
        raise FileProblem(f"The header has more than {lim.max_columns:,} columns (the limit).", row=1)

    def rows() -> Iterator[RawRow]:
        try:
            for number, cells in enumerate(iterator, start=2):
                if not any(v not in (None, "") for v in cells):
                    if number > 2 * lim.max_rows:
                        raise FileProblem(
                            f"The sheet goes on past row {2 * lim.max_rows:,} (the limit is "
                            f"{lim.max_rows:,} cases); delete the empty rows below the suite.",
                            row=number,
                        )
                    continue
                values: dict[str, Any] = {}
                problems: list[tuple[str, str]] = []
                for i, name in enumerate(header):
                    text = unformula(_cell_text(cells[i])) if i < len(cells) else ""
                    if name:
                        values[name] = text
                extra = [c for c in cells[len(header) :] if c not in (None, "")]
                if extra:
                    problems.append(("", f"{len(extra)} cells right of the last named column"))
                yield RawRow(number, values, problems)
        finally:
            workbook.close()

    return header, rows()


# --- one entry point -------------------------------------------------------------------------------


@dataclass
class Source:
    """An open upload: its columns (for mapping) and a row iterator. Close it when done."""

    format: str
    columns: list[str]
    rows: Iterator[RawRow]
    handle: IO[bytes] | None = None
    encoding: str = ""
    fidelity: Any = None  # a promptfoo config's `Fidelity`, filled as its rows are read
    cleanup: Any = None  # called on close (a bundle's unpacked folder goes)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.cleanup is not None:
            self.cleanup()


def open_source(
    path: Path,
    *,
    format: str = "",
    filename: str = "",
    delimiter: str = ",",
    sheet: str = "",
    input_var: str = "",
) -> Source:
    """Open a stored upload for streaming. Raises FileProblem for what makes the whole file unusable."""
    lim = limits()
    size = path.stat().st_size
    if size > lim.max_file_bytes:
        raise FileProblem(
            f"The file is {size / 1e6:,.1f} MB; the limit is {lim.max_file_bytes / 1e6:,.0f} MB."
        )
    if size == 0:
        raise FileProblem("The file is empty.")
    with path.open("rb") as probe:
        head = probe.read(16)
    fmt = format or detect_format(filename or path.name, head)
    if fmt not in FORMATS:
        raise FileProblem(f"Unknown format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    if fmt == "bundle":
        from evalhub.suites.bundles import open_bundle

        return open_bundle(path, filename=filename or path.name, input_var=input_var)
    if fmt == "xlsx":
        if not head.startswith(b"PK"):
            raise FileProblem("This is not an XLSX workbook (it does not start like a ZIP archive).")
        columns, rows = read_header_and_rows_xlsx(path, sheet=sheet)
        return Source(fmt, columns, rows)
    if head.startswith(b"PK\x03\x04"):
        raise FileProblem("This is a ZIP archive (perhaps an XLSX workbook), not a text file: choose XLSX.")
    with path.open("rb") as probe:
        encoding = _sniff_encoding(probe.read(4096))[0]
    handle = path.open("rb")
    try:
        if fmt == "csv":
            if delimiter not in DELIMITERS:
                raise FileProblem(f"Unknown delimiter {delimiter!r}: use comma, semicolon, tab or pipe.")
            columns, rows = read_header_and_rows_csv(handle, delimiter=delimiter)
            return Source(fmt, columns, rows, handle, encoding)
        if fmt == "jsonl":
            return Source(fmt, [], read_rows_jsonl(handle), handle, encoding)
        from evalhub.suites.promptfoo import Fidelity, read_rows_promptfoo  # it uses this module's helpers

        fidelity = Fidelity()
        rows = read_rows_promptfoo(handle, input_var=input_var, fidelity=fidelity, name=filename or path.name)
        return Source(fmt, [], rows, handle, encoding, fidelity)
    except BaseException:
        handle.close()
        raise
