"""CSV and XLSX exports of a suite version, with spreadsheet formulas neutralised in every cell."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalhub.suites.models import CASE_FILE_FIELDS, Case, SuiteVersion

# A case file's columns ("id" is the file's name for the key), so an export imports again as it is.
COLUMNS = ["id" if name == "key" else name for name in CASE_FILE_FIELDS]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix "'" to text a spreadsheet would run as a formula (OWASP CSV injection advice)."""
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(case: Case, name: str) -> str:
    value = getattr(case, name)
    if name == "tags":  # "a;b", as the import reads a tag column
        return ";".join(str(t) for t in value or [])
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False) if value else ""
    return str(value)


def _cells(case: Case) -> list[str]:
    return [_cell(case, name) for name in CASE_FILE_FIELDS]


def _cases(version: SuiteVersion) -> Iterator[Case]:
    return Case.objects.filter(version=version).order_by("position").iterator(chunk_size=2000)


def export_csv_lines(*, version: SuiteVersion) -> Iterator[str]:
    """The version as CSV text, one record at a time (for a streaming response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take(row: list[str]) -> str:
        writer.writerow([neutralise(c) for c in row])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield "\ufeff" + take(COLUMNS)  # a BOM so spreadsheet programs read UTF-8
    for case in _cases(version):
        yield take(_cells(case))


def export_xlsx(*, version: SuiteVersion, path: Path) -> Path:
    """Write the version as an XLSX workbook; every cell is a string cell, never a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet: Any = workbook.create_sheet(title="cases")

    def row(values: list[str]) -> list[Any]:
        cells = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=neutralise(ILLEGAL_CHARACTERS_RE.sub("", value)))
            cell.data_type = "s"
            cells.append(cell)
        return cells

    sheet.append(row(COLUMNS))
    for case in _cases(version):
        sheet.append(row(_cells(case)))
    workbook.save(path)
    return path
