"""Celery tasks for automatic scoring: thin, idempotent (scores are upserted), retried on transient errors.

Each task first checks that its run exists and is completed, so a message delivered again after the
run was deleted, or sent for a run that is not final, does nothing. The scoring services compute only
the scores not stored yet, so a redelivered task writes nothing twice.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from evalhub.runs import scoring

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    name="evalhub.runs.tasks.score_text",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_text_task(*, run_id: int, force: bool = False) -> int:
    if not scoring.run_is_scorable(run_id=run_id):
        log.info("run %s is not completed (or is gone): no text scoring", run_id)
        return 0
    return scoring.score_text(run_id=run_id, force=force)


@shared_task(
    name="evalhub.runs.tasks.score_perplexity",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_perplexity_task(*, run_id: int, force: bool = False) -> int:
    if not scoring.run_is_scorable(run_id=run_id):
        log.info("run %s is not completed (or is gone): no perplexity", run_id)
        return 0
    return scoring.score_perplexity(run_id=run_id, force=force)
