"""Celery tasks for automatic scoring: thin, idempotent (scores are upserted), retried on transient errors.

Each task first checks that its run exists and is completed, so a message delivered again after the
run was deleted, or sent for a run that is not final, does nothing. The scoring services compute only
the scores not stored yet, so a redelivered task writes nothing twice. The service records the kind's
state: running while a try is in progress or waits for a retry, failed when the task gives up (retries
exhausted, or an error that a retry would not fix), and the exception is raised again so Celery
records it too.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from evalhub.runs import scoring
from evalhub.runs.models import ScoringKind

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


def _score(task: Any, *, run_id: int, kind: str, force: bool) -> int:
    if not scoring.run_is_scorable(run_id=run_id):
        log.info("run %s is not completed (or is gone): no %s scoring", run_id, kind)
        return 0
    retrying = task.request.retries < task.max_retries
    return scoring.run_score_kind(
        run_id=run_id, kind=kind, force=force, retry_on=TRANSIENT if retrying else ()
    )


@shared_task(
    name="evalhub.runs.tasks.score_text",
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_text_task(self: Any, *, run_id: int, force: bool = False) -> int:
    return _score(self, run_id=run_id, kind=ScoringKind.TEXT, force=force)


@shared_task(
    name="evalhub.runs.tasks.score_perplexity",
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_perplexity_task(self: Any, *, run_id: int, force: bool = False) -> int:
    return _score(self, run_id=run_id, kind=ScoringKind.PERPLEXITY, force=force)
