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


def on_run_completed(run_id: int) -> None:
    """Call every hook; one that fails is logged under its own name and the others still run.

    The run is already completed and committed: a failing hook (a broker that is down, or in the
    embedded mode scoring itself, which runs inline) must not be reported as a generation
    failure. `manage.py score_run` fills in scores a failed hook left missing.
    """
    for path in RUN_COMPLETED_HOOKS:
        try:
            import_string(path)(run_id=run_id)
        except Exception:
            log.exception("run-completed hook %s failed for run %s", path, run_id)
