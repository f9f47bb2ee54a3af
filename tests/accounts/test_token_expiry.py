"""API tokens expire: a default lifetime from the settings, another chosen at creation (API or page) within
a bound, shown with the last use in the API and on the tokens page; an expired token gets a 401 that
says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from evalhub.accounts.models import ApiToken
from evalhub.accounts.services import token_create

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_a_new_token_gets_the_default_lifetime(project, lead, settings):
    settings.EVALHUB_TOKEN_LIFETIME_DAYS = 30
    token, _ = token_create(user=lead, project=project, name="ci")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


def test_the_api_takes_a_lifetime_and_shows_expiry_and_last_use(project, lead):
    created = session(lead).post(
        "/api/v1/tokens/", {"project": project.slug, "name": "short", "lifetime_days": 7}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    token = ApiToken.objects.get(pk=body["id"])
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert body["expires_at"] and body["last_used_at"] is None and body["active"] is True
    bearer(body["secret"]).get("/api/v1/me/")
    listed = session(lead).get(f"/api/v1/tokens/{token.pk}/").json()
    assert listed["last_used_at"] is not None and listed["expires_at"] == body["expires_at"]


@pytest.mark.parametrize("days", [0, -1, 366])
def test_a_lifetime_out_of_bounds_is_a_field_error(project, lead, days):
    response = session(lead).post(
        "/api/v1/tokens/", {"project": project.slug, "name": "x", "lifetime_days": days}, format="json"
    )
    assert response.status_code == 400
    assert "lifetime_days" in response.json()["error"]["fields"]
    assert not ApiToken.objects.filter(name="x").exists()


def test_an_expired_token_is_refused_with_a_clear_401(project, lead):
    token, secret = token_create(user=lead, project=project, name="ci", lifetime_days=1)
    assert bearer(secret).get("/api/v1/me/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = bearer(secret).get("/api/v1/me/")
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    assert "expired" in message and "Create a new one" in message
    listed = session(lead).get(f"/api/v1/tokens/{token.pk}/").json()
    assert listed["active"] is False


def test_the_tokens_page_sets_and_shows_expiry_and_last_use(project, lead):
    client = Client()
    client.force_login(lead)
    page = client.get("/accounts/tokens/").content.decode()
    assert 'name="lifetime_days"' in page and 'value="90"' in page
    response = client.post(
        "/accounts/tokens/", {"project": project.slug, "name": "laptop", "lifetime_days": "3"}
    )
    assert response.status_code == 201
    token = ApiToken.objects.get(name="laptop")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=3))) < timedelta(minutes=1)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(hours=2))
    token.refresh_from_db()
    listing = client.get("/accounts/tokens/").content.decode()
    local = timezone.localtime
    assert local(token.expires_at).strftime("%Y-%m-%d %H:%M") in listing
    assert local(token.last_used_at).strftime("%Y-%m-%d %H:%M") in listing


def test_the_tokens_page_refuses_a_lifetime_out_of_bounds(project, lead):
    client = Client()
    client.force_login(lead)
    response = client.post(
        "/accounts/tokens/", {"project": project.slug, "name": "long", "lifetime_days": "9999"}
    )
    assert response.status_code == 400 and "between 1 and 365 days" in response.content.decode()
    assert not ApiToken.objects.filter(name="long").exists()


def test_the_tokens_page_marks_an_expired_token(project, lead):
    token, _ = token_create(user=lead, project=project, name="old-ci")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client = Client()
    client.force_login(lead)
    row = client.get("/accounts/tokens/").content.decode().split("old-ci", 1)[1].split("</tr>", 1)[0]
    assert "expired" in row and "Revoke" not in row
