"""User and model text is escaped on every page that shows it.

The world's objects carry an XSS payload in every free-text field (project name and description,
adapter notes and provenance, suite description and consent, case input and reference, output text,
study instructions and terms, rationale, token names, a username, audit details). Every page of the
URLconf is fetched by the user who may see it; the payload must appear only escaped. A browser check
(Playwright + Chromium) then confirms that no injected element or script exists in the live DOM.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, user_create
from tests.browser import chromium, needs_chromium
from tests.security.pages import PAGES, url_for
from tests.security.world import World, build_world

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror=window.__xss=2>'
PAYLOAD = SCRIPT + IMG
ESCAPED_SCRIPT = "&lt;script&gt;window.__xss=1&lt;/script&gt;"
RAW = [re.compile(r"<script>\s*window\.__xss", re.I), re.compile(r"<img src=x onerror", re.I)]
# Pages that show no project data (the login form; the rater's home lists only study names, kept here
# in case a rater has none).
# The set-password pages are probed with an unusable link: they show no user text (a valid one shows the
# username, auto-escaped like every page).
SHOWS_NO_TEXT = {
    "accounts/login/", "healthz", "readyz", "metrics", "accounts/set-password/<uidb64>/<token>/",
    "accounts/set-password/done/",
}
KINDS = (
    "adapter",
    "suite",
    "cases",
    "run",
    "study",
    "rating",
    "task",
    "upload",
    "token",
    "membership",
    "gate_policy",
    "verdict",
)


def xss_world() -> World:
    world = build_world(marks=("ownmark" + PAYLOAD, "othermark" + PAYLOAD))
    for kind in KINDS:
        world.get(kind, "own")
    odd = user_create(username="x" + SCRIPT, password="correct-horse-battery")
    membership_set(project=world.own, user=odd, role=Role.ENGINEER)
    return world


def html_pages() -> list[str]:
    return [route for route, page in PAGES.items() if page.html and page.method == "GET"]


def fetch(world: World, route: str):
    page = PAGES[route]
    client = Client()
    if page.viewer != "anonymous":
        client.force_login(world.actors[page.viewer].user)
    return client.get(url_for(route, page.params(world, "own")))


@pytest.fixture
def world(db, settings) -> World:
    settings.EVALHUB_SUITE_PII_SCAN = False
    return xss_world()


@pytest.mark.parametrize("route", html_pages())
def test_payload_appears_only_escaped(world, route):
    response = fetch(world, route)
    page = PAGES[route]
    assert response.status_code == page.status
    if response.status_code != 200:
        return
    html = response.content.decode()
    for raw in RAW:
        assert not raw.search(html), f"{route}: unescaped payload {raw.pattern!r}"
    if route not in SHOWS_NO_TEXT:
        assert ESCAPED_SCRIPT in html, f"{route}: shows none of the user text it should (escaped)"


def test_every_free_text_field_reaches_some_page_escaped(world):
    """Each field's text is displayed somewhere, so the scan above covers it."""
    html = "".join(
        fetch(world, route).content.decode() for route in html_pages() if PAGES[route].status == 200
    )
    # A rater who has not yet consented sees the study's instructions and terms.
    newcomer = user_create(username="fresh-rater", password="correct-horse-battery")
    membership_set(project=world.own, user=newcomer, role=Role.RATER)
    client = Client()
    client.force_login(newcomer)
    onboarding = client.get(f"/rate/s/{world.get('study', 'own').public_id}/")
    assert not any(raw.search(onboarding.content.decode()) for raw in RAW)
    html += onboarding.content.decode()
    expected = {
        "project name": "ownmark" + ESCAPED_SCRIPT,
        "adapter notes or provenance": "source ownmark" + ESCAPED_SCRIPT,
        "case input": "input ownmark" + ESCAPED_SCRIPT,
        "output text": "output ownmark" + ESCAPED_SCRIPT,
        "study instructions": "instructions ownmark" + ESCAPED_SCRIPT,
        "study terms": "terms ownmark" + ESCAPED_SCRIPT,
        "suite consent statement": "consent ownmark" + ESCAPED_SCRIPT,
        "upload preview": "upload input ownmark" + ESCAPED_SCRIPT,
        "gate policy name": "policy ownmark" + ESCAPED_SCRIPT,
        "username": "x" + ESCAPED_SCRIPT,
    }
    # Rationales carry the payload too; no page shows them yet (the reports pages will).
    missing = [name for name, text in expected.items() if text not in html]
    assert not missing, f"never displayed: {missing}"


def test_templates_never_switch_escaping_off():
    offenders = []
    for template in [*REPO.glob("templates/**/*.html"), *REPO.glob("*/**/templates/**/*.html")]:
        if ".venv" in template.parts:
            continue
        text = template.read_text()
        if re.search(r"\|\s*safe\b|\{%\s*autoescape\s+off", text):
            offenders.append(str(template.relative_to(REPO)))
    assert not offenders, f"|safe or autoescape off in: {offenders}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@needs_chromium
def test_no_script_runs_in_the_browser(live_server, settings):
    settings.EVALHUB_SUITE_PII_SCAN = False
    world = xss_world()
    # Everything that touches the database happens before Playwright starts its event loop.
    visits = []
    for route in html_pages():
        spec = PAGES[route]
        if spec.status != 200:
            continue
        cookie = None
        if spec.viewer != "anonymous":
            client = Client()
            client.force_login(world.actors[spec.viewer].user)
            cookie = client.cookies["sessionid"].value
        visits.append((route, live_server.url + url_for(route, spec.params(world, "own")), cookie))
    failures: list[str] = []
    with chromium() as browser:
        for route, url, cookie in visits:
            context = browser.new_context()
            if cookie:
                context.add_cookies([{"name": "sessionid", "value": cookie, "url": live_server.url}])
            tab = context.new_page()
            violations: list[str] = []
            tab.on("console", lambda message, seen=violations: seen.append(message.text))
            tab.on("dialog", lambda dialog, seen=violations: (seen.append("dialog"), dialog.dismiss()))
            tab.goto(url, wait_until="load")
            state = tab.evaluate(
                """() => ({
                    flag: typeof window.__xss,
                    images: document.querySelectorAll('img[onerror], img[src="x"]').length,
                    scripts: [...document.scripts].filter(s => s.text.includes('__xss')).length,
                    shown: document.body.innerText.includes('<script>window.__xss=1</script>'),
                })"""
            )
            if state["flag"] != "undefined" or state["images"] or state["scripts"]:
                failures.append(f"{route}: {state}")
            if any("Content Security Policy" in text or text == "dialog" for text in violations):
                failures.append(f"{route}: blocked injection attempt {violations}")
            if route not in SHOWS_NO_TEXT and not state["shown"]:
                failures.append(f"{route}: the payload is not shown as text")
            context.close()
    assert not failures, "\n".join(failures)
