"""Every hostile file gives a clear problem and stores nothing, the same through the service, API and CLI."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from evalhub.errors import ValidationFailed
from evalhub.suites.models import Case, Suite, SuiteVersion
from evalhub.suites.services import suite_import_file
from tests.suites.conftest import (
    HOSTILE,
    HOSTILE_EXPECTATIONS,
    HOSTILE_IMPORTS,
    assert_no_internals,
    files_under,
    hostile_named,
)

pytestmark = pytest.mark.django_db

FILES = sorted(HOSTILE_EXPECTATIONS)


@pytest.fixture(autouse=True)
def own_media_root(settings: Any, tmp_path: Path) -> Path:
    """Each test stages into its own folder, so a file left behind is seen."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALHUB_SCRATCH_DIR = tmp_path / "scratch"
    return settings.MEDIA_ROOT


def staged_files(media: Path) -> list[Path]:
    return files_under(media, media.parent / "scratch")


def nothing_stored() -> None:
    assert Suite.objects.count() == 0
    assert SuiteVersion.objects.count() == 0
    assert Case.objects.count() == 0


def answered(api: Any, response: Any) -> tuple[int, dict[str, Any]]:
    """The status and body of an upload's answer: a file over the sandbox threshold is read by a task
    (202), so its answer is the upload's status once the task has run."""
    if response.status_code != 202:
        return response.status_code, response.json()
    status = api.get(response.json()["url"]).json()
    assert status["status"] in ("failed", "checked"), status
    if status["status"] == "checked":
        return 200, status["report"]
    return 400, {"error": status["error"]}


def problem_texts(fields: dict[str, Any]) -> str:
    return "\n".join(str(p["problem"]) for p in fields.get("rows", []))


def test_every_hostile_file_has_an_expectation() -> None:
    assert sorted(p.name for p in HOSTILE.iterdir()) == sorted([*FILES, *HOSTILE_IMPORTS])


@pytest.mark.parametrize("name", sorted(HOSTILE_IMPORTS))
def test_hostile_files_that_are_really_suites_import_every_row(
    project: Any, name: str, no_pii_scan: None
) -> None:
    version = suite_import_file(project=project, name="h", path=HOSTILE / name)
    assert version.case_count == HOSTILE_IMPORTS[name]


@pytest.mark.parametrize("name", FILES)
def test_service_refuses_hostile_file_and_stores_nothing(project: Any, name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        suite_import_file(project=project, name="hostile", path=HOSTILE / name)
    assert hostile_named(name, problem_texts(caught.value.fields))
    assert caught.value.fields["rows"][0]["row"] is None or caught.value.fields["rows"][0]["row"] >= 1
    assert_no_internals(str(caught.value), caught.value.fields)
    nothing_stored()


@pytest.mark.parametrize("name", FILES)
def test_api_refuses_hostile_file_with_row_problems(
    api: Any, project: Any, name: str, own_media_root: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), (HOSTILE / name).open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "hostile", "file": handle},
            format="multipart",
        )
    code, body = answered(api, response)
    assert code == 400, response.content[:500]
    error = body["error"]
    assert error["code"] == "invalid"
    assert hostile_named(name, problem_texts(error["fields"]))
    assert set(error["fields"]["rows"][0]) >= {"row", "column", "problem"}
    assert_no_internals(response.content.decode())
    assert staged_files(own_media_root) == []
    nothing_stored()


@pytest.mark.parametrize("name", FILES)
def test_cli_refuses_hostile_file_and_prints_problems(project: Any, name: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_suite", str(HOSTILE / name), project=project.slug, name="hostile", stdout=StringIO()
        )
    message = str(caught.value)
    assert hostile_named(name, message)
    assert "Nothing was stored." in message
    assert_no_internals(message.replace(str(HOSTILE), "<data>"))  # the CLI names the user's own file
    nothing_stored()


@pytest.mark.parametrize("name", FILES)
def test_web_upload_of_hostile_file_shows_its_problems_and_never_fails(
    engineer: Any, project: Any, name: str, django_capture_on_commit_callbacks: Any
) -> None:
    from django.test import Client

    client = Client()
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=True), (HOSTILE / name).open("rb") as handle:
        response = client.post(f"/p/{project.slug}/suites/upload/", {"file": handle, "name": "hostile"})
    if response.status_code == 302:  # staged, or read by a task (over the sandbox threshold)
        response = client.get(response["Location"])
    assert response.status_code == 200
    page = response.content.decode()
    assert_no_internals(page.split("<main", 1)[-1])
    nothing_stored()


@pytest.mark.parametrize("name", FILES)
def test_api_dry_run_of_hostile_file_never_fails(
    api: Any, project: Any, name: str, own_media_root: Path, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), (HOSTILE / name).open("rb") as handle:
        response = api.post(
            "/api/v1/suites/upload/",
            {"project": project.slug, "name": "hostile", "file": handle, "dry_run": "true"},
            format="multipart",
        )
    code, body = answered(api, response)
    assert code == 200
    assert hostile_named(name, problem_texts({"rows": body["problems"]}))
    assert_no_internals(response.content.decode())
    assert staged_files(own_media_root) == []


def test_only_valid_rows_never_overrides_a_file_level_problem(project: Any) -> None:
    with pytest.raises(ValidationFailed):
        suite_import_file(
            project=project, name="h", path=HOSTILE / "malformed_quotes.csv", only_valid_rows=True
        )
    nothing_stored()
