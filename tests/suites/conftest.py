"""Helpers for the suites tests: the test files and an API client logged in as a project engineer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

DATA = Path(__file__).resolve().parent.parent / "data"
GOOD = DATA / "good"
HOSTILE = DATA / "hostile"

# Each hostile file and a phrase its (first) problem must contain: the same through service, API and CLI
# (or one of several phrases, where either bound may be reached first: see hostile_named).
HOSTILE_EXPECTATIONS: dict[str, str | tuple[str, ...]] = {
    "truncated.csv": "ends inside a quoted field",
    "truncated.jsonl": "is the file truncated",
    "binary.csv": "PNG image, not a text file",
    "random_bytes.jsonl": "not UTF-8 or UTF-16",
    "wrong_delimiter.csv": "semicolon",
    "latin1.csv": "not UTF-8 or UTF-16 (byte 0xe9 at offset 13",
    "mixed_encoding.csv": "byte 0xe9 at offset 49, line 4",
    "zip_bomb.xlsx": "zip bomb",
    "truncated.xlsx": "damaged or truncated",
    "not_a_workbook.xlsx": "not an XLSX workbook",
    "html_script.csv": "origin must be real or synthetic, not '<script>alert(1)</script>'",
    "million_columns.csv": "longer than 1,000,000 characters",
    "many_columns_header.csv": "5,000 columns; the limit is 200",
    "malformed_quotes.csv": "quote inside a quoted field must be doubled",
    "missing_input.csv": "missing required column 'input'",
    "empty_input.csv": "empty input",
    "duplicates.jsonl": "duplicate id 'd1' (first on row 1)",
    "unknown_expected.jsonl": "unknown expected-behaviour type 'sounds_polite'",
    "deep_nesting.jsonl": "nested too deeply",
    "nul_bytes.csv": "NUL character",
    "empty.csv": "The file is empty",
    "promptfoo_bad_asserts.yaml": "assertion 'contains' needs a value",
    "promptfoo_billion_laughs.yaml": "once its aliases are expanded",
    "promptfoo_not_yaml.yaml": "not valid YAML (line 3",
    "promptfoo_self_alias.yaml": "refers to itself",
    "promptfoo_nul.yaml": "contains a NUL character (\\u0000), which cannot be stored",
    "promptfoo_huge_int.yaml": "a number with more than 4,300 digits",
    "promptfoo_default_file.yaml": "refers to another file: upload the config with its files as a folder",
    "promptfoo_assert_file.yaml": "refers to another file: upload the config with its files as a folder",
    "promptfoo_template_loop.yaml": "line 4: prompt 'prompt 1': the template nests 3 loops (line 2); at most 2",
    "promptfoo_remote_tests.yaml": "is remote: evalhub reads nothing from the network at import",
    "promptfoo_code_tests.yaml": "is code (it generates them when promptfoo runs): evalhub runs no code",
    # 200,000 empty loop passes take about 2 s: on a loaded machine the time bound stops it first.
    "promptfoo_template_spin.yaml": (
        "loops or recurses more than 200,000 times (the limit)",
        "took more than 2 s to render (the limit)",
    ),
    "promptfoo_template_range.yaml": "range() of more than 10,000 values (the limit)",
    "bundle_reference_escape.zip": "promptfooconfig.yaml, line 2: the reference file://../secrets/tests.csv is a "
    "path that climbs out of the bundle (..)",
    "bundle_absolute_reference.zip": "promptfooconfig.yaml, line 2: the reference file:///etc/passwd is an absolute",
    "bundle_member_escape.zip": "the member '../tests.csv' is a path that climbs out of the bundle (..)",
    "bundle_symlink.tar.gz": "the member 'tests.csv' is a link to '/etc/passwd' (links are refused)",
    "bundle_zip_bomb.zip": "zip bomb",
    "bundle_alias_bomb.zip": "tests.yaml: The YAML has more than 1,000,000 values once its aliases are expanded (line",
    "bundle_missing_file.zip": "promptfooconfig.yaml, line 2: file://tests.csv is missing: the bundle has no file",
    "bundle_remote_tests.zip": "promptfooconfig.yaml, line 2: the tests file 'hf://datasets/cais/mmlu?split=test' is remote",
    "bundle_template_loop.tar.gz": "the template nests 3 loops (line 1); at most 2 are allowed",
    "nul_in_json.jsonl": "contains a NUL character (\\u0000), which cannot be stored",
    "lone_surrogate.jsonl": "contains an unpaired surrogate (\\ud800)",
    "huge_int.jsonl": "slices.n has a number with more than 4,300 digits",
    "nan.jsonl": "expected[0].value has NaN",
    "nul_in_slices.csv": "slices.domain contains a NUL character",
    "nul_in_column_name.jsonl": "has a field name that contains a NUL character",
}


def files_under(*folders: Path) -> list[Path]:
    """The files left under these folders (kept uploads under MEDIA_ROOT, scratch files)."""
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


def hostile_named(name: str, text: str) -> bool:
    """Whether `text` holds the phrase (or one of the phrases) the hostile file `name` must get."""
    expected = HOSTILE_EXPECTATIONS[name]
    return any(phrase in text for phrase in ((expected,) if isinstance(expected, str) else expected))


# Hostile files that must import in full (and how many cases): they were once cut short or refused.
HOSTILE_IMPORTS: dict[str, int] = {
    "stale_dimension.xlsx": 10,
    "repeated_character.xlsx": 40,
}


@pytest.fixture
def api(engineer: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(engineer)
    return client


@pytest.fixture
def no_pii_scan(settings: Any) -> None:
    """For tests where PII is not the point: skip the (slow) analyzer."""
    settings.EVALHUB_SUITE_PII_SCAN = False


# What an error shown to a user must never contain: server paths, SQL, Python internals.
INTERNALS = (
    "/tmp",
    "/work/",
    "/home/",
    "/usr/",
    "site-packages",
    "Traceback",
    'File "',
    "SELECT ",
    "INSERT ",
    "psycopg",
    "django.db",
    "sqlite3",
    "Error:",
    "Exception",
    "sys.set_int_max_str_digits",
)


def assert_no_internals(*parts: Any) -> None:
    """Fail if any text (or nested JSON) shown to a user names a server path, SQL or a stack detail."""
    import json as _json

    text = "\n".join(p if isinstance(p, str) else _json.dumps(p, default=str) for p in parts)
    found = [marker for marker in INTERNALS if marker in text]
    assert not found, f"internals {found} in: {text[:500]}"
