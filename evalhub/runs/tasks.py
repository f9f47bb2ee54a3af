"""Celery tasks of a run: thin wrappers that take ids and call a service.

`generate_chunk` and `prepare_run` (which loads the model for the adapter sanity check) are routed
to the `gpu` queue by settings.CELERY_TASK_ROUTES; anything else goes to `cpu`. Both are
acks_late: a worker killed mid-task leaves the message unacknowledged and the broker delivers it
again; the services make a second delivery harmless. When a task gives up, the run is failed.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from evalhub.runs import services

# Errors worth another try: the database or broker went away for a moment.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


class RunTask(Task):
    """Fails the run (kwarg `run_id`) through the service when the task gives up."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        run_id = (kwargs or {}).get("run_id")
        if run_id is not None:
            services.run_fail(run_id=run_id, error=f"{self.name.rsplit('.', 1)[-1]} gave up: {exc!r}")


@shared_task(
    base=RunTask,
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
    soft_time_limit=900,
    time_limit=1000,
)
def prepare_run(self: Task, *, run_id: int) -> None:
    services.run_prepare(run_id=run_id)


@shared_task(
    base=RunTask,
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def generate_chunk(self: Task, *, run_id: int, chunk_index: int) -> None:
    # Time limits come from CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT: a chunk's
    # duration depends on the model and the chunk size, which the deployment chooses.
    services.run_generate_chunk(run_id=run_id, chunk_index=chunk_index)
