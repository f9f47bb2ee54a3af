"""Settings for the real-worker test: the normal settings, with Redis sweeping for abandoned messages
every second instead of roughly every 100 s, so a killed worker's chunk comes back within seconds."""

from evalhub.settings import *  # noqa: F403
from evalhub.settings import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

# Import the engine in the worker's main process, so each prefork child starts with torch already
# loaded (the test kills and restarts workers; it should not wait for torch's import each time).
import evalhub.generation.hf_backend  # noqa: E402, F401
