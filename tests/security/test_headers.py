"""Security headers on every kind of response: pages, API, errors, refusals."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

EXPECTED = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=()",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/accounts/login/"),
        ("get", "/"),
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/does-not-exist/"),
        ("get", "/no-such-page/"),
        ("get", "/api/schema/"),
        ("post", "/api/v1/tokens/"),
    ],
)
def test_every_response_carries_the_security_headers(method, path):
    response = getattr(Client(), method)(path)
    for header, value in EXPECTED.items():
        assert value in response.headers.get(header, ""), (
            f"{path}: {header} = {response.headers.get(header)!r}"
        )


def test_csp_forbids_inline_script_and_framing():
    csp = Client().get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_api_responses_are_never_cached(lead):
    client = Client()
    client.force_login(lead)
    assert client.get("/api/v1/me/")["Cache-Control"] == "no-store"


def test_docs_page_references_no_external_host(lead):
    client = Client()
    client.force_login(lead)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    # Every src/href on the page is a path on this site, and the bundle is the sidecar's copy.
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert any("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in u for u in urls)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "<script>" not in html  # the start-up script is a file of its own (?script)
    csp = response["Content-Security-Policy"]
    assert "http" not in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self';" in csp


def test_docs_page_start_up_script_is_served_by_the_site(lead):
    client = Client()
    client.force_login(lead)
    response = client.get("/api/docs/?script=")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in response.content.decode()


def test_unknown_api_url_answers_in_the_error_format():
    response = Client().get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found.", "fields": {}}}


def test_session_api_writes_need_the_csrf_token(project, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post(
        "/api/v1/tokens/", {"project": project.slug, "name": "x"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] in {"permission_denied", "forbidden"}
