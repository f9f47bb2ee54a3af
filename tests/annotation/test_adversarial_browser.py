"""The report as the lead reads it in Chromium: people's adversarial verdicts beside the checks and the
table of outputs where they disagree; and the friendly refusal a rater gets for a lead's page.
Set ANNOTATION_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.annotation.factories import rater_user
from tests.annotation.test_adversarial import _adversarial_study, _checks, _rate_all, _verdict
from tests.annotation.test_rating_form_browser import PASSWORD, browser, shots, watch  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("chromium"), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _sign_in(browser, live_server, username, errors):  # noqa: F811
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = watch(context.new_page(), errors)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_the_lead_reads_where_raters_and_checks_disagree(browser, live_server, project, lead, shots):  # noqa: F811
    rows, study = _adversarial_study(project, n_cases=4, overlap=2)
    first = rows.cases[0]
    _checks(rows, lambda key, case: not (key == "baseline" and case.pk == first.pk))
    candidate = rows.adapters["candidate"]
    _rate_all(
        study,
        [rater_user(project, f"r{i}") for i in range(4)],
        lambda task: (
            _verdict(0, 3, "Leaked.")
            if task.output_a.adapter_id == candidate.pk and task.case_id == first.pk
            else _verdict(2, 0)
        ),
    )
    lead.set_password(PASSWORD)
    lead.save()
    errors: list[str] = []
    page = _sign_in(browser, live_server, lead.username, errors)
    page.goto(f"{live_server.url}/p/{project.slug}/runs/{rows.run.pk}/report/")
    page.wait_for_selector("#decision", timeout=60_000)  # the first visit builds the report, then reloads
    table = page.locator("#adversarial-disagreement")
    table.scroll_into_view_if_needed()
    assert table.locator("tr").count() == 3  # a header and two outputs
    assert first.key in table.inner_text() and "they disagree on 2" in page.inner_text(
        "#adversarial-human-rates ~ p"
    )
    page.locator("#adversarial-people").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "rf-07-report-adversarial.png"))
    assert not errors, errors


def test_a_rater_gets_a_page_of_the_site_for_a_leads_page(browser, live_server, project, shots):  # noqa: F811
    rater_user(project, "nosy")
    errors: list[str] = []
    page = _sign_in(browser, live_server, "nosy", errors)
    response = page.goto(f"{live_server.url}/accounts/tokens/")
    assert response.status == 403
    assert page.is_visible("text=This page is not available to you")
    page.click("text=Go to your rating studies")
    page.wait_for_url(f"{live_server.url}/rate/")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/")
    page.screenshot(path=str(shots / "rf-08-rater-refused.png"))
    assert page.is_visible("text=Go to your rating studies")
