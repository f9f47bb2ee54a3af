"""The run page in Chromium: the progress card follows the run through the API with no inline script."""

from __future__ import annotations

import pytest

from evalhub.runs.models import Run, RunStatus
from evalhub.runs.services import run_cancel, run_create
from tests.browser import BROWSER, sign_in, watch

pytestmark = [*BROWSER, pytest.mark.usefixtures("no_completion_hooks")]


def test_the_progress_card_updates_until_the_run_ends(
    browser, live_server, project, tiny, suite_version, engineer
):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])
    errors: list[str] = []
    page = watch(browser.new_page(), errors)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/progress/") else None)
    sign_in(page, live_server.url, "engineer", then="/")

    page.goto(f"{live_server.url}/p/{project.slug}/runs/{run.pk}/")
    assert page.text_content('[data-field="status"]') == "pending"
    page.wait_for_timeout(2500)  # let one poll go out while the run is still pending
    run_cancel(run=Run.objects.get(pk=run.pk))
    page.wait_for_selector("text=Resume")  # the poller saw the end and reloaded the page
    assert page.text_content('[data-field="status"]') == "cancelled"
    assert polls and not errors, errors
    page.context.close()
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
