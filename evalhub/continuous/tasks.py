"""Celery tasks of continuous evaluation: thin wrappers that take ids and call a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from evalhub.celery import MAX_RETRIES, evalhub_task, retry_countdown
from evalhub.continuous import notifications, recipes, schedules, watch

log = logging.getLogger(__name__)


def _logged(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    # Nothing to mark: the evaluation's state, or the next tick, says what is left to do.
    log.error("%s gave up (%s): %r", name, kwargs, exc)


@evalhub_task(give_up=_logged)
def start_recipe(*, adapter_id: int) -> int:
    return len(recipes.recipe_start(adapter_id=adapter_id))


@evalhub_task(give_up=_logged)
def reevaluate(*, schedule_id: int) -> int:
    """A schedule's tick (its PeriodicTask in django-celery-beat's tables)."""
    return len(schedules.reevaluate(schedule_id=schedule_id))


@evalhub_task(give_up=_logged, soft_time_limit=120, time_limit=150)
def scan_watch_folder() -> int:
    """Register adapters dropped in EVALHUB_WATCH_FOLDER (CELERY_BEAT_SCHEDULE)."""
    return len(watch.watch_folder_scan())


@evalhub_task(give_up=_logged, soft_time_limit=300, time_limit=330)
def finish_studies() -> int:
    """Freeze the verdicts of recipe studies that have all their ratings (CELERY_BEAT_SCHEDULE)."""
    return recipes.studies_finish()


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def deliver(self: Any, *, delivery_id: int) -> None:
    """Send one notification; a refusal is retried with the project's backoff (`retry_countdown`) until
    EVALHUB_WEBHOOK_ATTEMPTS tries (at most the policy's MAX_RETRIES + 1), then the delivery is marked failed. Unlike `evalhub_task`, a refusal is
    retried in process too (no broker): there, with no queue to wait in, the next try follows at once."""
    tries = self.request.retries
    while True:
        try:
            notifications.delivery_attempt(delivery_id=delivery_id)
            return
        except notifications.DeliveryFailed as exc:
            tries += 1
            if tries >= min(settings.EVALHUB_WEBHOOK_ATTEMPTS, MAX_RETRIES + 1):
                notifications.delivery_give_up(delivery_id=delivery_id, error=str(exc))
                return
            if not self.request.is_eager:
                raise self.retry(exc=exc, countdown=retry_countdown(tries - 1)) from exc
