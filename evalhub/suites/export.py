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


# --- promptfoo --------------------------------------------------------------------------------------

# Our check -> promptfoo's assertion (the inverse of promptfoo.PROMPTFOO_ASSERTIONS where one exists).
# max_length, no_pii and no_injection have no promptfoo equivalent: they are written as evalhub's own
# types, which evalhub reads back and promptfoo reports as unknown.
_CHECK_TO_ASSERT: dict[str, Any] = {
    "contains": lambda c: {
        "type": "contains" if c.get("case_sensitive", True) else "icontains",
        "value": c["value"],
    },
    "not_contains": lambda c: {
        "type": "not-contains" if c.get("case_sensitive", True) else "not-icontains",
        "value": c["value"],
    },
    "regex": lambda c: {"type": "regex", "value": c["pattern"]},
    "valid_json": lambda c: {"type": "is-json", **({"value": c["schema"]} if "schema" in c else {})},
    "contains_json": lambda c: {"type": "contains-json", **({"value": c["schema"]} if "schema" in c else {})},
    "must_refuse": lambda c: {"type": "is-refusal"},
    "must_not_refuse": lambda c: {"type": "not-is-refusal"},
    "pending": lambda c: dict(c["assert"]),  # the assertion as it was imported
}


def promptfoo_assert(check: dict[str, Any]) -> dict[str, Any]:
    to_assert = _CHECK_TO_ASSERT.get(str(check.get("type")))
    return to_assert(check) if to_assert is not None else dict(check)


def promptfoo_test(case: Case) -> dict[str, Any]:
    """A case as a promptfoo test: the input (and reference) as vars, its fields and slices as
    metadata, its checks as assertions. The evalhub import reads it back as the same case."""
    variables: dict[str, Any] = {"input": case.input}
    if case.reference:
        variables["reference"] = case.reference
    metadata: dict[str, Any] = {"id": case.key}
    if case.tags:
        metadata["tags"] = list(case.tags)
    metadata.update({"origin": case.origin, "split": case.split})
    if case.generator:
        metadata["generator"] = case.generator
    if case.category:
        metadata["category"] = case.category
    metadata.update(case.slices or {})
    test: dict[str, Any] = {"vars": variables}
    if case.expected:
        test["assert"] = [promptfoo_assert(c) for c in case.expected]
    test["metadata"] = metadata
    return test


def export_promptfoo(*, version: SuiteVersion, path: Path) -> Path:
    """Write the version as a promptfoo bundle (a .zip): promptfooconfig.yaml, whose one prompt passes
    each case's input through, and tests.yaml with one test per case. Add `providers:` to run it."""
    import zipfile

    import yaml

    config = (
        f"# {version.suite.name} v{version.number}, exported by evalhub. Add the providers to evaluate.\n"
        "prompts:\n  - '{{input}}'\ntests: file://tests.yaml\n"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("promptfooconfig.yaml", config)
        with archive.open("tests.yaml", "w") as out:
            text = io.TextIOWrapper(out, encoding="utf-8")
            for case in _cases(version):
                # PyYAML quotes every string YAML 1.1 would read otherwise (Yes, 0777, 18:00): a YAML
                # 1.2 reader (promptfoo, evalhub) reads the same text back.
                yaml.safe_dump(
                    [promptfoo_test(case)], text, allow_unicode=True, sort_keys=False, width=1_000_000
                )
            text.flush()
            text.detach()
    return path
