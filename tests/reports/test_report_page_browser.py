"""The report pages in Chromium as a lead: the first visit's building page polls and opens the
report by itself; the trend and a frozen verdict render. Set REPORT_SCREENSHOTS=/some/dir to keep
the screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.cache import caches

from evalhub.reports import services
from tests.browser import BROWSER, open_page
from tests.reports.factories import build_full_run

pytestmark = BROWSER
SCREENSHOTS_ENV = "REPORT_SCREENSHOTS"


def test_the_lead_waits_on_the_building_page_then_reads_the_report_trend_and_verdict(
    browser: Any, live_server: Any, project: Any, lead: Any, shots: Path
) -> None:
    caches[services.REPORT_CACHE].clear()
    built = build_full_run(project)
    errors: list[str] = []
    page = open_page(browser, live_server, lead.username, errors, timeout_ms=60_000)

    # The first visit answers with the building page; its script polls state.json (which builds the
    # report, in process here) and reloads into the report.
    base = f"{live_server.url}/p/{project.slug}/runs/{built.run.pk}/report/"
    page.goto(base)
    assert page.locator("#report-building").count() == 1 or page.locator("#decision").count() == 1
    page.wait_for_selector("#decision")
    page.wait_for_load_state("networkidle")
    assert page.locator("#why").inner_text().startswith(page.locator("#decision").inner_text())
    heatmap = page.locator("img[src*='plot/slices.png']")
    assert heatmap.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(shots / "report.png"), full_page=True)

    # Cached now: the next visit is the report straight away.
    page.goto(base)
    assert page.locator("#decision").count() == 1 and page.locator("#report-building").count() == 0

    page.goto(f"{live_server.url}/p/{project.slug}/trend/")
    page.wait_for_load_state("networkidle")
    assert page.locator("img.trend").evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(shots / "trend.png"), full_page=True)

    page.goto(base)
    page.click("details.freeze summary")  # Freeze asks for confirmation first
    with page.expect_navigation():
        page.click("form[action*='/freeze'] button")
    page.wait_for_selector("#decision")
    page.screenshot(path=str(shots / "verdict.png"), full_page=True)
    assert errors == []
    page.context.close()
