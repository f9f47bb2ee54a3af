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
