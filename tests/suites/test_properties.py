"""Property: whatever JSON, CSV or YAML content arrives, an upload ends in a version or a domain
error (a 2xx or a 4xx), never another exception, and leaves no staged file behind."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from evalhub.errors import DomainError
from evalhub.suites import services
from tests.suites.conftest import files_under

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HUGE = "<<an integer of 5,000 digits>>"
FIELD_NAMES = [
    "id",
    "input",
    "reference",
    "tags",
    "slices",
    "expected",
    "origin",
    "split",
    "category",
    "generator",
]

# Text including NUL, unpaired surrogates and other characters storage refuses.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=20) | st.sampled_from(
    ["\x00", "\ud800", "a\udfffb", "file://x", "", " "]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(HUGE)  # written out as 5,000 digits by _dumps
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(FIELD_NAMES) | texts, json_values, max_size=6)


@pytest.fixture(autouse=True)
def own_media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"
    return Path(settings.MEDIA_ROOT)


def upload(project: Any, content: bytes, filename: str) -> None:
    with contextlib.suppress(DomainError):
        services.suite_import_upload(
            project=project, name="property", file=io.BytesIO(content), filename=filename
        )


def no_staged_files(media: Path) -> bool:
    return files_under(media, media.parent / "scratch") == []


def _dumps(value: Any) -> str:
    """JSON text, writing integers too long for Python to print as 5,000 digits by hand."""
    return json.dumps(value).replace(f'"{HUGE}"', "9" * 5000)


@PROPERTY
@given(lines=st.lists(records, min_size=1, max_size=5), tail=st.binary(max_size=8))
def test_any_jsonl_content_ends_in_a_version_or_a_domain_error(
    project: Any, own_media_root: Path, lines: list[dict[str, Any]], tail: bytes
) -> None:
    body = "".join(_dumps(line) + "\n" for line in lines).encode("utf-8", "surrogatepass") + tail
    upload(project, body, "cases.jsonl")
    assert no_staged_files(own_media_root)


@PROPERTY
@given(rows=st.lists(st.lists(texts, min_size=1, max_size=4), min_size=1, max_size=5))
def test_any_csv_content_ends_in_a_version_or_a_domain_error(
    project: Any, own_media_root: Path, rows: list[list[str]]
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "input", "slices", "tags"])
    writer.writerows(rows)
    upload(project, out.getvalue().encode("utf-8", "surrogatepass"), "cases.csv")
    assert no_staged_files(own_media_root)


@PROPERTY
@given(
    tests=st.lists(
        st.dictionaries(st.sampled_from(["vars", "assert", "metadata"]) | texts, json_values), max_size=4
    )
)
def test_any_promptfoo_content_ends_in_a_version_or_a_domain_error(
    project: Any, own_media_root: Path, tests: list[dict[str, Any]]
) -> None:
    try:
        text = yaml.safe_dump({"tests": tests}, allow_unicode=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        text = "tests: []\n"
    upload(project, text.encode("utf-8", "surrogatepass"), "cases.yaml")
    assert no_staged_files(own_media_root)


@PROPERTY
@given(cases=st.lists(records, min_size=1, max_size=4))
def test_any_json_body_gets_a_2xx_or_a_4xx(engineer: Any, project: Any, cases: list[dict[str, Any]]) -> None:
    client = APIClient()
    client.force_authenticate(engineer)
    body = _dumps({"project": project.slug, "name": "property", "cases": cases})
    response = client.generic(
        "POST", "/api/v1/suites/", body.encode("utf-8", "surrogatepass"), content_type="application/json"
    )
    assert 200 <= response.status_code < 500, response.content[:300]
