"""Celery task of the judge: a thin wrapper under the project's one retry policy (`evalhub.celery`).

`judge_study` loads a model, so it goes to the `gpu` queue (settings.CELERY_TASK_ROUTES); a CPU-only
deployment serves that queue from its cpu worker. The body is harmless when run twice: pairs already
judged are not judged again, and the routing is applied only before any rater has a task.
"""

from __future__ import annotations

from typing import Any

from evalhub.celery import evalhub_task
from evalhub.judging import services


def _judging_gave_up(name: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    services.study_judge_gave_up(study_id=kwargs["study_id"], error=f"{name} gave up: {exc!r}")


@evalhub_task(give_up=_judging_gave_up)
def judge_study(*, study_id: int) -> dict[str, Any]:
    return services.study_judge(study_id=study_id)


def on_study_created(sender: Any, *, study_id: int, **kwargs: Any) -> None:
    """annotation's `study_created` signal: judge the new study's pairs in the background."""
    judge_study.delay(study_id=study_id)
