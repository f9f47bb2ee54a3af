"""A database outage answers 503 with Retry-After, in the API and the web, and heals when it comes back.

The PostgreSQL stopped here is the test's own (tests/own_services.py), behind a real gunicorn.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.ops.conftest import LiveServer

pytestmark = pytest.mark.slow


def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http to our own server)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def api(server: LiveServer) -> tuple[int, dict[str, str], str]:
    # A token is looked up in the database, so this request needs it.
    return fetch(f"{server.url}/api/v1/runs/", {"Authorization": "Token not-a-real-token"})


def web(server: LiveServer) -> tuple[int, dict[str, str], str]:
    # A session cookie is looked up in the database too.
    return fetch(f"{server.url}/", {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"})


def test_a_database_outage_answers_503_with_retry_after_then_heals(server_on_own_postgres: LiveServer):
    server = server_on_own_postgres
    assert api(server)[0] == 401
    assert web(server)[0] == 302

    server.postgres.stop()
    try:
        status, headers, body = api(server)
        assert status == 503 and headers["Retry-After"] == "10"
        assert json.loads(body)["error"]["code"] == "unavailable"
        status, headers, body = web(server)
        assert status == 503 and headers["Retry-After"] == "10"
        assert "temporarily unavailable" in body
        # The process is alive (no restart wanted) but not ready.
        assert fetch(f"{server.url}/healthz", {})[0] == 200
        status, _, body = fetch(f"{server.url}/readyz", {})
        assert status == 503 and json.loads(body)["database"]["ok"] is False
    finally:
        server.postgres.start()

    assert api(server)[0] == 401
    assert web(server)[0] == 302
