"""Celery task of the suites app: a large upload's import, run off the request.

Thin: it takes the upload's id and calls `services.suite_upload_import`, which checks the upload's
status first so a redelivery is harmless; retries follow the project's one policy
(`evalhub.celery.evalhub_task`). Time limits come from CELERY_TASK_SOFT_TIME_LIMIT /
CELERY_TASK_TIME_LIMIT: screening runs at tens of rows a second, so the deployment sizes them.
"""

from __future__ import annotations

from typing import Any

from evalhub.celery import evalhub_task
from evalhub.suites import services


def _import_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.suite_upload_fail(
        upload_id=kwargs["upload_id"], message=f"The import stopped on an unexpected error: {exc!r}"
    )


@evalhub_task(give_up=_import_gave_up)
def import_upload(*, upload_id: str) -> None:
    services.suite_upload_import(upload_id=upload_id)
