"""The OpenAPI schema and the API docs pages need a login (a session, or a token for the schema), unless
EVALHUB_PUBLIC_API_SCHEMA opens them; the offline Swagger UI keeps working for signed-in users."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.accounts.services import token_create

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_get_no_schema():
    response = Client().get("/api/schema/")
    assert response.status_code == 401
    assert "error" in response.json()  # the API's error format
    assert "paths" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/docs/", "/api/docs/?script="])
def test_anonymous_visitors_are_sent_to_the_login_page_for_the_docs(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/api/docs/")


def test_signed_in_users_read_the_schema_and_the_docs(project, lead):
    client = Client()
    client.force_login(lead)
    assert "/api/v1/rater/next" in client.get("/api/schema/").content.decode()
    assert client.get("/api/docs/").status_code == 200
    assert "/api/schema/" in client.get("/api/docs/?script=").content.decode()


def test_a_token_reads_the_schema(project, lead):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=lead, project=project, name='ci')[1]}")
    assert client.get("/api/schema/").status_code == 200


def test_the_setting_opens_schema_and_docs_to_anyone(settings):
    settings.EVALHUB_PUBLIC_API_SCHEMA = True
    assert Client().get("/api/schema/").status_code == 200
    assert Client().get("/api/docs/").status_code == 200
