"""The report as the lead reads it in Chromium: people's adversarial verdicts beside the checks and the
table of outputs where they disagree; and the friendly refusal a rater gets for a lead's page.
Set ANNOTATION_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

from tests.annotation.factories import rater_user
from tests.annotation.test_adversarial import _adversarial_study, _checks, _rate_all, _verdict
from tests.browser import BROWSER, PASSWORD, open_page

pytestmark = BROWSER
SCREENSHOTS_ENV = "ANNOTATION_SCREENSHOTS"


def test_the_lead_reads_where_raters_and_checks_disagree(browser, live_server, project, lead, shots):
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
    page = open_page(browser, live_server, lead.username, errors)
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


def test_a_rater_gets_a_page_of_the_site_for_a_leads_page(browser, live_server, project, shots):
    rater_user(project, "nosy")
    errors: list[str] = []
    page = open_page(browser, live_server, "nosy", errors)
    response = page.goto(f"{live_server.url}/accounts/tokens/")
    assert response.status == 403
    assert page.is_visible("text=This page is not available to you")
    page.click("text=Go to your rating studies")
    page.wait_for_url(f"{live_server.url}/rate/")
    page.goto(f"{live_server.url}/p/{project.slug}/runs/")
    page.screenshot(path=str(shots / "rf-08-rater-refused.png"))
    assert page.is_visible("text=Go to your rating studies")
