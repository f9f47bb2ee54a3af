"""Settings for the real-worker test: the normal settings, with Redis sweeping for abandoned messages
every second instead of roughly every 100 s, so a killed worker's chunk comes back within seconds,
and every broker key under the test's own prefix, so test sessions sharing a Redis never meet.

The worker's main process also imports the engine, so each prefork child starts with torch loaded,
and every batch first waits EVALHUB_TEST_BATCH_DELAY seconds (through the engine's fault hook), so
a chunk is in flight long enough to be killed on any machine, however fast it generates.
"""

import os
import time
from typing import Any

import evalhub.generation.hf_backend  # noqa: F401
from evalhub.runs import engine as _engine
from evalhub.settings import *  # noqa: F403
from evalhub.settings import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "global_keyprefix": os.environ.get("EVALHUB_TEST_BROKER_PREFIX", ""),
}

_get_backend = _engine.get_backend


def _slow_backend(name: str, **options: Any) -> Any:
    backend: Any = _get_backend(name, **options)
    delay = float(os.environ.get("EVALHUB_TEST_BATCH_DELAY", "0"))
    backend.fault_hook = lambda size: time.sleep(delay)
    return backend


_engine.get_backend = _slow_backend
