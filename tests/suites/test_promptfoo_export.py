"""Export to promptfoo and back: a version exported as a promptfoo bundle imports as the same cases."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalhub.suites.export import export_promptfoo
from evalhub.suites.models import CASE_FILE_FIELDS, SuiteVersion
from evalhub.suites.services import suite_import_file
from tests.suites.conftest import GOOD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_pii_scan")]

EXAMPLES = [
    "pf_translate",
    "pf_scenarios",
    "pf_redteam/redteam.yaml",
    "promptfoo.yaml",
    "promptfoo_prompts.yaml",
    "promptfoo_yaml12.yaml",
]


def contents(version: SuiteVersion) -> list[dict[str, Any]]:
    return [
        {name: getattr(case, name) for name in CASE_FILE_FIELDS}
        for case in version.cases.order_by("position")
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_import_export_import_gives_the_same_cases_and_asserts(
    project: Any, tmp_path: Path, example: str
) -> None:
    source = GOOD / example
    first = suite_import_file(project=project, name="first", path=source)
    bundle = export_promptfoo(version=first, path=tmp_path / "exported.zip")
    second = suite_import_file(project=project, name="second", path=bundle)
    assert contents(second) == contents(first)
    assert second.fidelity["dropped"] == {}
    assert second.fidelity["asserts_pending"] == first.fidelity["asserts_pending"]
    assert second.content_hash == first.content_hash


def test_the_exported_bundle_is_a_promptfoo_config_and_a_tests_file(project: Any, tmp_path: Path) -> None:
    version = suite_import_file(project=project, name="pf", path=GOOD / "promptfoo_yaml12.yaml")
    with zipfile.ZipFile(export_promptfoo(version=version, path=tmp_path / "e.zip")) as archive:
        assert sorted(archive.namelist()) == ["promptfooconfig.yaml", "tests.yaml"]
        config = yaml.safe_load(archive.read("promptfooconfig.yaml"))
        tests_text = archive.read("tests.yaml").decode()
    assert config == {"prompts": ["{{input}}"], "tests": "file://tests.yaml"}
    # Strings YAML 1.1 would change are quoted, so promptfoo (YAML 1.2) and evalhub read them as text.
    assert "input: 'Yes'" in tests_text and "input: '18:00'" in tests_text and "input: '0777'" in tests_text
    first = yaml.safe_load(tests_text)[0]
    assert first["vars"] == {"input": "Yes"} and first["metadata"]["lang"] == "No"


def test_the_api_and_the_web_export_a_promptfoo_bundle(api: Any, project: Any, engineer: Any) -> None:
    from django.test import Client

    version = suite_import_file(project=project, name="pf", path=GOOD / "promptfoo.yaml")
    response = api.get(f"/api/v1/suite-versions/{version.pk}/export/?type=promptfoo")
    assert response.status_code == 200, response.content[:200]
    body = b"".join(response.streaming_content)
    assert "tests.yaml" in zipfile.ZipFile(io.BytesIO(body)).namelist()
    web = Client()
    web.force_login(engineer)
    page = web.get(f"/p/{project.slug}/suites/{version.suite_id}/v{version.number}/export.promptfoo")
    assert page.status_code == 200 and page["Content-Disposition"].endswith('-promptfoo.zip"')
