"""Real Chromium through Playwright: upload the fixture CSV and a hostile file through the pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalhub.suites.models import SuiteVersion
from tests.browser import needs_chromium, sign_in, watch
from tests.conftest import FIXTURE_SUITES
from tests.suites.conftest import HOSTILE

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]


@pytest.fixture
def browser_page(browser: Any) -> Any:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.console_errors = []  # type: ignore[attr-defined]
    watch(page, page.console_errors)  # type: ignore[attr-defined]
    yield page
    page.context.close()


def test_upload_fixture_csv_and_hostile_file_in_the_browser(
    live_server: Any, project: Any, engineer: Any, browser_page: Any, settings: Any
) -> None:
    settings.EVALHUB_SUITE_PII_SCAN = False  # the PII paths have their own tests; this one is about the pages
    page = browser_page
    sign_in(page, live_server.url, "engineer")
    page.goto(f"{live_server.url}/p/{project.slug}/suites/")
    page.click("text=Upload a suite")
    page.wait_for_load_state()
    page.set_input_files("#id_file", str(FIXTURE_SUITES / "summaries.csv"))
    # Filled in from the file name by upload.js (on change, or on load for a file chosen before it ran).
    page.wait_for_function("document.getElementById('id_name').value === 'summaries'", timeout=10_000)
    page.click("button:has-text('Check the file')")
    page.wait_for_load_state()
    assert "All 300 rows are valid" in page.inner_text("#status")
    page.fill("#id_data_source", "fixture generator")
    page.click("button:has-text('Import as the next version')")
    page.wait_for_load_state()
    assert "Imported 300 cases as version 1." in page.content()
    assert SuiteVersion.objects.get().case_count == 300

    page.goto(f"{live_server.url}/p/{project.slug}/suites/upload/")
    page.set_input_files("#id_file", str(HOSTILE / "html_script.csv"))
    page.fill("#id_name", "hostile")
    page.click("button:has-text('Check the file')")
    page.wait_for_load_state()
    problems = page.inner_text("#problems")
    assert "origin must be real or synthetic, not '<script>alert(1)</script>'" in problems
    # Shown as text: no element was created from the file's markup.
    assert page.locator("#problems script").count() == 0
    assert page.locator("img[src=x]").count() == 0 and page.locator("iframe").count() == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.inner_html("#problems")
    page.click("button:has-text('Import as the next version')")
    page.wait_for_load_state()
    # The refusal comes back as a message on the re-rendered preview (evalhub/web.py message_errors).
    assert "nothing was imported" in page.inner_text("ul.messages")
    assert SuiteVersion.objects.count() == 1
    # No script or style was blocked by the CSP (the favicon 404 is not ours).
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []


def test_a_promptfoo_bundle_is_previewed_with_its_fidelity_and_its_pending_checks_shown(
    live_server: Any, project: Any, engineer: Any, lead: Any, browser_page: Any, settings: Any, tmp_path: Path,
    shots: Path,
) -> None:
    """Upload a .tar.gz bundle through the form; the preview lists what was not used; the version
    page shows the fidelity and the pending checks, to the engineer and to the lead."""
    import tarfile

    from tests.suites.conftest import GOOD

    settings.EVALHUB_SUITE_PII_SCAN = False
    bundle = tmp_path / "translate.tar.gz"
    with tarfile.open(bundle, "w:gz") as archive:
        for path in sorted((GOOD / "pf_translate").rglob("*")):
            archive.add(path, str(path.relative_to(GOOD / "pf_translate")), recursive=False)
    page = browser_page
    sign_in(page, live_server.url, "engineer")
    page.goto(f"{live_server.url}/p/{project.slug}/suites/upload/")
    page.screenshot(path=str(shots / "promptfoo-upload-form.png"), full_page=True)
    page.set_input_files("#id_file", str(bundle))
    assert page.input_value("#id_name") == "translate"  # upload.js takes off .tar.gz whole
    page.click("button:has-text('Check the file')")
    page.wait_for_load_state()
    assert "All 4 rows are valid" in page.inner_text("#status")
    fidelity = page.inner_text("#fidelity")
    assert "Tests read\n2" in fidelity and "Assertions kept pending\n2" in fidelity
    assert "providers\t1" in page.inner_text("#dropped")
    page.screenshot(path=str(shots / "promptfoo-preview-engineer.png"), full_page=True)
    page.fill("#id_data_source", "our translation examples")
    page.click("button:has-text('Import as the next version')")
    page.wait_for_load_state()
    assert "Imported 4 cases as version 1." in page.content()
    assert page.locator("code.pending").count() == 2
    assert "pending: llm-rubric" in page.inner_text("code.pending >> nth=0")
    page.screenshot(path=str(shots / "promptfoo-version-engineer.png"), full_page=True)
    assert page.console_errors == []  # type: ignore[attr-defined]

    page.context.clear_cookies()
    sign_in(page, live_server.url, "lead")
    version = SuiteVersion.objects.get()
    page.goto(f"{live_server.url}/p/{project.slug}/suites/{version.suite_id}/")
    assert "promptfoo fidelity" in page.content() and page.locator("code.pending").count() == 2
    page.screenshot(path=str(shots / "promptfoo-version-lead.png"), full_page=True)
