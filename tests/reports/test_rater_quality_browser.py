"""The report's rater quality section in Chromium: a lead sees each rater's flags with the reason,
clicks once to re-run the report without the flagged raters, and reads who was left out.
Set REPORT_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Rating
from tests.reports.factories import build_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]

# Playwright's sync API runs an event loop in this thread; the ORM calls between page actions are
# plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _login(browser: Any, live_server: Any, username: str) -> tuple[Any, list[str]]:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page, errors


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

    page, errors = _login(browser, live_server, lead.username)
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
    page, errors = _login(browser, live_server, engineer.username)
    page.goto(url)
    page.locator("#rater-quality").wait_for()
    page.screenshot(path=str(shots / "rater-quality-engineer.png"), full_page=True)
    assert errors == []
