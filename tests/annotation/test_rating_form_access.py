"""A rater sees only the pages they may use: the nav offers nothing else, and every other page's
address gives a friendly 403 or 404 (never the page, never a server error). "Left to rate" on the
rater's home counts only what this rater can still be given.
"""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.queue import task_assign_next
from annotation.services import consent_accept, study_create_from_run
from tests.annotation.factories import rater_user, run_rows
from tests.security.pages import PAGES, routes, url_for
from tests.security.world import World, build_world

pytestmark = pytest.mark.django_db

RATER_PAGES = {route for route, page in PAGES.items() if page.viewer in ("rater", "anonymous")}
# Pages every signed-in user shares: signing out, revoking a token of one's own (a rater who holds
# one from before may still end it), and the dashboard's address, which takes a rater to /rate/.
SHARED = {"accounts/logout/", "accounts/tokens/<int:token_id>/revoke/", ""}


@pytest.fixture
def world(db, settings) -> World:
    settings.EVALHUB_SUITE_PII_SCAN = False
    return build_world()


def _rater(world: World) -> Client:
    client = Client()
    client.force_login(world.users["rater"])
    return client


def test_the_rater_nav_links_only_rating_pages(world):
    page = _rater(world).get("/rate/").content.decode()
    nav = page.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    assert "/rate/" in nav
    for href in ("/accounts/tokens/", "/api/docs/", "/audit/", "/admin/", "/p/", "/rate/studies/"):
        assert href not in nav, f"a rater's nav links {href}"


@pytest.mark.parametrize("route", sorted(set(PAGES) - RATER_PAGES - SHARED))
def test_a_rater_gets_a_friendly_refusal_for_every_other_page(world, route):
    page = PAGES[route]
    path = url_for(route, page.params(world, "own"))
    client = _rater(world)
    response = client.post(path, page.data or {}) if page.method == "POST" else client.get(path)
    assert response.status_code in (403, 404), f"{path}: {response.status_code}"
    if page.html and response.get("Content-Type", "").startswith("text/html"):
        body = response.content.decode()
        assert '<nav aria-label="Main">' in body, f"{path}: a bare error page, not the site's layout"
        assert "/rate/" in body, f"{path}: no way back to the rater's pages"


def test_the_dashboard_address_takes_a_rater_to_their_rating_home(world):
    response = _rater(world).get("/")
    assert response.status_code == 302 and response["Location"] == "/rate/"


def test_every_page_route_is_classified(world):
    assert {route for route, _ in routes()} <= set(PAGES)


def test_home_does_not_count_a_task_another_rater_holds(project):
    rows = run_rows(project, n_cases=1)
    study = study_create_from_run(run=rows.run, name="Last one", overlap=1)
    first, second = rater_user(project, "ann"), rater_user(project, "bob")
    for user in (first, second):
        consent_accept(study=study, rater=user)
    assert task_assign_next(study=study, rater=first) is not None
    client = Client()
    client.force_login(second)
    assert "0 left to rate" in client.get("/rate/").content.decode()
    client.force_login(first)
    assert "1 left to rate" in client.get("/rate/").content.decode(), "the held task is still the holder's"


def test_home_counts_each_case_once_for_a_rater(project):
    rows = run_rows(project, n_cases=2, adapters=("baseline", "cand1", "cand2"))
    study = study_create_from_run(run=rows.run, name="Two candidates", overlap=1)
    assert study.tasks.count() == 4, "two pairs per case"
    rater = rater_user(project, "cat")
    consent_accept(study=study, rater=rater)
    client = Client()
    client.force_login(rater)
    assert "2 left to rate" in client.get("/rate/").content.decode(), "one task per case"
