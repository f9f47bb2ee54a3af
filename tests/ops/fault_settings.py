"""Settings of the fault tests' Celery workers: those of the real-worker tests (tests/runs/worker_settings.py:
abandoned messages swept every second, every generation batch slowed by EVALHUB_TEST_BATCH_DELAY), and each
scoring task held (its state already running) for EVALHUB_TEST_SCORE_DELAY seconds first, so a fault lands
while scoring is in flight on any machine, however fast it scores."""

import os
import time
from typing import Any

from celery.signals import worker_process_init

from tests.runs.worker_settings import *  # noqa: F403


@worker_process_init.connect
def _hold_scoring(**_: Any) -> None:
    # In each pool child, once Django is set up (the scoring module imports models).
    from evalhub.runs import scoring

    scorer = scoring._scorer

    def held_scorer(kind: str) -> Any:
        score = scorer(kind)

        def held(**kwargs: Any) -> Any:
            time.sleep(float(os.environ.get("EVALHUB_TEST_SCORE_DELAY", "0")))
            return score(**kwargs)

        return held

    scoring._scorer = held_scorer
