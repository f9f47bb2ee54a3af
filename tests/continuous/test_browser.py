"""Real-browser check of the new pages as a lead and as an engineer: the recipe form (with a refusal shown
on the field), the adapter timeline, the delivery log, and the approve button on a GO verdict.
Set CONTINUOUS_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evalhub.continuous.models import Delivery, DeliveryStatus
from tests.continuous.test_approval_and_pages import _verdict

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium"),
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _login(browser, live_server, username):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_recipe_timeline_log_and_approval_in_a_browser(browser, live_server, project, lead, engineer, suite_version, tmp_path):
    shots = Path(os.environ.get("CONTINUOUS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    verdict = _verdict(project, "GO")
    Delivery.objects.create(project=project, event="run.failed", channel="webhook", target="https://hooks.example.com/x",
                            subject="Run 12 failed", payload={}, status=DeliveryStatus.FAILED, attempts=5,
                            error="HTTP 502")
    Delivery.objects.create(project=project, event="verdict.ready", channel="email", target="ops@example.com",
                            subject="Verdict on cand-GO@1: GO", payload={}, status=DeliveryStatus.SENT, attempts=1)

    page = _login(browser, live_server, "engineer")
    page.goto(f"{live_server.url}/p/{project.slug}/continuous/")
    page.fill("#id_suites", "ghost-suite")
    page.select_option("#id_baseline_rule", "parent")
    page.check("#id_open_study")
    page.click("#recipe button[type=submit]")
    assert "No suite named" in page.inner_text("#recipe")
    page.screenshot(path=str(shots / "recipe-refused-engineer.png"), full_page=True)
    page.fill("#id_suites", "tiny-suite")
    page.click("#recipe button[type=submit]")
    page.wait_for_load_state()
    assert "Recipe saved" in page.content()
    page.screenshot(path=str(shots / "recipe-saved-engineer.png"), full_page=True)
    page.goto(f"{live_server.url}/p/{project.slug}/verdicts/{verdict.public_id}/")
    assert page.locator("#approval button").count() == 0  # engineers do not approve
    page.goto(f"{live_server.url}/p/{project.slug}/continuous/deliveries/")
    assert "HTTP 502" in page.inner_text("body")
    page.screenshot(path=str(shots / "deliveries-engineer.png"), full_page=True)
    page.close()

    page = _login(browser, live_server, "lead")
    page.goto(f"{live_server.url}/p/{project.slug}/verdicts/{verdict.public_id}/")
    page.screenshot(path=str(shots / "verdict-go-lead.png"), full_page=True)
    page.click("#approval button")
    page.wait_for_load_state()
    assert "approved" in page.inner_text("#approval").lower()
    page.screenshot(path=str(shots / "verdict-approved-lead.png"), full_page=True)
    page.click("#approval a")
    page.wait_for_load_state()
    assert "Approved" in page.inner_text("table.timeline")
    page.screenshot(path=str(shots / "timeline-lead.png"), full_page=True)
    page.close()
