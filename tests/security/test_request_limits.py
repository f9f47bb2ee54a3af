"""Oversized bodies are refused with 413 before anything reads them; throttles answer 429."""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from evalhub.accounts.services import token_create

pytestmark = pytest.mark.django_db


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


@pytest.mark.parametrize(
    "path", ["/api/v1/suites/upload/", "/p/acme-summaries/suites/upload/", "/accounts/login/"]
)
def test_a_body_over_the_limit_is_refused_unread(settings, path):
    settings.EVALHUB_MAX_UPLOAD_BYTES = 1000
    response = Client().generic(
        "POST",
        path,
        CONTENT_TYPE="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH="1001",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "too_large"


def test_a_body_within_the_limit_goes_through(settings, project, lead):
    settings.EVALHUB_MAX_UPLOAD_BYTES = 10_000
    client = APIClient()
    client.force_login(lead)
    assert (
        client.post("/api/v1/tokens/", {"project": project.slug, "name": "ok"}, format="json").status_code
        == 201
    )


def test_a_bad_content_length_is_a_400():
    response = Client().generic("POST", "/api/v1/tokens/", CONTENT_LENGTH="lots")
    assert response.status_code == 400


def test_json_over_the_form_limit_is_413_in_the_error_format(settings, project, lead):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    client = APIClient()
    client.force_login(lead)
    response = client.post("/api/v1/tokens/", {"project": project.slug, "name": "x" * 200}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


@pytest.fixture
def tight_throttles(settings):
    cache.clear()
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"anon": "3/minute", "user": "5/minute", "login": "2/minute"}
    settings.REST_FRAMEWORK = rest
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rest["DEFAULT_THROTTLE_RATES"]
    yield
    SimpleRateThrottle.THROTTLE_RATES = original
    cache.clear()


def test_anonymous_requests_are_throttled(tight_throttles, settings):
    # DRF checks permissions before throttles, so the schema endpoint, opened to anyone by its
    # setting, is where anon rates show.
    settings.EVALHUB_PUBLIC_API_SCHEMA = True
    client = APIClient()
    statuses = [client.get("/api/schema/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_token_users_are_throttled(tight_throttles, project, lead):
    _, secret = token_create(user=lead, project=project, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    statuses = [client.get("/api/v1/me/").status_code for _ in range(6)]
    assert statuses[-1] == 429
    assert client.get("/api/v1/me/").json()["error"]["code"] == "throttled"


def test_token_creation_has_the_tighter_login_rate(tight_throttles, project, lead):
    client = APIClient()
    client.force_login(lead)
    statuses = [
        client.post("/api/v1/tokens/", {"project": project.slug, "name": f"t{i}"}, format="json").status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 429]


@pytest.mark.parametrize(
    "url", ["/api/v1/rater/tasks/a%00b/skip", "/api/v1/adapters/?name=a%00", "/rate/s/x%00/"]
)
def test_nul_bytes_in_the_address_are_a_400(url):
    response = Client().post(url) if "skip" in url else Client().get(url)
    assert response.status_code == 400
