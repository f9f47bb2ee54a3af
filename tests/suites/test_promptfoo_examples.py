"""Acceptance on real promptfoo configs (issue #18, Deliver 5).

Each folder of tests/data/promptfoo/ is an example from promptfoo's own repository with the files it
references (ORIGIN.json says where each file comes from). expected.json holds, for each, the fidelity
summary worked out by hand from promptfoo's documentation, or the need a refusal must name. Every config
goes through the CLI as a folder bundle, and as a zip through the API and the web upload.
"""

from __future__ import annotations

import json
import re
import zipfile
from html import escape, unescape
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from evalhub.suites.models import Case, SuiteVersion, Upload
from tests.suites.conftest import DATA, INTERNALS

pytestmark = pytest.mark.django_db

EXAMPLES = DATA / "promptfoo"
EXPECTED: dict[str, dict[str, Any]] = json.loads((EXAMPLES / "expected.json").read_text())["configs"]
IMPORTS = sorted(name for name, exp in EXPECTED.items() if "tests_read" in exp)
REFUSALS = sorted(name for name, exp in EXPECTED.items() if "tests_read" not in exp)
DUPLICATED = sorted(name for name, exp in EXPECTED.items() if exp.get("duplicates"))
COUNTS = ("tests_read", "cases_made", "asserts_mapped", "asserts_pending")
# Every config also goes through the API and the web upload as a zip bundle (a config with exact duplicates
# is refused there until the user asks for the valid rows only: the CLI test above covers that path).
API_SAMPLE = WEB_SAMPLE = [name for name in IMPORTS if name not in DUPLICATED]
API_REFUSALS = WEB_REFUSALS = REFUSALS


def test_the_example_set_is_real_varied_and_traced() -> None:
    """At least 25 configs, every copied file traced to promptfoo's repository with its commit."""
    assert len(EXPECTED) >= 25
    assert {path.name for path in EXAMPLES.iterdir() if path.is_dir()} == set(EXPECTED)
    origin = json.loads((EXAMPLES / "ORIGIN.json").read_text())
    assert origin["repository"] == "https://github.com/promptfoo/promptfoo"
    copied = {
        path.relative_to(EXAMPLES).as_posix()
        for path in EXAMPLES.rglob("*")
        if path.is_file() and path.parent != EXAMPLES
    }
    assert copied == set(origin["files"])
    for entry in origin["files"].values():
        assert entry["path"].startswith("examples/") and re.fullmatch(r"[0-9a-f]{40}", entry["commit"])
    assert "MIT License" in (EXAMPLES / "LICENSE-promptfoo").read_text()


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary.get(key) for key in COUNTS}


def _assert_matches(name: str, fidelity: dict[str, Any]) -> None:
    exp = EXPECTED[name]
    assert _counts(fidelity) == _counts(exp), f"{name}: {exp['reason']}"
    # Exactly the hand-checked map: a field dropped but not in the hand check fails too.
    assert (fidelity.get("dropped") or {}) == exp["dropped"], f"{name}: {exp['reason']}"


def _cli_target(name: str) -> Path:
    exp = EXPECTED[name]
    return EXAMPLES / name / exp["config"] if "config" in exp else EXAMPLES / name


def _cli(name: str, project: Any, *extra: str) -> str:
    out = StringIO()
    call_command("import_suite", str(_cli_target(name)), *extra, project=project.slug, name=name, stdout=out)
    return out.getvalue()


def _refusal_named(name: str, message: str) -> None:
    exp = EXPECTED[name]
    for phrase in exp["refusal_mentions"]:
        assert phrase in message, f"{name}: the refusal does not name {phrase!r}: {message}"
    if exp["refusal_any_of"]:
        assert any(phrase in message for phrase in exp["refusal_any_of"]), f"{name}: {message}"


def _zip(name: str, tmp_path: Path) -> Path:
    """The example folder as a zip, member names relative to the folder (as a user would zip it)."""
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted((EXAMPLES / name).rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(EXAMPLES / name).as_posix())
    return archive


@pytest.mark.parametrize("name", IMPORTS)
def test_cli_imports_each_real_config_with_the_hand_checked_fidelity(
    name: str, project: Any, no_pii_scan: None
) -> None:
    exp = EXPECTED[name]
    extra = ["--only-valid-rows"] if exp.get("options", {}).get("only_valid_rows") else []
    text = _cli(name, project, *extra)
    version = SuiteVersion.objects.get(suite__name=name)
    _assert_matches(name, version.fidelity)
    assert version.case_count == exp["cases_made"] == Case.objects.filter(version=version).count()
    # Nothing dropped silently: the CLI prints what it read and every field it did not use.
    assert f"{exp['tests_read']} tests read" in text and f"{exp['cases_made']} cases made" in text, text
    for path in version.fidelity.get("dropped") or {}:
        assert path in text


@pytest.mark.parametrize("name", REFUSALS)
def test_cli_refuses_a_config_that_needs_what_the_bundle_lacks_and_names_it(
    name: str, project: Any, no_pii_scan: None
) -> None:
    with pytest.raises(CommandError) as info:
        _cli(name, project)
    _refusal_named(name, str(info.value))
    assert not SuiteVersion.objects.exists()


@pytest.mark.parametrize("name", DUPLICATED)
def test_real_files_with_exact_duplicates_report_each_and_store_nothing(
    name: str, project: Any, no_pii_scan: None
) -> None:
    """A generated red-team file repeats a strategy group; a hand-written config repeats questions.

    Without --only-valid-rows the import reports each duplicate and stores nothing, never hiding them.
    """
    with pytest.raises(CommandError) as info:
        _cli(name, project)
    lines = [line for line in str(info.value).splitlines() if "duplicate" in line]
    assert len(lines) == EXPECTED[name]["duplicates"], str(info.value)
    assert not SuiteVersion.objects.exists()


