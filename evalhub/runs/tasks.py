"""Celery tasks of a run: thin wrappers that take ids and call a service.

`generate_chunk` and `prepare_run` (which loads the model for the adapter sanity check) are routed
to the `gpu` queue by settings.CELERY_TASK_ROUTES; anything else goes to `cpu`. Both are
acks_late: a worker killed mid-task leaves the message unacknowledged and the broker delivers it
again; the services make a second delivery harmless. A transient database or broker error is
retried with exponential backoff; when a task gives up (retries exhausted, a soft time limit, an
unexpected error) the run is failed through `run_fail` with the error, so it can be resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from evalhub.runs import services

log = logging.getLogger(__name__)

# Errors worth another try: the database or broker went away for a moment.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 5


def _backoff(retries: int) -> int:
    return int(min(5 * 2**retries, 300))


def _give_up_or_retry(task: Task, run_id: int, body: Callable[[], None]) -> None:
    try:
        body()
    except TRANSIENT as exc:
        # Embedded mode has no broker to retry through: fail the run at once, resumable later.
        if not task.request.is_eager and task.request.retries < MAX_RETRIES:
            raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from exc
        _give_up(task, run_id, exc)
    except Exception as exc:
        _give_up(task, run_id, exc)


def _give_up(task: Task, run_id: int, exc: Exception) -> None:
    name = str(task.name).rsplit(".", 1)[-1]
    log.exception("%s gave up on run %s", name, run_id)
    services.run_fail(run_id=run_id, error=f"{name} gave up: {exc!r}")
    if not task.request.is_eager:
        raise exc  # recorded as the task's failure; in process the run's error says it all


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, soft_time_limit=900, time_limit=1000)
def prepare_run(self: Task, *, run_id: int) -> None:
    _give_up_or_retry(self, run_id, lambda: services.run_prepare(run_id=run_id))


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def generate_chunk(self: Task, *, run_id: int, chunk_index: int) -> None:
    # Time limits come from CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT: a chunk's
    # duration depends on the model and the chunk size, which the deployment chooses.
    _give_up_or_retry(
        self, run_id, lambda: services.run_generate_chunk(run_id=run_id, chunk_index=chunk_index)
    )
