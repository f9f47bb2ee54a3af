"""Test settings: the normal settings with a fast hasher, in-memory mail and cache, media in a temp dir.

The database still comes from DATABASE_URL, so the same suite runs on SQLite and on PostgreSQL.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("EVALHUB_TESTING", "1")

from evalhub.settings import *

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "reports": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "reports"},
}
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="evalhub-test-media-"))
EVALHUB_SCRATCH_DIR = Path(tempfile.mkdtemp(prefix="evalhub-test-scratch-"))
# Real-worker tests point Celery at Redis themselves; everything else runs tasks in process.
CELERY_TASK_ALWAYS_EAGER = True
# Generation tests finish many runs; scoring tests turn this on themselves.
EVALHUB_SCORE_ON_COMPLETE = False
CELERY_BROKER_URL = "memory://"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "10000/minute", "user": "100000/minute", "login": "10000/minute"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
