"""Celery tasks for automatic scoring: thin, idempotent (scores are upserted), retried on transient errors."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from evalhub.runs import scoring

TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(
    name="evalhub.runs.tasks.score_text",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_text_task(*, run_id: int) -> int:
    return scoring.score_text(run_id=run_id)


@shared_task(
    name="evalhub.runs.tasks.score_perplexity",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
)
def score_perplexity_task(*, run_id: int) -> int:
    return scoring.score_perplexity(run_id=run_id)
