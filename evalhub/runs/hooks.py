"""What follows a completed run, in one place.

Each entry is the dotted path of a function taking `run_id=`; it is called after the commit that
marks the run completed (so a task it enqueues sees the run's outputs). Automatic scoring adds
its enqueueing function here, for example "evalhub.runs.scoring.run_score_enqueue".
"""

from __future__ import annotations

from django.utils.module_loading import import_string

RUN_COMPLETED_HOOKS: list[str] = ["evalhub.runs.scoring.run_score_enqueue"]


def on_run_completed(run_id: int) -> None:
    for path in RUN_COMPLETED_HOOKS:
        import_string(path)(run_id=run_id)
