"""Staff read the stored judgements in the admin, in a real browser: both orders, the unparseable one as
such, nothing editable. Set JUDGING_SCREENSHOTS=/some/dir to keep the screenshots."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from evalhub.judging.logprob import OrderJudgement
from evalhub.judging.services import judgements_record
from tests.browser import BROWSER, PASSWORD, sign_in, watch
from tests.judging.test_logprob_judge import FAITHFUL, WRONG, _task

pytestmark = BROWSER
SCREENSHOTS_ENV = "JUDGING_SCREENSHOTS"


def test_staff_see_both_orders_of_a_judgement_read_only(browser, live_server, shots):
    get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)
    task = _task(FAITHFUL, WRONG)
    judgements_record(
        task=task,
        judge_name="base",
        judge_version="0123456789abcdef",
        results=[
            OrderJudgement("ab", "prompt ab", '{"logprob_A": -0.2, "logprob_B": -1.9}', "A", 0.845, 12.5),
            OrderJudgement(
                "ba", "prompt ba", '{"logprob_A": -9.0, "logprob_B": -9.5}', "unparseable", None, 11.0
            ),
        ],
    )
    errors: list[str] = []
    page = watch(browser.new_page(viewport={"width": 1280, "height": 800}), errors)
    sign_in(
        page, live_server.url, "staff", login_path="/admin/login/?next=/admin/judging/judgement/",
        submit="input[type=submit]",
    )
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    text = page.locator("#result_list").inner_text()
    assert "Unparseable answer" in text and "Output A" in text and "0.845" in text
    page.screenshot(path=str(shots / "judgement_list.png"), full_page=True)

    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_selector("#content")
    assert page.locator("input[name=_save]").count() == 0  # read-only: nothing to save
    page.screenshot(path=str(shots / "judgement_detail.png"), full_page=True)
    page.context.close()
    assert not errors, errors
