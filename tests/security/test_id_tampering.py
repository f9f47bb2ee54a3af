"""Guessed, sequential, other-project and malformed ids reveal nothing.

For every API object route and every web page with an object in its address, the viewer who may see
their own object gets, for the other project's object and for an id that does not exist, the same
404 with the same body: "exists elsewhere" and "does not exist" cannot be told apart. Malformed ids
give 404 or 400, never a server error, and nothing is written.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import transaction
from django.test import Client

from evalhub.audit.models import AuditEvent
from tests.security import rules
from tests.security.pages import PAGES, routes, url_for
from tests.security.schema import fill, operations, param_prefix
from tests.security.world import OTHER_MARK, OWN_MARK, World, build_world

pytestmark = pytest.mark.django_db

MALFORMED = [
    "0",
    "-1",
    "1.5",
    "1e9",
    "%27%20OR%201=1--",
    "..%2F..%2Fetc%2Fpasswd",
    "a" * 300,
    "%00",
    "9" * 40,
]
OBJECT_OPERATIONS = [op for op in operations() if param_prefix(op[1])]


@pytest.fixture
def world(db, settings) -> World:
    settings.EVALHUB_SUITE_PII_SCAN = False
    return build_world()


def _missing(value: object) -> str:
    if isinstance(value, int):
        return str(10**9 + 7)
    if isinstance(value, uuid.UUID):
        return str(uuid.uuid4())
    return "doesnotexist-" + "x" * 12


def _viewer(rule: rules.Rule) -> str:
    for actor in ("lead", "admin", "rater"):
        if rule.policy.own.get(actor) in rules.GRANTED:
            return actor
    raise AssertionError(f"{rule.policy.name}: no project member may use it")


def _call(client, method: str, url: str, **kwargs):
    with transaction.atomic():
        before = AuditEvent.objects.count()
        response = getattr(client, method.lower())(url, **kwargs)
        written = AuditEvent.objects.count() - before
        transaction.set_rollback(True)
    return response, written


def _body(response) -> bytes:
    """The body, with the per-render CSRF token blanked so two renders of one page compare equal."""
    raw = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b'name="csrfmiddlewaretoken"', raw)


@pytest.mark.parametrize(
    ("method", "path"), OBJECT_OPERATIONS, ids=[f"{m} {p}" for m, p in OBJECT_OPERATIONS]
)
def test_api_ids_from_elsewhere_look_like_missing_ones(world, method, path):
    rule = rules.RULES[(method, path)]
    actor = _viewer(rule)
    # An object named within its parent (a project's judge endpoint by slug and name): from elsewhere
    # is the other project's whole address, missing is none of it there, malformed is the own parent's.
    *own_parents, own_value = rules.param_values(world, path, "own")
    other_values = rules.param_values(world, path, "other")
    kwargs: dict = {}
    if rule.query:
        kwargs["data"] = rule.query(world, "own")
    if rule.body:
        kwargs = {"data": rule.body(world, "own"), "format": "multipart" if rule.multipart else "json"}
    client = world.actors[actor].client()
    elsewhere, wrote_elsewhere = _call(client, method, fill(path, *map(str, other_values)), **kwargs)
    if rule.body and rule.multipart:  # a file is consumed by the first request
        kwargs["data"] = rule.body(world, "own")
    missing, wrote_missing = _call(
        client, method, fill(path, *map(_missing, [*own_parents, own_value])), **kwargs
    )
    assert elsewhere.status_code == missing.status_code == 404, (elsewhere.status_code, missing.status_code)
    assert _body(elsewhere) == _body(missing)
    assert OTHER_MARK not in _body(elsewhere).decode()
    assert wrote_elsewhere == wrote_missing == 0
    for bad in MALFORMED:
        if rule.body and rule.multipart:
            kwargs["data"] = rule.body(world, "own")
        response, written = _call(client, method, fill(path, *map(str, own_parents), bad), **kwargs)
        assert response.status_code in (400, 404), f"{bad!r}: {response.status_code}"
        assert written == 0 and OWN_MARK not in _body(response).decode()


def _page_client(world: World, actor: str) -> Client:
    client = Client()
    if world.actors[actor].user is not None and actor != "anonymous":
        client.force_login(world.actors[actor].user)
    return client


OBJECT_PAGES = [route for route in PAGES if "<" in route]


@pytest.mark.parametrize("route", OBJECT_PAGES)
def test_page_ids_from_elsewhere_look_like_missing_ones(world, route):
    page = PAGES[route]
    client = _page_client(world, page.viewer)
    own = page.params(world, "own")
    other = page.params(world, "other")
    bodies = {}
    for name in own:
        if name in page.fixed:
            continue
        for label, value in (("elsewhere", other[name]), ("missing", _missing(own[name]))):
            url = url_for(route, {**own, name: value})
            response, written = _call(client, page.method, url, **({"data": page.data} if page.data else {}))
            assert response.status_code == 404, f"{label} {name} in {url}: {response.status_code}"
            assert written == 0, f"{url} wrote to the audit trail"
            assert OTHER_MARK not in _body(response).decode()
            bodies[label] = _body(response)
        assert bodies["elsewhere"] == bodies["missing"], f"{route}: {name} from elsewhere is told apart"


@pytest.mark.parametrize("route", OBJECT_PAGES)
def test_the_viewer_reaches_their_own_object(world, route):
    """The other half of the tampering check: the same address with the viewer's own ids works."""
    page = PAGES[route]
    url = url_for(route, page.params(world, "own"))
    response, _ = _call(
        _page_client(world, page.viewer), page.method, url, **({"data": page.data} if page.data else {})
    )
    assert response.status_code == page.status, f"{url}: {response.status_code}"


def test_every_page_is_listed():
    listed = set(PAGES)
    present = {route for route, _ in routes()}
    assert present - listed == set(), "new pages: add them to tests/security/pages.py"
    assert listed - present == set(), "pages that no longer exist: remove them from tests/security/pages.py"
