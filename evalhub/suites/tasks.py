"""Celery tasks of the suites app: a large upload's read, its import, and a staged upload's PII preview.

Thin: each takes the upload's id and calls its service, which checks the upload's status first so a
redelivery is harmless; retries follow the project's one policy (`evalhub.celery.evalhub_task`). Time
limits come from CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT: screening runs at tens of rows a
second, so the deployment sizes them.
"""

from __future__ import annotations

import logging
from typing import Any

from evalhub.celery import evalhub_task
from evalhub.suites import services

log = logging.getLogger(__name__)


def _import_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.suite_upload_fail(
        upload_id=kwargs["upload_id"], message=f"The import stopped on an unexpected error: {exc!r}"
    )


def _screen_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    # The upload stays staged with its screening pending: the owner can discard it and upload again.
    log.error("%s gave up on upload %s: %r", name, kwargs.get("upload_id"), exc)


@evalhub_task(give_up=_import_gave_up)
def import_upload(*, upload_id: str) -> None:
    services.suite_upload_import(upload_id=upload_id)


def _read_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.suite_upload_fail(
        upload_id=kwargs["upload_id"], message=f"Reading the file stopped on an unexpected error: {exc!r}"
    )


@evalhub_task(give_up=_read_gave_up)
def read_upload(*, upload_id: str) -> None:
    """Read, validate and screen a large upload for its preview (or a dry run), never in a web process."""
    services.suite_upload_read(upload_id=upload_id)


@evalhub_task(give_up=_screen_gave_up)
def screen_upload(*, upload_id: str) -> None:
    """Screen a staged upload's preview rows for PII, in a worker (never in a web process)."""
    services.suite_upload_screen(upload_id=upload_id)
