"""What follows a completed run, in one place.

Each entry is the dotted path of a function taking `run_id=`; it is called after the commit that
marks the run completed (so a task it enqueues sees the run's outputs). Automatic scoring adds
its enqueueing function here, for example "evalhub.runs.scoring.run_score_enqueue".
"""

from __future__ import annotations

import logging

from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

RUN_COMPLETED_HOOKS: list[str] = ["evalhub.runs.scoring.run_score_enqueue"]
#: Called with `run_id=` once no kind of the run's scoring is queued or running (each done or failed).
SCORING_FINISHED_HOOKS: list[str] = ["evalhub.continuous.recipes.evaluation_scored"]
#: Called with `run_id=` and `reason=` after the commit that failed a run, or that the watchdog noted a stall.
RUN_FAILED_HOOKS: list[str] = ["evalhub.continuous.notifications.notify_run_failed"]
RUN_STALLED_HOOKS: list[str] = ["evalhub.continuous.notifications.notify_run_stalled"]


def _call(paths: list[str], what: str, run_id: int, **kwargs: object) -> None:
    for path in paths:
        try:
            import_string(path)(run_id=run_id, **kwargs)
        except Exception:
            log.exception("%s hook %s failed for run %s", what, path, run_id)


def on_scoring_finished(run_id: int) -> None:
    _call(SCORING_FINISHED_HOOKS, "scoring-finished", run_id)


def on_run_failed(run_id: int, reason: str) -> None:
    _call(RUN_FAILED_HOOKS, "run-failed", run_id, reason=reason)


def on_run_stalled(run_id: int, reason: str) -> None:
    _call(RUN_STALLED_HOOKS, "run-stalled", run_id, reason=reason)


def on_run_completed(run_id: int) -> None:
    """Call every hook; one that fails is logged under its own name and the others still run.

    The run is already completed and committed: a failing hook (a broker that is down, or in the
    embedded mode scoring itself, which runs inline) must not be reported as a generation
    failure. `manage.py score_run` fills in scores a failed hook left missing.
    """
    _call(RUN_COMPLETED_HOOKS, "run-completed", run_id)
