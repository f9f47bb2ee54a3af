"""The run page in Chromium: the progress card follows the run through the API with no inline script."""

from __future__ import annotations

import os
import shutil

import pytest

from evalhub.runs.models import Run, RunStatus
from evalhub.runs.services import run_cancel, run_create

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_completion_hooks"),
    pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)"),
]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def test_the_progress_card_updates_until_the_run_ends(live_server, project, tiny, suite_version, engineer):
    from playwright.sync_api import sync_playwright

    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text else None)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/progress/") else None)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "engineer")
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

        page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
        assert page.text_content('[data-field="status"]') == "pending"
        page.wait_for_timeout(2500)  # let one poll go out while the run is still pending
        run_cancel(run=Run.objects.get(pk=run.pk))
        page.wait_for_selector("text=Resume")  # the poller saw the end and reloaded the page
        assert page.text_content('[data-field="status"]') == "cancelled"
        assert polls and not errors, errors
        browser.close()
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
