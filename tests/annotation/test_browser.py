"""Real-browser tests: Playwright driving Debian's Chromium against the live server.

A rater logs in, accepts the terms, rates by mouse and by keyboard, flags a span, skips a task, lets a
lease expire, and never sees which system wrote an output; markup in an output stays text.
Set ANNOTATION_SCREENSHOTS=/some/dir to keep screenshots of the form.
"""

from __future__ import annotations

import os

from annotation.models import Assignment, AssignmentStatus, Rating
from annotation.services import study_create_from_run
from tests.annotation.factories import rater_user, run_rows
from tests.browser import BROWSER, open_page, sign_in, watch

pytestmark = BROWSER
SCREENSHOTS_ENV = "ANNOTATION_SCREENSHOTS"

LONG = "\n".join(
    f"Paragraph {i}: revenue for the segment grew {i} percent while operating margin held at 21 percent."
    for i in range(1, 30)
)


def viewport():
    """A laptop screen by default; ANNOTATION_VIEWPORT=1366x768 tries a smaller one."""
    width, height = (os.environ.get("ANNOTATION_VIEWPORT") or "1440x900").split("x")
    return {"width": int(width), "height": int(height)}


def new_page(browser, live_server, username):
    errors: list[str] = []
    page = open_page(browser, live_server, username, errors, context={"viewport": viewport()}, then="/rate/")
    return page, errors


def accept_terms(page):
    page.click("a.button.primary")
    page.wait_for_selector("#accept")
    page.check("#accept")
    navigate(page, lambda: page.click("button[type=submit].primary"))


def navigate(page, action):
    """Run an action that submits a form and wait until the next page's script is ready."""
    with page.expect_navigation():
        action()
    page.wait_for_selector("html[data-rate-ready]")


def assert_blind_dom(page, secrets):
    html = page.content() + page.url
    leaked = [s for s in secrets if s in html]
    assert not leaked, f"the rendered page reveals {leaked}"


def select_text(page, side, needle):
    """Select `needle` inside output `side` as a mouse drag would."""
    page.evaluate(
        """([side, needle]) => {
            const pre = document.getElementById('text-' + side);
            const node = pre.firstChild; const start = node.textContent.indexOf(needle);
            const range = document.createRange(); range.setStart(node, start); range.setEnd(node, start + needle.length);
            const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }""",
        [side, needle],
    )


def test_rater_rates_by_mouse_and_keyboard_skips_and_stays_blind(browser, live_server, project, shots):
    rows = run_rows(
        project,
        n_cases=4,
        text=lambda key, case, i: (
            (LONG if i == 0 else "")
            + f"\n{'Baseline-ish' if key == 'baseline' else 'Candidate-ish'} summary {i}: revenue rose 4 percent."
        ),
    )
    study_create_from_run(
        run=rows.run,
        name="Earnings summaries",
        overlap=1,
        terms="Ratings are stored under your name.",
        seed=2,
    )
    rater = rater_user(project, "anna")
    page, errors = new_page(browser, live_server, "anna")
    page.screenshot(path=str(shots / "01-home.png"))
    page.click("a.button.primary")
    page.wait_for_selector("#accept")
    page.screenshot(path=str(shots / "02-onboarding.png"), full_page=True)
    page.check("#accept")
    navigate(page, lambda: page.click("button[type=submit].primary"))
    assert_blind_dom(page, rows.secrets())
    page.screenshot(path=str(shots / "03-form-empty.png"))

    # Task 1 by mouse: every scale, a flagged span in B, the preference, a rationale.
    for side in "AB":
        for criterion, value in (("factual_accuracy", 4), ("completeness", 3), ("conciseness", 5)):
            page.click(f"label[for='s-{criterion}-{side}-{value}']")
    select_text(page, "B", "revenue rose 4 percent")
    page.click("button.mark-span[data-side='B']")
    assert page.is_checked("#halluc-B")
    page.click("label[for='pref-A']")
    page.click("#diff-toggle")
    page.fill("#rationale", "A keeps the figures straight.")
    page.screenshot(path=str(shots / "04-form-filled.png"))
    navigate(page, lambda: page.click("#submit-rating"))
    first = Rating.objects.get(rater=rater)
    assert first.scores == {
        "factual_accuracy": {"A": 4, "B": 4},
        "completeness": {"A": 3, "B": 3},
        "conciseness": {"A": 5, "B": 5},
    }
    assert first.preference == "A" and first.rationale == "A keeps the figures straight."
    [span] = first.hallucination["B"]["spans"]
    assert span["text"] == "revenue rose 4 percent"
    assert first.time_on_task_ms > 0 and first.client_time_ms is not None
    assert "1 rated" in page.inner_text("#progress-text")

    # Task 2 by keyboard only: six digits walk the scales, b prefers B, Ctrl+Enter submits.
    page.keyboard.press("4")
    page.keyboard.press("3")
    page.keyboard.press("5")
    page.keyboard.press("2")
    page.keyboard.press("2")
    page.keyboard.press("1")
    page.keyboard.press("b")
    page.screenshot(path=str(shots / "05-form-keyboard.png"))
    navigate(page, lambda: page.keyboard.press("Control+Enter"))
    second = Rating.objects.exclude(pk=first.pk).get(rater=rater)
    assert second.scores == {
        "factual_accuracy": {"A": 4, "B": 2},
        "completeness": {"A": 3, "B": 2},
        "conciseness": {"A": 5, "B": 1},
    }
    assert second.preference == "B"

    # Task 3: skip with a reason, by keyboard.
    page.keyboard.press("s")
    page.keyboard.press("Space")  # the first reason is focused
    page.screenshot(path=str(shots / "06-skip.png"))
    navigate(page, lambda: page.click("#skip-submit"))
    assert Assignment.objects.filter(rater=rater, status=AssignmentStatus.SKIPPED).count() == 1
    assert "Task skipped" in page.inner_text("main")
    assert "2 rated" in page.inner_text("#progress-text")

    # Submitting with a scale missing shows what is left and keeps what was entered.
    page.keyboard.press("5")
    page.click("#submit-rating")
    assert "Still to answer: 6 questions" in page.inner_text("#missing")
    assert page.is_checked("#s-factual_accuracy-A-5")
    page.keyboard.press("?")
    assert page.is_visible("#shortcuts")
    page.screenshot(path=str(shots / "07-missing-and-help.png"))
    assert_blind_dom(page, rows.secrets())
    assert not errors, errors


