"""Notifications: webhook URLs are checked (scheme, resolved address), deliveries are signed, a failing
endpoint is retried then marked failed in the delivery log, and email goes through Django's mail backend."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.core import mail

from evalhub.continuous.models import Delivery, DeliveryStatus, Event
from evalhub.continuous.notifications import check_webhook_url, notification_settings_save, notify
from evalhub.errors import ValidationFailed
from tests.continuous.conftest import payload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_a_webhook_url_that_is_not_http_or_points_inside_is_refused(url, settings):
    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValidationFailed) as refused:
        check_webhook_url(url)
    assert "webhook_url" in refused.value.fields


def test_a_public_address_is_accepted_and_the_admin_allowance_opens_private_ones(settings):
    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = False
    assert check_webhook_url("https://93.184.215.14/hook") == "https://93.184.215.14/hook"
    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = True
    assert check_webhook_url("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"
    with pytest.raises(ValidationFailed):
        check_webhook_url("gopher://127.0.0.1/")


def test_refused_settings_store_nothing(project, settings):
    from evalhub.continuous.models import NotificationSettings

    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValidationFailed):
        notification_settings_save(project=project, webhook_url="http://127.0.0.1/hook")
    with pytest.raises(ValidationFailed) as refused:
        notification_settings_save(project=project, emails="not-an-address")
    assert "emails" in refused.value.fields
    assert not NotificationSettings.objects.exists()


def test_a_delivery_is_signed_with_the_project_secret_over_timestamp_and_body(
    project, notified, endpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(project=project, event=Event.RUN_FAILED, subject="Run 7 failed", data={"run": 7})
    (hook,) = endpoint.received
    headers, body = hook["headers"], hook["body"]
    mac = hmac.new(notified.secret.encode(), f"{headers['X-Evalhub-Timestamp']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Evalhub-Signature"], "sha256=" + mac.hexdigest())
    assert headers["X-Evalhub-Event"] == "run.failed"
    assert payload(hook)["data"] == {"run": 7}
    wrong = hmac.new(b"another-secret", f"{headers['X-Evalhub-Timestamp']}.".encode() + body, hashlib.sha256)
    assert headers["X-Evalhub-Signature"] != "sha256=" + wrong.hexdigest()
    (email,) = mail.outbox
    assert email.to == ["ops@example.com"] and email.subject == "Run 7 failed"


def test_a_failing_endpoint_is_retried_then_marked_failed_and_logged(
    project, notified, endpoint, settings, django_capture_on_commit_callbacks
):
    settings.EVALHUB_WEBHOOK_ATTEMPTS = 3
    endpoint.statuses = [500, 503, 502, 500]
    with django_capture_on_commit_callbacks(execute=True):
        notify(project=project, event=Event.REGRESSION, subject="Regression", data={})
    webhook = Delivery.objects.get(channel="webhook")
    assert len(endpoint.received) == 3
    assert webhook.status == DeliveryStatus.FAILED
    assert webhook.attempts == 3
    assert webhook.error == "HTTP 502"
    assert Delivery.objects.get(channel="email").status == DeliveryStatus.SENT


def test_an_endpoint_that_recovers_is_delivered_on_a_retry(
    project, notified, endpoint, django_capture_on_commit_callbacks
):
    endpoint.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        notify(project=project, event=Event.VERDICT_READY, subject="Verdict", data={})
    webhook = Delivery.objects.get(channel="webhook")
    assert (webhook.status, webhook.attempts, webhook.response_status) == (DeliveryStatus.SENT, 2, 200)
    assert len(endpoint.received) == 2


def test_an_endpoint_that_does_not_answer_fails_after_its_attempts(
    project, notified, settings, django_capture_on_commit_callbacks
):
    import socket

    settings.EVALHUB_WEBHOOK_ATTEMPTS = 2
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    notification_settings_save(project=project, webhook_url=f"http://127.0.0.1:{port}/hook")
    with django_capture_on_commit_callbacks(execute=True):
        notify(project=project, event=Event.RUN_STALLED, subject="Stalled", data={})
    webhook = Delivery.objects.get(channel="webhook")
    assert webhook.status == DeliveryStatus.FAILED and webhook.attempts == 2
    assert "refused" in webhook.error.lower()


def test_the_watchdog_stall_note_and_a_failed_run_are_notified(
    project, tiny, suite_version, notified, endpoint, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from evalhub.runs.models import Run, RunStatus
    from evalhub.runs.services import run_create, run_fail
    from evalhub.runs.watchdog import runs_heal

    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"], adapters=[tiny["alpha"]])
    long_ago = timezone.now() - timedelta(hours=2)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=long_ago)
    # The watchdog finds the run idle past its lease: it sends the work again (in process here, so the
    # run finishes) and its stall note is notified.
    with django_capture_on_commit_callbacks(execute=True):
        runs_heal()
    stalled = [payload(r) for r in endpoint.received if payload(r)["event"] == "run.stalled"]
    assert len(stalled) == 1 and "the watchdog sent" in stalled[0]["data"]["reason"]
    run = Run.objects.create(project=project, name="doomed", suite_version=suite_version, base_model=tiny["base"],
                             status=RunStatus.RUNNING, config_hash="x")
    with django_capture_on_commit_callbacks(execute=True):
        run_fail(run_id=run.pk, error="generate_chunk gave up: OOM")
    events = [payload(r)["event"] for r in endpoint.received]
    assert "run.failed" in events
    failed = next(payload(r) for r in endpoint.received if payload(r)["event"] == "run.failed")
    assert failed["data"]["reason"] == "generate_chunk gave up: OOM"
