"""Celery tasks of the suites app: a large upload's import, and a staged upload's PII preview.

Thin: it takes the upload's id and calls `services.suite_upload_import`, which checks the upload's
status first so a redelivery is harmless. Time limits come from CELERY_TASK_SOFT_TIME_LIMIT /
CELERY_TASK_TIME_LIMIT: screening runs at tens of rows a second, so the deployment sizes them.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from evalhub.suites import services

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 3


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def import_upload(self: Task, *, upload_id: str) -> None:
    try:
        services.suite_upload_import(upload_id=upload_id)
    except TRANSIENT as exc:
        if not self.request.is_eager and self.request.retries < MAX_RETRIES:
            raise self.retry(exc=exc, countdown=int(min(10 * 2**self.request.retries, 300))) from exc
        _give_up(self, upload_id, exc)
    except Exception as exc:
        _give_up(self, upload_id, exc)


@shared_task(acks_late=True)
def screen_upload(*, upload_id: str) -> None:
    """Screen a staged upload's preview rows for PII, in a worker (never in a web process)."""
    services.suite_upload_screen(upload_id=upload_id)


def _give_up(task: Task, upload_id: str, exc: Exception) -> None:
    log.exception("import_upload gave up on upload %s", upload_id)
    services.suite_upload_fail(
        upload_id=upload_id, message=f"The import stopped on an unexpected error: {exc!r}"
    )
    if not task.request.is_eager:
        raise exc
