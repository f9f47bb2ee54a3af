"""The report's rater quality section in Chromium: a lead sees each rater's flags with the reason,
clicks once to re-run the report without the flagged raters, and reads who was left out.
Set REPORT_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotation.models import Rating
from tests.browser import BROWSER, open_page
from tests.reports.factories import build_run

pytestmark = BROWSER
SCREENSHOTS_ENV = "REPORT_SCREENSHOTS"


def test_a_lead_reruns_the_report_without_flagged_raters(
    browser: Any, live_server: Any, project: Any, lead: Any, engineer: Any, shots: Path
) -> None:
    built = build_run(
        project,
        n_cases=16,
        n_raters=3,
        gold_cases=3,
        gold_right=lambda r: r != 1,
        preference=lambda i, r: "candidate" if r == 2 and i % 4 else "baseline",
    )
    Rating.objects.filter(rater=built.raters[0]).update(time_on_task_ms=1500)
    fast, wrong, good = (u.username for u in built.raters)
    url = f"{live_server.url}/p/{project.slug}/runs/{built.run.pk}/report/"

    errors: list[str] = []
    page = open_page(browser, live_server, lead.username, errors, timeout_ms=30_000)
    page.goto(url)
    card = page.locator("#rater-quality")
    card.wait_for()
    assert "too fast: 19 of 19 ratings (100%) took under 5 s" in card.inner_text()
    assert "failed gold: 0 of 3 gold tasks right" in card.inner_text()
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "rater-quality-lead.png"), full_page=True)
    card.screenshot(path=str(shots / "rater-quality-card.png"))

    with page.expect_navigation():
        page.click("#exclude-flagged")
    assert "exclude_flagged=1" in page.url
    banner = page.locator("#raters-excluded")
    assert f"Flagged raters excluded: {fast}, {wrong}." in banner.inner_text()
    assert "(excluded)" in page.locator("#rater-quality").inner_text()
    assert good in page.locator("#rater-quality").inner_text()
    page.screenshot(path=str(shots / "rater-quality-excluded.png"), full_page=True)
    page.locator("#rater-quality").screenshot(path=str(shots / "rater-quality-excluded-card.png"))

    # Changing another parameter keeps the exclusion (the form carries it).
    page.fill("#min_seconds", "1")
    with page.expect_navigation():
        page.click("form.report-form button[type=submit]")
    assert "exclude_flagged=1" in page.url and "min_seconds=1" in page.url
    assert f"Flagged raters excluded: {wrong}." in page.locator("#raters-excluded").inner_text()

    with page.expect_navigation():
        page.click("#raters-excluded a")
    assert page.locator("#raters-excluded").count() == 0
    assert errors == []

    # An engineer reads the same report.
    errors = []
    page = open_page(browser, live_server, engineer.username, errors, timeout_ms=30_000)
    page.goto(url)
    page.locator("#rater-quality").wait_for()
    page.screenshot(path=str(shots / "rater-quality-engineer.png"), full_page=True)
    assert errors == []
