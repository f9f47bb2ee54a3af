"""Celery tasks of a run: thin wrappers that take ids and call a service, under the project's one retry
policy (`evalhub.celery.evalhub_task`).

`generate_chunk`, `prepare_run` (which loads the model for the adapter sanity check), `score_perplexity` and
`score_judge_checks` (which loads the judge) are routed to the `gpu` queue by settings.CELERY_TASK_ROUTES; anything else goes to `cpu`. When a run task
gives up the run is failed through `run_fail` with the error, so it can be resumed; when a scoring task
gives up, the kind's scoring state records the error.

Each scoring task first checks that its run exists and is completed, so a message delivered again after the
run was deleted, or sent for a run that is not final, does nothing; the scoring services compute only the
scores not stored yet, so a redelivered task writes nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from evalhub.celery import TRANSIENT_ERRORS, evalhub_task
from evalhub.runs import scoring, services, watchdog
from evalhub.runs.models import ScoringKind

log = logging.getLogger(__name__)


def _run_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.run_fail(run_id=kwargs["run_id"], error=f"{name} gave up: {exc!r}")


@evalhub_task(give_up=_run_gave_up, soft_time_limit=900, time_limit=1000)
def prepare_run(*, run_id: int) -> None:
    services.run_prepare(run_id=run_id)


@evalhub_task(give_up=_run_gave_up)
def generate_chunk(*, run_id: int, chunk_index: int) -> None:
    # Time limits come from CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT: a chunk's
    # duration depends on the model and the chunk size, which the deployment chooses.
    services.run_generate_chunk(run_id=run_id, chunk_index=chunk_index)


def _score(*, run_id: int, kind: str, force: bool) -> int:
    if not scoring.run_is_scorable(run_id=run_id):
        log.info("run %s is not completed (or is gone): no %s scoring", run_id, kind)
        return 0
    # A transient error leaves the kind running while the task waits for its retry.
    return scoring.run_score_kind(run_id=run_id, kind=kind, force=force, retry_on=TRANSIENT_ERRORS)


def _scoring_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    kind = {"score_perplexity": ScoringKind.PERPLEXITY, "score_judge_checks": ScoringKind.JUDGE_CHECKS}.get(
        name, ScoringKind.TEXT
    )
    scoring.scoring_give_up(run_id=kwargs["run_id"], kind=kind, exc=exc)


@evalhub_task(give_up=_scoring_gave_up)
def score_text(*, run_id: int, force: bool = False) -> int:
    return _score(run_id=run_id, kind=ScoringKind.TEXT, force=force)


@evalhub_task(give_up=_scoring_gave_up)
def score_perplexity(*, run_id: int, force: bool = False) -> int:
    return _score(run_id=run_id, kind=ScoringKind.PERPLEXITY, force=force)


@evalhub_task(give_up=_scoring_gave_up)
def score_judge_checks(*, run_id: int, force: bool = False) -> int:
    """The suite's pending checks evaluated by the run's judge (it loads a model: the gpu queue)."""
    return _score(run_id=run_id, kind=ScoringKind.JUDGE_CHECKS, force=force)


def _watchdog_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    # Nothing to mark: the next tick of the schedule tries again.
    log.error("the run watchdog gave up this tick: %r", exc)


@evalhub_task(give_up=_watchdog_gave_up, soft_time_limit=120, time_limit=150)
def heal_runs() -> int:
    """The watchdog's tick (CELERY_BEAT_SCHEDULE): re-enqueue the work of stalled runs."""
    return len(watchdog.runs_heal().resent)
