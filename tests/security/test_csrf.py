"""CSRF on every form: each template's POST form carries the token, each route refuses a POST without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.security.pages import PAGES, url_for
from tests.security.world import build_world

REPO = Path(__file__).resolve().parents[2]
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


def templates() -> list[Path]:
    found = [*REPO.glob("templates/**/*.html"), *REPO.glob("*/**/templates/**/*.html")]
    return sorted(path for path in found if ".venv" not in path.parts)


def test_every_post_form_carries_the_csrf_token():
    missing = []
    for template in templates():
        for form in FORM.findall(template.read_text()):
            opening = form[: form.index(">")]
            if re.search(r"method\s*=\s*[\"']?post", opening, re.I) and "{% csrf_token %}" not in form:
                missing.append(f"{template.relative_to(REPO)}: {opening[:80]}")
    assert not missing, "POST forms without {% csrf_token %}:\n" + "\n".join(missing)


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(PAGES))
def test_every_route_refuses_a_post_without_the_token(route, settings):
    settings.EVALHUB_SUITE_PII_SCAN = False
    world = build_world()
    page = PAGES[route]
    client = Client(enforce_csrf_checks=True)
    if page.viewer != "anonymous":
        client.force_login(world.actors[page.viewer].user)
    response = client.post(url_for(route, page.params(world, "own")), page.data or {"x": "1"})
    assert response.status_code == 403, f"{route}: {response.status_code}"
