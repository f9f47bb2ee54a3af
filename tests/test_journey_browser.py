"""The whole loop in Chromium, across roles, with no API call and no Django admin (issue #17, Deliver 7).

An admin adds a rater from Members (she sets her password from the emailed link); an engineer uploads a
suite, starts a run on the fixture model and creates a blinded study from the run page; two raters rate,
one by keyboard only and one on a 390 px phone screen; the lead reads the report and freezes a verdict;
the admin finds every step in the audit trail. Any console error, page error, failed request or HTTP
error fails the test. Every page is screenshotted with its load time beside it (timings.json and
timings.txt) in EVALHUB_SCREENSHOTS or a temporary folder, whose path is printed.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Rating, Study
from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, user_create
from evalhub.audit.models import AuditEvent
from evalhub.reports.models import Verdict
from evalhub.runs.models import Run, RunStatus
from tests.browser import BROWSER, PASSWORD, sign_in, watch
from tests.conftest import FIXTURE_SUITES

pytestmark = BROWSER
N_CASES = 4
CRITERIA = ("factual_accuracy", "completeness", "conciseness")


@dataclass
class Journey:
    """Screenshots, load times and every browser-side failure, across all the roles' pages."""

    folder: Path
    shots: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def watch(self, page: Any, role: str) -> Any:
        watch(page, self.failures, timeout_ms=30_000, label=role, strict=True)
        page.set_default_navigation_timeout(180_000)  # the run generates inside the engineer's request
        return page

    def snap(self, page: Any, role: str, name: str) -> None:
        """Screenshot the page as it is now, with the load time of the document it shows."""
        page.wait_for_load_state("load")
        timing = page.evaluate(
            """() => { const n = performance.getEntriesByType('navigation')[0];
                       return n ? {load: n.loadEventEnd - n.startTime, ttfb: n.responseStart - n.startTime} : null; }"""
        )
        shot = f"{len(self.shots) + 1:02d}-{role}-{name}.png"
        page.screenshot(path=str(self.folder / shot), full_page=True)
        self.shots.append({
            "screenshot": shot,
            "role": role,
            "url": page.url,
            "load_ms": round(timing["load"]) if timing else None,
            "server_ms": round(timing["ttfb"]) if timing else None,
        })

    def write(self) -> None:
        (self.folder / "timings.json").write_text(json.dumps(self.shots, indent=2))
        lines = [f"{s['screenshot']:<40} load {s['load_ms']:>6} ms  (first byte {s['server_ms']} ms)  {s['url']}"
                 for s in self.shots]
        (self.folder / "timings.txt").write_text("\n".join(lines) + "\n")
        print(f"\nJourney screenshots and load times: {self.folder}")


@pytest.fixture
def journey(shots: Path) -> Journey:
    return Journey(folder=shots)


@pytest.fixture
def people(project: Any) -> dict[str, Any]:
    """Who takes part, besides the rater the admin adds in the browser."""
    made = {}
    for username, role in (("padmin", Role.ADMIN), ("engineer", Role.ENGINEER), ("lead", Role.LEAD),
                           ("raj", Role.RATER)):
        made[username] = user_create(username=username, password=PASSWORD)
        membership_set(project=project, user=made[username], role=role)
    return made


def small_suite(tmp_path: Path) -> Path:
    """The first cases of the fixture summaries suite, as a user's own CSV."""
    with (FIXTURE_SUITES / "summaries.csv").open(newline="") as source:
        rows = list(csv.reader(source))
    path = tmp_path / "journey-summaries.csv"
    with path.open("w", newline="") as out:
        csv.writer(out).writerows(rows[: N_CASES + 1])
    return path