def test_study_owner_sees_progress_per_rater(browser, live_server, project, lead, shots):
    from annotation.queue import task_assign_next
    from annotation.services import consent_accept, rating_submit
    from tests.annotation.factories import rating_data

    rows = run_rows(project, n_cases=3)
    gold = [{"case": rows.cases[0].key, "preference": "candidate"}]
    study = study_create_from_run(run=rows.run, name="Owner view", overlap=2, gold_rate=0.5, gold_tasks=gold)
    for name in ("eve", "finn"):
        rater = rater_user(project, name)
        consent_accept(study=study, rater=rater)
        while (held := task_assign_next(study=study, rater=rater)) is not None:
            rating_submit(public_id=held.task.public_id, rater=rater, data=rating_data())
    errors: list[str] = []
    page = sign_in(watch(browser.new_context(viewport=viewport()).new_page(), errors), live_server.url, "lead")
    page.goto(f"{live_server.url}/rate/studies/{study.public_id}/")
    text = page.inner_text("main")
    assert "eve" in text and "finn" in text and "2 of 2 tasks" in text
    page.screenshot(path=str(shots / "11-owner.png"), full_page=True)
    assert not errors, errors


def test_lease_expires_and_the_task_comes_back(browser, live_server, project, shots):
    rows = run_rows(project, n_cases=1)
    study = study_create_from_run(run=rows.run, name="Short leases", overlap=1, lease_seconds=2)
    rater_user(project, "ben")
    rater_user(project, "cleo")
    ben, _ = new_page(browser, live_server, "ben")
    accept_terms(ben)
    held_url = ben.url
    ben.wait_for_selector("#lease:has-text('time on this task is up')")
    ben.screenshot(path=str(shots / "08-lease-expired.png"))
    # Ben comes back after his lease ran out: the task is still open, so he gets it back.
    navigate(ben, lambda: ben.goto(f"{live_server.url}/rate/s/{study.public_id}/next/"))
    assert ben.url == held_url
    # His lease runs out again and Cleo takes the task.
    ben.wait_for_selector("#lease:has-text('time on this task is up')")
    cleo, _ = new_page(browser, live_server, "cleo")
    accept_terms(cleo)
    assert cleo.url.endswith(held_url.split("/rate/")[1])
    for page in (cleo, ben):
        page.keyboard.press("4")
        for _ in range(5):
            page.keyboard.press("3")
        page.keyboard.press("t")
    cleo.keyboard.press("Control+Enter")
    cleo.wait_for_selector("text=Nothing left to rate")
    ben.keyboard.press("Control+Enter")
    ben.wait_for_selector("text=another rater has taken it")
    ben.screenshot(path=str(shots / "09-late-submit.png"))
    assert Rating.objects.count() == 1


def test_markup_in_an_output_is_shown_as_text_and_never_runs(browser, live_server, project, shots):
    evil = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2"><b>bold?</b>'
    rows = run_rows(
        project, n_cases=1, text=lambda key, case, i: evil if key == "candidate" else "Plain <i>text</i>."
    )
    study_create_from_run(run=rows.run, name="Markup", overlap=1)
    rater_user(project, "dora")
    page, errors = new_page(browser, live_server, "dora")
    accept_terms(page)
    page.keyboard.press("d")  # redraw through the diff highlighter too
    page.wait_for_timeout(200)
    texts = page.eval_on_selector_all("pre.output", "els => els.map(e => e.textContent)")
    assert any(evil in t for t in texts)
    assert page.evaluate("window.pwned") is None
    assert page.locator("pre.output b").count() == 0 and page.locator("pre.output img").count() == 0
    page.screenshot(path=str(shots / "10-markup.png"))
    assert not [e for e in errors if "pwned" in e]


def test_single_output_task_is_rated_by_keyboard_without_preference(browser, live_server, project, shots):
    rows = run_rows(project, n_cases=1, categories={0: "adversarial"})
    study_create_from_run(run=rows.run, name="Adversarial prompts", overlap=1)
    rater = rater_user(project, "gus")
    page, errors = new_page(browser, live_server, "gus")
    accept_terms(page)
    assert page.locator("pre.output").count() == 1 and page.locator("#preference").count() == 0
    # An adversarial case: was the expected behaviour met (n: no), how severe (3: critical).
    for key in "n3":
        page.keyboard.press(key)
    page.screenshot(path=str(shots / "12-single.png"))
    # The case's other single output is never served to the same rater (one task per case): done.
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left to rate")
    rating = Rating.objects.get(rater=rater)
    assert rating.scores == {"behaviour_met": {"A": 0}, "severity": {"A": 3}}
    assert rating.preference == ""
    assert_blind_dom(page, rows.secrets())
    assert not errors, errors