def test_redteam_strategies_and_plugin_become_slices(project: Any, no_pii_scan: None) -> None:
    _cli("redteam-deepseek", project, "--only-valid-rows")
    values = {json.dumps(slices, sort_keys=True) for slices in Case.objects.values_list("slices", flat=True)}
    text = " ".join(values)
    for strategy in ("crescendo", "goat", "jailbreak", "mischievous-user"):
        assert strategy in text, text
    assert "intent" in text
    assert all(
        any(check.get("type") == "must_refuse" for check in expected)
        for expected in Case.objects.values_list("expected", flat=True)
    )


def test_a_real_config_keeps_yaml_12_strings(project: Any, no_pii_scan: None) -> None:
    """simple-test's `body: Yes` stays Yes (YAML 1.1 read it as True)."""
    _cli("simple-test", project, "--only-valid-rows")
    inputs = list(Case.objects.values_list("input", flat=True))
    assert any("English to Pirate: Yes" in text for text in inputs), inputs
    assert not any("True" in text for text in inputs)


def test_real_configs_render_templates_inside_asserts(project: Any, no_pii_scan: None) -> None:
    """mmlu's equals '{{answer}}' and the support rubrics' {{customer_message}} are rendered per test."""
    _cli("mmlu", project)
    _cli("eval-customer-support-rubric", project)
    mmlu = Case.objects.filter(version__suite__name="mmlu").values_list("expected", flat=True)
    assert mmlu and not any("{{" in json.dumps(checks) for checks in mmlu)
    rubrics = Case.objects.filter(version__suite__name="eval-customer-support-rubric")
    for case in rubrics:
        text = json.dumps(case.expected, ensure_ascii=False)
        # Kept in the case, pending for a judge, with the test's own values in the rubric.
        assert text.count("llm-rubric") == 5 and "{{" not in text, text


def _api_upload(api: APIClient, project: Any, name: str, archive: Path) -> Any:
    with archive.open("rb") as handle:
        return api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": name, "file": handle},
            format="multipart",
        )


@pytest.mark.parametrize("name", API_SAMPLE)
def test_api_imports_a_zip_bundle_with_the_same_fidelity(
    name: str, api: APIClient, project: Any, no_pii_scan: None, tmp_path: Path
) -> None:
    response = _api_upload(api, project, name, _zip(name, tmp_path))
    assert response.status_code == 201, response.json()
    body = response.json()
    _assert_matches(name, {**body["fidelity"], "dropped": body["dropped"]})
    assert body["case_count"] == EXPECTED[name]["cases_made"]
    assert SuiteVersion.objects.get(suite__name=name).fidelity == body["fidelity"]


@pytest.mark.parametrize("name", API_REFUSALS)
def test_api_refuses_a_zip_bundle_naming_the_need_and_stores_nothing(
    name: str, api: APIClient, project: Any, no_pii_scan: None, tmp_path: Path
) -> None:
    response = _api_upload(api, project, name, _zip(name, tmp_path))
    assert 400 <= response.status_code < 500
    text = json.dumps(response.json(), ensure_ascii=False)
    _refusal_named(name, text)
    assert not any(internal in text for internal in INTERNALS)
    assert not SuiteVersion.objects.exists()


@pytest.fixture
def web(engineer: Any) -> Client:
    client = Client()
    client.force_login(engineer)
    return client


def _web_upload(web: Client, project: Any, name: str, archive: Path) -> str:
    with archive.open("rb") as handle:
        response = web.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": name}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("name", WEB_SAMPLE)
def test_web_upload_of_a_zip_bundle_previews_the_fidelity_and_imports(
    name: str, web: Client, project: Any, no_pii_scan: None, tmp_path: Path
) -> None:
    exp = EXPECTED[name]
    page = _web_upload(web, project, name, _zip(name, tmp_path))
    upload = Upload.objects.get()
    previewed = upload.report["fidelity"]
    _assert_matches(name, previewed)
    # The page shows that summary: each count, and each dropped field in its row with its count.
    section = re.search(r'<section class="card" id="fidelity">.*?</section>', page, re.S)
    assert section, "the preview shows no fidelity summary"
    for key in COUNTS:
        assert f"<dd>{exp[key]}</dd>" in section.group(), key
    for field, count in exp["dropped"].items():
        row = f"<tr><td><code>{escape(field)}</code></td><td>{count}</td></tr>"
        assert row in section.group(), f"the preview does not list the dropped field {field!r} {count}"
    response = web.post(
        f"/p/{project.slug}/suites/uploads/{upload.pk}/",
        {
            "action": "confirm",
            "pii_action": "redact",
            "data_source": "promptfoo examples",
            "consent_statement": "ok",
        },
        follow=True,
    )
    assert f"Imported {exp['cases_made']} cases" in response.content.decode()
    # One home: the preview showed exactly the summary the import stored.
    assert SuiteVersion.objects.get(suite__name=name).fidelity == previewed


@pytest.mark.parametrize("name", WEB_REFUSALS)
def test_web_upload_refuses_a_zip_bundle_naming_the_need(
    name: str, web: Client, project: Any, no_pii_scan: None, tmp_path: Path
) -> None:
    page = _web_upload(web, project, name, _zip(name, tmp_path))
    # The page escapes what it shows; compare with the text as the user reads it.
    _refusal_named(name, unescape(page))
    assert not SuiteVersion.objects.exists()