def focus_by_tab(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until `selector` has the focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def engineer_steps(page: Any, base: str, slug: str, journey: Journey, suite_csv: Path) -> int:
    sign_in(page, base, "engineer")
    journey.snap(page, "engineer", "dashboard")
    page.goto(f"{base}/p/{slug}/suites/")
    with page.expect_navigation():
        page.click("text=Upload a suite")
    page.set_input_files("#id_file", str(suite_csv))
    page.fill("#id_name", "journey-summaries")
    journey.snap(page, "engineer", "upload")
    with page.expect_navigation():
        page.click("button:has-text('Check the file')")
    assert f"All {N_CASES} rows are valid" in page.inner_text("#status")
    journey.snap(page, "engineer", "upload-preview")
    page.fill("#id_data_source", "first rows of the fixture summaries")
    with page.expect_navigation():
        page.click("button:has-text('Import as the next version')")
    assert f"Imported {N_CASES} cases as version 1." in page.content()
    journey.snap(page, "engineer", "suite-imported")

    page.goto(f"{base}/p/{slug}/runs/")
    with page.expect_navigation():
        page.click(f"a[href='/p/{slug}/runs/new/']")
    # One suite and one base model: the form starts from them.
    assert page.eval_on_selector("#id_suite_version", "s => s.selectedOptions[0].textContent").startswith("journey")
    assert page.eval_on_selector("#id_base_model", "s => s.value") != ""
    page.check("label:has-text('summariser@2') input")
    page.select_option("#id_baseline", label="summariser@1")
    page.fill("#id_max_new_tokens", "24")
    page.fill("#id_name", "Journey run")
    journey.snap(page, "engineer", "run-form")
    # Without a broker the run generates inside this request (the embedded default): allow it minutes.
    with page.expect_navigation(timeout=300_000):
        page.click("button:has-text('Start the run')", no_wait_after=True)
    assert re.search(r"/runs/\d+/$", page.url), page.url
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.wait_for_selector('[data-field="status"]:has-text("completed")')
    # Scores per adapter with intervals, from the scoring that ran when the run completed.
    assert page.locator("#run-scores tr[data-metric='rougeL'] td").count() == 2
    journey.snap(page, "engineer", "run-page")

    with page.expect_navigation():
        page.click("text=Create a blinded study from this run")
    page.fill("#id_name", "Which summary would you send to a reader?")
    page.fill("#id_instructions", "Check every figure against the notes. Prefer the summary a busy reader can trust.")
    page.fill("#id_terms", "Ratings are stored under your username and used to decide which system ships.")
    journey.snap(page, "engineer", "study-form")
    with page.expect_navigation():
        page.click("button:has-text('Create the study')")
    assert "/rate/studies/" in page.url, page.inner_text("main")
    journey.snap(page, "engineer", "study-owner-page")
    page.goto(f"{base}/p/{slug}/runs/{run_id}/")
    assert "Which summary would you send to a reader?" in page.inner_text("main")
    return run_id


def admin_adds_rita(page: Any, base: str, slug: str, journey: Journey, mailoutbox: list[Any]) -> str:
    sign_in(page, base, "padmin")
    journey.snap(page, "admin", "dashboard")
    with page.expect_navigation():
        page.click("main a:has-text('Members')")
    page.fill("#id_username", "rita")
    page.fill("#id_email", "rita@example.org")
    page.select_option("#id_role", Role.RATER)
    with page.expect_navigation():
        page.click("button:has-text('Add or save')")
    assert "set-password link was emailed to rita@example.org" in page.inner_text("main")
    journey.snap(page, "admin", "members-invited")
    [mail] = mailoutbox
    return re.search(r"https?://\S+/accounts/set-password/\S+", mail.body).group(0)


def rita_sets_her_password(page: Any, link: str, journey: Journey) -> None:
    page.goto(link)
    page.wait_for_selector("#id_new_password1")
    journey.snap(page, "rita", "set-password")
    page.fill("#id_new_password1", "rita-rates-summaries")
    page.fill("#id_new_password2", "rita-rates-summaries")
    with page.expect_navigation():
        page.click("button:has-text('Set my password')")
    assert "Password set" in page.inner_text("main")


def rate_by_keyboard(page: Any, base: str, journey: Journey) -> int:
    """Rita: log in, start, accept the terms and rate every task without touching the mouse."""
    page.goto(f"{base}/accounts/login/")
    page.focus("#id_username")
    page.keyboard.type("rita")
    page.keyboard.press("Tab")
    page.keyboard.type("rita-rates-summaries")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    journey.snap(page, "rita", "rating-home")
    focus_by_tab(page, "a.button.primary")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    journey.snap(page, "rita", "onboarding")
    focus_by_tab(page, "#accept")
    page.keyboard.press("Space")
    focus_by_tab(page, "button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rated = 0
    while page.locator("#submit-rating").count():
        page.wait_for_selector("html[data-rate-ready]")
        for key in ("4", "3", "5", "3", "4", "4"):  # A's three scales, then B's
            page.keyboard.press(key)
        page.keyboard.press("a" if rated % 2 == 0 else "b")
        if rated == 0:
            journey.snap(page, "rita", "task-keyboard")
        with page.expect_navigation():
            page.keyboard.press("Control+Enter")
        rated += 1
        assert rated <= N_CASES, "served more tasks than cases"
    assert "Nothing left to rate" in page.inner_text("main")
    journey.snap(page, "rita", "done")
    return rated


def rate_on_a_phone(page: Any, base: str, journey: Journey) -> int:
    """Raj on a 390 px touch screen: taps only."""
    sign_in(page, base, "raj")
    journey.snap(page, "raj", "rating-home")
    with page.expect_navigation():
        page.tap("a.button.primary")
    page.tap("label[for=accept]")
    journey.snap(page, "raj", "onboarding")
    with page.expect_navigation():
        page.tap("button[type=submit].primary")
    rated = 0
    while page.locator("#submit-rating").count():
        page.wait_for_selector("html[data-rate-ready]")
        for side in "AB":
            for criterion, value in zip(CRITERIA, (3, 4, 4) if side == "A" else (4, 3, 5), strict=True):
                page.tap(f"label[for='s-{criterion}-{side}-{value}']")
        page.tap("label[for='pref-B']" if rated % 2 == 0 else "label[for='pref-tie']")
        if rated == 0:
            journey.snap(page, "raj", "task-phone")
        with page.expect_navigation():
            page.tap("#submit-rating")
        rated += 1
        assert rated <= N_CASES, "served more tasks than cases"
    assert "Nothing left to rate" in page.inner_text("main")
    journey.snap(page, "raj", "done")
    return rated


def lead_freezes(page: Any, base: str, slug: str, run_id: int, journey: Journey) -> None:
    sign_in(page, base, "lead")
    page.goto(f"{base}/p/{slug}/runs/")
    with page.expect_navigation():
        page.click(f"a[href='/p/{slug}/runs/{run_id}/']")
    journey.snap(page, "lead", "run-page")
    with page.expect_navigation():
        page.click("text=Report and verdict")
    journey.snap(page, "lead", "report")
    page.click("details.freeze summary")
    page.wait_for_selector("text=Yes, freeze the verdict")
    with page.expect_navigation():
        page.click("text=Yes, freeze the verdict")
    assert "/verdicts/" in page.url and "Verdict frozen" in page.inner_text("main")
    journey.snap(page, "lead", "verdict")


def admin_audits(page: Any, base: str, journey: Journey, expected: dict[str, int]) -> dict[str, int]:
    """Consent on Members, then the trail filtered by each step's action through the page's own choices."""
    page.goto(f"{base}/")
    with page.expect_navigation():
        page.click("main a:has-text('Members')")
    for rater in ("rita", "raj"):
        row = page.locator("tbody tr", has=page.locator(f"td:text-is('{rater}')"))
        assert "1 of 1 accepted" in row.inner_text(), row.inner_text()
    assert "invited" not in page.locator("tbody tr", has=page.locator("td:text-is('rita')")).inner_text()
    journey.snap(page, "admin", "members-consent")
    with page.expect_navigation():
        page.click("nav a:has-text('Audit')")
    journey.snap(page, "admin", "audit")
    found = {}
    for action in expected:
        page.select_option("#id_action", action)
        with page.expect_navigation():
            page.click("button:has-text('Filter')")
        found[action] = page.locator(f"table.audit tbody tr[data-action='{action}']").count()
        if action == "rating.submit":
            journey.snap(page, "admin", "audit-ratings")
    page.select_option("#id_action", "")
    page.select_option("#id_actor", "rita")
    with page.expect_navigation():
        page.click("button:has-text('Filter')")
    journey.snap(page, "admin", "audit-rita")
    # The table fits the page: nothing wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    return found


def test_the_whole_loop_in_the_browser(
    browser, live_server, project, people, fixture_adapters, journey, tmp_path, settings, mailoutbox
):
    settings.EVALHUB_SUITE_PII_SCAN = False  # the PII screening has its own tests; this one is about the journey
    settings.EVALHUB_SCORE_ON_COMPLETE = True  # the run page shows each adapter's scores
    base, slug = live_server.url, project.slug
    laptop = {"viewport": {"width": 1366, "height": 900}}
    try:
        admin = journey.watch(browser.new_context(**laptop).new_page(), "admin")
        link = admin_adds_rita(admin, base, slug, journey, mailoutbox)

        engineer = journey.watch(browser.new_context(**laptop).new_page(), "engineer")
        run_id = engineer_steps(engineer, base, slug, journey, small_suite(tmp_path))
        assert Run.objects.get(pk=run_id).status == RunStatus.COMPLETED

        rita = journey.watch(browser.new_context(**laptop).new_page(), "rita")
        rita_sets_her_password(rita, link, journey)
        assert rate_by_keyboard(rita, base, journey) == N_CASES

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2)
        raj = journey.watch(phone.new_page(), "raj")
        assert rate_on_a_phone(raj, base, journey) == N_CASES

        study = Study.objects.get(run_id=run_id)
        assert Rating.objects.filter(task__study=study).count() == 2 * N_CASES

        lead = journey.watch(browser.new_context(**laptop).new_page(), "lead")
        lead_freezes(lead, base, slug, run_id, journey)
        assert Verdict.objects.filter(run_id=run_id).count() == 1

        expected = {
            "user.invite": 1,
            "suite_version.import": 1,
            "run.create": 1,
            "run.start": 1,
            "study.create": 1,
            "study.consent": 2,
            "rating.submit": 2 * N_CASES,
            "verdict.freeze": 1,
        }
        found = admin_audits(admin, base, journey, expected)
        assert found == expected, found
        assert found == {a: AuditEvent.objects.filter(action=a).count() for a in expected}
    finally:
        journey.write()
    assert not journey.failures, "\n".join(journey.failures)
    assert all(s["load_ms"] is not None for s in journey.shots)
