"""Notifications: email through Django's mail backend and webhooks signed with the project's secret.

`notify` stores one Delivery per channel (the delivery log) and sends each after the commit through the
`deliver` task. A webhook answer other than 2xx, or no answer, is retried with the project's backoff
(`evalhub.celery.retry_countdown`) up to EVALHUB_WEBHOOK_ATTEMPTS tries, then the delivery is marked failed.

The webhook request carries `X-Evalhub-Timestamp` (Unix seconds) and `X-Evalhub-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the project's secret>`; docs/operations.md shows
how a receiver checks it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.continuous.models import Channel, Delivery, DeliveryStatus, Event, NotificationSettings
from evalhub.errors import ValidationFailed
from evalhub.outbound import check_outbound_url
from evalhub.runs.models import Run

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Evalhub-Signature"
TIMESTAMP_HEADER = "X-Evalhub-Timestamp"
EVENT_HEADER = "X-Evalhub-Event"


class DeliveryFailed(Exception):
    """The endpoint did not take the delivery (no answer, or not 2xx); the task retries it."""


# ---- webhook URL check --------------------------------------------------------------------------


def check_webhook_url(url: str) -> str:
    """Only http(s), and only public addresses unless EVALHUB_WEBHOOK_ALLOW_PRIVATE (the rule is
    evalhub.outbound's, shared with the HTTP judge endpoints)."""
    return check_outbound_url(
        url, what="webhook", field="webhook_url", allow_private=settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE,
        allow_setting="EVALHUB_WEBHOOK_ALLOW_PRIVATE",
    )  # fmt: skip


def _emails_check(text: str) -> list[str]:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    addresses = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError as exc:
            raise ValidationFailed(f"{address!r} is not an email address.", fields={"emails": ["Invalid address."]}) from exc
    return addresses


def notification_settings_save(
    *, project: Project, emails: str = "", webhook_url: str = "", new_secret: bool = False, actor: Any = None
) -> NotificationSettings:
    """Check, then store where the project's notifications go. A secret is made on first save (and on request)."""
    addresses = _emails_check(emails)
    url = check_webhook_url(webhook_url) if webhook_url.strip() else ""
    with transaction.atomic():
        config, created = NotificationSettings.objects.select_for_update().get_or_create(
            project=project, defaults={"secret": secrets.token_hex(32)}
        )
        config.emails = "\n".join(addresses)
        config.webhook_url = url
        if new_secret and not created:
            config.secret = secrets.token_hex(32)
        config.save()
        audit_record(
            actor=actor, action="notifications.save", obj=config,
            after={"emails": addresses, "webhook_url": url, "new_secret": bool(new_secret or created)},
        )
    return config


# ---- notify and deliver -------------------------------------------------------------------------


def notify(*, project: Project, event: str, subject: str, data: dict[str, Any]) -> list[Delivery]:
    """Store a delivery per configured channel and send each after the commit. Never raises: a
    notification that cannot even be stored is logged, and the work that caused it carries on."""
    try:
        return _notify(project=project, event=event, subject=subject, data=data)
    except Exception:
        log.exception("could not notify %s to project %s", event, project.pk)
        return []


def _notify(*, project: Project, event: str, subject: str, data: dict[str, Any]) -> list[Delivery]:
    from evalhub.continuous.tasks import deliver

    config = NotificationSettings.objects.filter(project=project).first()
    if config is None:
        return []
    payload = {"event": event, "project": project.slug, "subject": subject, "data": data,
               "at": timezone.now().isoformat()}
    rows: list[Delivery] = []
    with transaction.atomic():
        for address in [e for e in config.emails.splitlines() if e.strip()]:
            rows.append(Delivery(project=project, event=event, channel=Channel.EMAIL, target=address,
                                 subject=subject[:300], payload=payload))
        if config.webhook_url:
            rows.append(Delivery(project=project, event=event, channel=Channel.WEBHOOK, target=config.webhook_url,
                                 subject=subject[:300], payload=payload))
        for row in rows:
            row.save()
    for row in rows:
        transaction.on_commit(functools.partial(deliver.delay, delivery_id=row.pk))
    return rows


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _send_webhook(delivery: Delivery, secret: str) -> int:
    # urllib, not requests: one POST with a timeout needs no new dependency.
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 (the scheme was checked to be http(s) when saved)
        check_webhook_url(delivery.target),
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "evalhub-webhook/1",
            EVENT_HEADER: delivery.event,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=timestamp, body=body),
            "X-Evalhub-Delivery": str(delivery.pk),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.EVALHUB_WEBHOOK_TIMEOUT_SECONDS) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValidationFailed) as exc:
        raise DeliveryFailed(str(getattr(exc, "reason", exc))) from exc


def _send_email(delivery: Delivery) -> None:
    data = delivery.payload.get("data", {})
    lines = [delivery.subject, ""] + [f"{key}: {value}" for key, value in data.items()]
    try:
        send_mail(delivery.subject, "\n".join(lines), None, [delivery.target])
    except Exception as exc:  # any backend's failure (SMTP, socket) is a failed attempt
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc


def delivery_attempt(*, delivery_id: int) -> bool:
    """One try at a pending delivery; True when sent (or already final). Raises DeliveryFailed, with the
    attempt recorded, when the endpoint did not take it."""
    delivery = Delivery.objects.select_related("project").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return True
    Delivery.objects.filter(pk=delivery_id).update(attempts=delivery.attempts + 1)
    try:
        if delivery.channel == Channel.WEBHOOK:
            secret = NotificationSettings.objects.get(project=delivery.project).secret
            status = _send_webhook(delivery, secret)
        else:
            _send_email(delivery)
            status = None
    except DeliveryFailed as exc:
        Delivery.objects.filter(pk=delivery_id).update(error=str(exc)[:2000])
        raise
    Delivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.SENT, response_status=status, error="", finished_at=timezone.now()
    )
    return True


def delivery_give_up(*, delivery_id: int, error: str) -> None:
    log.warning("delivery %s failed for good: %s", delivery_id, error)
    Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )


# ---- run hooks (evalhub.runs.hooks) ---------------------------------------------------------------


def _run_data(run: Run, reason: str) -> dict[str, Any]:
    return {"run": run.pk, "name": run.name, "status": run.status, "reason": reason}


def notify_run_failed(*, run_id: int, reason: str) -> None:
    run = Run.objects.select_related("project").filter(pk=run_id).first()
    if run is not None:
        notify(project=run.project, event=Event.RUN_FAILED, subject=f"Run {run.pk} failed", data=_run_data(run, reason))


def notify_run_stalled(*, run_id: int, reason: str) -> None:
    run = Run.objects.select_related("project").filter(pk=run_id).first()
    if run is not None:
        notify(project=run.project, event=Event.RUN_STALLED, subject=f"Run {run.pk} stalled", data=_run_data(run, reason))
