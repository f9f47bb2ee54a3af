"""The Celery app, and the one retry policy every task of the project follows (`evalhub_task`).

Workers: `celery -A evalhub worker -Q gpu` on GPU hosts, `-Q cpu` elsewhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from celery import Celery, shared_task
from celery.worker.control import inspect_command
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalhub.settings")

app = Celery("evalhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


@inspect_command()
def evalhub_device(state: Any) -> dict[str, Any]:
    """A remote-control command every worker answers, so /readyz (evalhub.ops.checks) can say whether a gpu
    worker sees its GPU: the configured device and what torch sees (workers have torch loaded anyway)."""
    from django.conf import settings

    info: dict[str, Any] = {"configured": str(settings.EVALHUB_DEVICE), "cuda_available": False, "cuda_devices": 0}
    try:
        import torch
    except ImportError:  # a cpu-only worker without torch
        return {**info, "torch": False}
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["cuda_devices"] = int(torch.cuda.device_count()) if info["cuda_available"] else 0
    return info

# Errors worth another try: the database or the broker went away for a moment.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
MAX_RETRIES = 5

T = TypeVar("T")
#: Called once when a task gives up, with the task's short name, the error and the task's keyword arguments;
#: it records the failure through a service (the run, the upload or the scoring state says what happened).
GiveUp = Callable[[str, Exception, dict[str, Any]], None]


class RetryingTask(Protocol):
    name: str | None
    request: Any

    def retry(self, *, exc: Exception, countdown: int) -> Exception: ...


def retry_countdown(retries: int) -> int:
    """Seconds before the next try: 5, 10, 20, 40, 80 (at most 5 minutes)."""
    return int(min(5 * 2**retries, 300))


def run_with_retry_policy(task: RetryingTask, body: Callable[[], T], give_up: GiveUp, kwargs: dict[str, Any]) -> T | None:
    """Run a task's body under the policy: a transient error is retried with backoff on a worker, up to
    MAX_RETRIES times; any other error, or the last transient one, gives up.

    Giving up records the failure through `give_up`, then re-raises on a worker (so Celery records the
    task as failed) and returns None in process (embedded mode, no broker): there is nothing to retry
    through, and the request that enqueued the task must not fail because its background job did.
    """
    try:
        return body()
    except TRANSIENT_ERRORS as exc:
        if not task.request.is_eager and task.request.retries < MAX_RETRIES:
            raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries)) from exc
        failure: Exception = exc
    except Exception as exc:
        failure = exc
    name = str(task.name).rsplit(".", 1)[-1]
    log.error("%s gave up (%s): %r", name, kwargs, failure, exc_info=failure)
    give_up(name, failure, kwargs)
    if not task.request.is_eager:
        raise failure
    return None


def evalhub_task(*, give_up: GiveUp, **options: Any) -> Callable[[Callable[..., T]], Any]:
    """Declare a task (`@evalhub_task(give_up=...)` on a function of keyword ids) under the one policy.

    Tasks are acks_late: a worker killed mid-task leaves the message unacknowledged and the broker delivers
    it again, so every task body must be harmless when run twice. `options` go to Celery (`name=` keeps the
    name of a task whose messages may be queued; time limits where one differs from the settings).
    """

    def decorate(fun: Callable[..., T]) -> Any:
        def run(self: Any, **kwargs: Any) -> T | None:
            return run_with_retry_policy(self, lambda: fun(**kwargs), give_up, kwargs)

        run.__name__, run.__qualname__ = fun.__name__, fun.__qualname__
        run.__module__, run.__doc__ = fun.__module__, fun.__doc__
        return shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, **options)(run)

    return decorate
