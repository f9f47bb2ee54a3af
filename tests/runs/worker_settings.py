"""Settings for the real-worker test: the normal settings, with Redis sweeping for abandoned messages
every second instead of roughly every 100 s, so a killed worker's chunk comes back within seconds,
and every broker key under the test's own prefix, so test sessions sharing a Redis never meet."""

import os

from evalhub.settings import *  # noqa: F403
from evalhub.settings import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "global_keyprefix": os.environ.get("EVALHUB_TEST_BROKER_PREFIX", ""),
}

# Import the engine in the worker's main process, so each prefork child starts with torch already
# loaded (the test kills and restarts workers; it should not wait for torch's import each time).
import evalhub.generation.hf_backend  # noqa: E402, F401
