"""Web login: throttled per username and address, audited, CSRF-protected."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from evalhub.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


def attempt(client: Client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_login_and_logout_are_audited(lead):
    client = Client()
    assert attempt(client, "lead", "correct-horse-battery").status_code == 302
    assert AuditEvent.objects.filter(action="auth.login", actor=lead).exists()
    client.post("/accounts/logout/")
    assert AuditEvent.objects.filter(action="auth.logout", actor=lead).exists()


def test_five_failures_lock_the_username_from_that_address(lead):
    client = Client()
    for _ in range(4):
        assert attempt(client, "lead", "wrong-password").status_code == 200
    locked = attempt(client, "lead", "wrong-password")
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    # Even the right password is refused while locked, with the same clear message.
    refused = attempt(client, "lead", "correct-horse-battery")
    assert refused.status_code == 429 and "Try again in 15 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
    assert AuditEvent.objects.filter(action="auth.lockout", after__username="lead").count() == 1
    assert AuditEvent.objects.filter(action="auth.login_refused_locked").count() == 1


def test_a_lock_does_not_block_the_user_from_another_address(lead):
    client = Client()
    for _ in range(5):
        attempt(client, "lead", "wrong-password", ip="10.0.0.1")
    assert attempt(Client(), "lead", "correct-horse-battery", ip="10.0.0.2").status_code == 302


def test_the_admin_login_is_locked_too(admin_user):
    for _ in range(5):
        attempt(Client(), "root-admin", "wrong-password")
    response = Client().post(
        "/admin/login/?next=/admin/",
        {"username": "root-admin", "password": "correct-horse-battery"},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response.status_code == 200  # the form again, not a redirect into the admin


def test_a_success_resets_the_counter(lead):
    client = Client()
    for _ in range(4):
        attempt(client, "lead", "wrong-password")
    assert attempt(Client(), "lead", "correct-horse-battery").status_code == 302
    for _ in range(4):
        assert attempt(Client(), "lead", "wrong-password").status_code == 200


def test_the_lock_expires(lead, settings, clock):
    settings.EVALHUB_LOGIN_LOCKOUT_SECONDS = 1
    for _ in range(5):
        attempt(Client(), "lead", "wrong-password")
    assert attempt(Client(), "lead", "correct-horse-battery").status_code == 429
    clock.advance(2.1)
    assert attempt(Client(), "lead", "correct-horse-battery").status_code == 302


def test_login_form_needs_a_csrf_token(lead):
    client = Client(enforce_csrf_checks=True)
    assert attempt(client, "lead", "correct-horse-battery").status_code == 403
