"""evalhub settings, read from the environment.

The embedded default (no variable set) is a developer machine: SQLite under ./data, Celery tasks
run in process, DEBUG on. Production sets DEBUG=false, SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL
and ALLOWED_HOSTS; with DEBUG off a missing SECRET_KEY stops start-up instead of running insecurely.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets classes such as ModelAdmin[Adapter] be subscripted at run time, as the type hints use them.
django_stubs_ext.monkeypatch()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EVALHUB_DATA_DIR", BASE_DIR / "data"))
MEDIA_ROOT = Path(os.environ.get("EVALHUB_MEDIA_DIR", DATA_DIR / "media"))
MEDIA_URL = "/media/"
# This machine's folder for files being read (received uploads, local copies of stored ones, spools):
# never shared, unlike the storage below.
EVALHUB_SCRATCH_DIR = Path(os.environ.get("EVALHUB_SCRATCH_DIR", DATA_DIR / "scratch"))
STATIC_ROOT = Path(os.environ.get("EVALHUB_STATIC_DIR", DATA_DIR / "static"))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
FIXTURES_DIR = BASE_DIR / "fixtures"

DEBUG = env_bool("DEBUG", True)
TESTING = env_bool("EVALHUB_TESTING", False)

_DEV_SECRET = "django-insecure-evalhub-development-key-only-for-local-use"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _DEV_SECRET

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files, no CDN
    "evalhub",
    "evalhub.accounts",
    "evalhub.audit",
    "evalhub.catalog",
    "evalhub.suites",
    "evalhub.runs",
    "evalhub.reports",
    "annotation",
    "evalhub.judging",
    "evalhub.ops",
    "django_celery_beat",
    "evalhub.continuous",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "evalhub.middleware.RequestIdMiddleware",
    "evalhub.middleware.SecurityHeadersMiddleware",
    "evalhub.middleware.RequestSizeLimitMiddleware",
    "evalhub.middleware.RejectNulBytesMiddleware",
    "evalhub.middleware.ApiErrorFormatMiddleware",
    "evalhub.middleware.TransientErrorMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "evalhub.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "evalhub.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "evalhub.wsgi.application"
ASGI_APPLICATION = "evalhub.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'evalhub.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL and a busy timeout let the in-process demo server and a CLI run share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every login goes through the lockout-aware backend: 5 failures per username and address lock it.
AUTHENTICATION_BACKENDS = ["evalhub.accounts.backends.LockoutModelBackend"]
EVALHUB_LOGIN_FAILURE_LIMIT = int(os.environ.get("EVALHUB_LOGIN_FAILURE_LIMIT", "5"))
EVALHUB_LOGIN_LOCKOUT_SECONDS = int(os.environ.get("EVALHUB_LOGIN_LOCKOUT_SECONDS", str(15 * 60)))
# API tokens: the lifetime a new token gets unless its creator picks another, and the longest allowed.
EVALHUB_TOKEN_LIFETIME_DAYS = int(os.environ.get("EVALHUB_TOKEN_LIFETIME_DAYS", "90"))
EVALHUB_TOKEN_MAX_LIFETIME_DAYS = int(os.environ.get("EVALHUB_TOKEN_MAX_LIFETIME_DAYS", "365"))
# The OpenAPI schema and the API docs pages need a login unless this opens them to anyone.
EVALHUB_PUBLIC_API_SCHEMA = env_bool("EVALHUB_PUBLIC_API_SCHEMA", False)
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Mail (set-password links for people added from Members): printed to the console unless a deployment
# names a real backend, so the embedded default needs no mail server.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "evalhub@localhost")

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True


def env_storage() -> dict[str, Any]:
    """STORAGES["default"], where uploads are kept: a folder under MEDIA_ROOT unless
    EVALHUB_STORAGE_BACKEND names another storage class ("s3" for django-storages' S3Storage, an
    optional install), with EVALHUB_STORAGE_OPTIONS (a JSON object) as its options."""
    backend = (
        os.environ.get("EVALHUB_STORAGE_BACKEND", "").strip() or "django.core.files.storage.FileSystemStorage"
    )
    backend = {"s3": "storages.backends.s3.S3Storage"}.get(backend.lower(), backend)
    try:
        options = json.loads(os.environ.get("EVALHUB_STORAGE_OPTIONS", "").strip() or "{}")
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"EVALHUB_STORAGE_OPTIONS is not valid JSON: {exc}.") from exc
    if not isinstance(options, dict):
        raise ImproperlyConfigured("EVALHUB_STORAGE_OPTIONS must be a JSON object of the storage's options.")
    return {"BACKEND": backend, "OPTIONS": options}


STORAGES = {
    "default": env_storage(),
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["CACHE_URL"],
    }
    if os.environ.get("CACHE_URL")
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Built reports (evalhub.reports.services.report_cached): keyed by their input rows' hash, shared by
# the web processes and the worker that builds them, so Redis when CACHE_URL is set, else files in
# the data folder (the embedded mode needs no service; a per-process memory cache would not do).
CACHES["reports"] = (
    {**CACHES["default"], "KEY_PREFIX": "reports", "TIMEOUT": 7 * 24 * 3600}
    if os.environ.get("CACHE_URL")
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "cache" / "reports"),
        "TIMEOUT": 7 * 24 * 3600,
        "OPTIONS": {"MAX_ENTRIES": 500},
    }
)

# Uploads: files above this size are streamed to disk by Django; suites have their own limits.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
EVALHUB_MAX_UPLOAD_BYTES = int(os.environ.get("EVALHUB_MAX_UPLOAD_BYTES", str(200 * 1024 * 1024)))
# Suite imports of more rows than this run as a Celery task (202 + status URL) instead of in the request.
EVALHUB_SUITE_BACKGROUND_ROWS = int(os.environ.get("EVALHUB_SUITE_BACKGROUND_ROWS", "500"))

# Celery: with no broker configured, tasks run in process (eagerly) so the embedded mode needs no service.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {
    "evalhub.runs.tasks.generate_chunk": {"queue": "gpu"},
    "evalhub.runs.tasks.prepare_run": {"queue": "gpu"},  # the adapter sanity check loads the model
    "evalhub.runs.tasks.score_perplexity": {"queue": "gpu"},
    "evalhub.judging.tasks.judge_study": {"queue": "gpu"},  # loads the judge model
    "evalhub.runs.tasks.score_judge_checks": {"queue": "gpu"},  # loads the judge model
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    # Redis: every broker key under this prefix, so deployments (or checks) sharing one Redis never meet.
    "global_keyprefix": os.environ.get("CELERY_BROKER_KEY_PREFIX", ""),
}
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "1800"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "2100"))
# /readyz wants a worker listening on each of these queues (when a broker is configured).
EVALHUB_READY_QUEUES = env_list("EVALHUB_READY_QUEUES", ["cpu", "gpu"])
# /metrics answers only `Authorization: Bearer <this>`; unset, the endpoint is off (404).
EVALHUB_METRICS_TOKEN = os.environ.get("EVALHUB_METRICS_TOKEN", "")
# Seconds a client is told to wait (Retry-After) when the database or the broker is unavailable (503).
EVALHUB_RETRY_AFTER_SECONDS = int(os.environ.get("EVALHUB_RETRY_AFTER_SECONDS", "10"))
# The watchdog (evalhub.runs.watchdog): a running chunk with no saved output for a lease is sent again.
# The lease must be longer than the slowest generation batch of the deployment's model.
EVALHUB_CHUNK_LEASE_SECONDS = int(os.environ.get("EVALHUB_CHUNK_LEASE_SECONDS", "900"))
EVALHUB_WATCHDOG_INTERVAL_SECONDS = int(os.environ.get("EVALHUB_WATCHDOG_INTERVAL_SECONDS", "60"))
# Continuous evaluation (evalhub.continuous): adapters dropped in <watch folder>/<project>/<base model>/ are
# registered once unchanged for the settle time; webhooks get this many tries; private webhook addresses
# (loopback, 10.x, 169.254.x ...) are refused unless an admin allows them here.
EVALHUB_WATCH_FOLDER = os.environ.get("EVALHUB_WATCH_FOLDER", "")
EVALHUB_WATCH_INTERVAL_SECONDS = int(os.environ.get("EVALHUB_WATCH_INTERVAL_SECONDS", "60"))
EVALHUB_WATCH_SETTLE_SECONDS = int(os.environ.get("EVALHUB_WATCH_SETTLE_SECONDS", "30"))
EVALHUB_WEBHOOK_ATTEMPTS = int(os.environ.get("EVALHUB_WEBHOOK_ATTEMPTS", "5"))
EVALHUB_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("EVALHUB_WEBHOOK_TIMEOUT_SECONDS", "10"))
EVALHUB_WEBHOOK_ALLOW_PRIVATE = env_bool("EVALHUB_WEBHOOK_ALLOW_PRIVATE", False)
# HTTP judge endpoints (evalhub.judging.endpoints): same URL rule as webhooks (evalhub.outbound). A judge
# served inside the network (vLLM on a private address) needs an admin to allow private addresses here.
EVALHUB_JUDGE_ALLOW_PRIVATE = env_bool("EVALHUB_JUDGE_ALLOW_PRIVATE", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "evalhub@localhost")
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
# Every periodic task of the project, in one place (run by `celery -A evalhub beat`). Beat uses
# django-celery-beat's database scheduler: these entries are copied into its tables at start, next to the
# re-evaluation schedules that projects create (evalhub.continuous.schedules).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "runs-watchdog": {
        "task": "evalhub.runs.tasks.heal_runs",
        "schedule": float(EVALHUB_WATCHDOG_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": float(EVALHUB_WATCHDOG_INTERVAL_SECONDS)},
    },
    "continuous-watch-folder": {
        "task": "evalhub.continuous.tasks.scan_watch_folder",
        "schedule": float(EVALHUB_WATCH_INTERVAL_SECONDS),
        "options": {"queue": "cpu", "expires": float(EVALHUB_WATCH_INTERVAL_SECONDS)},
    },
    "continuous-finish-studies": {
        "task": "evalhub.continuous.tasks.finish_studies",
        "schedule": 300.0,
        "options": {"queue": "cpu", "expires": 300.0},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "evalhub.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "evalhub.api.PageNumberPagination",
    "DEFAULT_PARSER_CLASSES": [
        "evalhub.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "evalhub.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("EVALHUB_THROTTLE_ANON", "60/minute"),
        "user": os.environ.get("EVALHUB_THROTTLE_USER", "6000/minute"),
        "login": os.environ.get("EVALHUB_THROTTLE_LOGIN", "10/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "evalhub API",
    "DESCRIPTION": "Register adapters, upload suites, start runs, rate outputs and read go/no-go verdicts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status": give each choice set its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "AdapterStatusEnum": "evalhub.catalog.models.AdapterStatus",
        "RunStatusEnum": "evalhub.runs.models.RunStatus",
        "ScoringKindEnum": "evalhub.runs.models.ScoringKind",
        "StudyStatusEnum": "annotation.models.StudyStatus",
    },
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: the docs page works offline
    # and runs no third-party script with the user's session.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Generation defaults; a run may override them.
EVALHUB_DEVICE = os.environ.get("EVALHUB_DEVICE", "auto")
# "none": base models in their dtype; "nf4" / "fp4" / "int8": load them quantised by bitsandbytes (GPU
# only, the general path), as QLoRA adapters' users deploy them.
EVALHUB_BASE_QUANTIZATION = os.environ.get("EVALHUB_BASE_QUANTIZATION", "none")
EVALHUB_GENERATION_CHUNK_SIZE = int(os.environ.get("EVALHUB_GENERATION_CHUNK_SIZE", "32"))
# Score a run (text metrics, checks, perplexity) as soon as its generation completes.
EVALHUB_SCORE_ON_COMPLETE = env_bool("EVALHUB_SCORE_ON_COMPLETE", True)

# Security headers. The CSP allows only our own scripts and styles: templates carry no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = (
    False  # read by htmx from the cookie-less meta tag instead; the cookie itself stays same-site
)
SESSION_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "evalhub.ops.logs.JsonFormatter"},
    },
    # LOG_FORMAT=json: one JSON object a line, with request_id / task_id (evalhub/ops/logs.py).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("LOG_FORMAT", "plain") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
