"""The report's Judge calibration section in Chromium as a lead, for a routed study with stored
judgements and expert ratings. Set JUDGE_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.cache import caches

from evalhub.reports import services
from tests.browser import BROWSER, open_page
from tests.reports.test_judge_section import RATED, _routed_study

pytestmark = BROWSER
SCREENSHOTS_ENV = "JUDGE_SCREENSHOTS"


def test_the_lead_reads_the_judge_calibration_section(
    browser: Any, live_server: Any, project: Any, lead: Any, shots: Path
) -> None:
    caches[services.REPORT_CACHE].clear()
    rows, _, _ = _routed_study(project)
    errors: list[str] = []
    page = open_page(browser, live_server, lead.username, errors, timeout_ms=60_000)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{rows.run.pk}/report/")
    page.wait_for_selector("#judge-calibration")
    page.wait_for_load_state("networkidle")
    section = page.locator("#judge-calibration")
    text = section.inner_text()
    assert "may not stand in for experts" in page.locator("#judge-statement").inner_text()
    assert "prediction-powered" in text and "used by the gates" in text
    assert f"{2 * RATED} ratings on {RATED} of" in page.locator("#ratings-saved").inner_text()
    assert section.locator("table.judge-table").count() == 2  # all rated pairs, then the audit pairs
    section.scroll_into_view_if_needed()
    section.screenshot(path=str(shots / "judge_calibration.png"))
    page.screenshot(path=str(shots / "report_with_judge.png"), full_page=True)
    assert errors == []
    page.context.close()


def test_the_owner_chooses_a_judge_and_routing_on_the_form_and_sees_the_judging_state(
    browser: Any, live_server: Any, project: Any, lead: Any, shots: Path
) -> None:
    rows, study, _ = _routed_study(project, rate=0)
    errors: list[str] = []
    page = open_page(browser, live_server, lead.username, errors, timeout_ms=60_000)
    page.goto(f"{live_server.url}/rate/studies/{study.public_id}/")
    state = page.locator("#judge-state").inner_text()
    assert "fixture-judge@0123456789abcdef: done, 40 of 40 pairs judged" in state and "applied" in state
    page.screenshot(path=str(shots / "owner_study_judge.png"), full_page=True)
    page.goto(f"{live_server.url}/rate/runs/{rows.run.pk}/new-study/")
    options = page.locator("select[name=judge] option").all_inner_texts()
    assert options[0] == "No judge" and any("(base model)" in o for o in options)
    page.select_option("select[name=routing]", "uncertainty_first")
    page.fill("input[name=name]", "Needs a judge")
    with page.expect_navigation():
        page.click("form.runform button[type=submit]")
    assert "needs a judge" in page.locator("form.runform").inner_text()
    page.screenshot(path=str(shots / "study_form_judge.png"), full_page=True)
    assert errors == []
    page.context.close()
