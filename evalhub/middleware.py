"""Request-level guards: security headers, a cap on request bodies, JSON errors under /api/, and 503 with
Retry-After when the database or the broker is away for a moment.

Order in MIDDLEWARE: SecurityHeadersMiddleware sits right after Django's SecurityMiddleware so every
response gets the headers, including those short-circuited by later middleware; the body cap comes
next so an oversized upload is refused before anything reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from evalhub.api import error_json_response
from evalhub.celery import TRANSIENT_ERRORS
from evalhub.ops.logs import request_id, request_id_from

log = logging.getLogger(__name__)

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)


def _docs_policy() -> str:
    # Swagger UI's files come from our own static files (drf-spectacular-sidecar) and its start-up
    # script from /api/docs/?script; only its inline styles need more than the site-wide policy.
    return settings.CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class SecurityHeadersMiddleware:
    """Headers Django does not set itself (CSP, CORP, Permissions-Policy), and the ones it sets, enforced."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path.startswith("/api/docs"):
            response.headers.setdefault("Content-Security-Policy", _docs_policy())
        else:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if is_api_path(request.path):
            # API answers carry private project data and sometimes a token secret: never cache them.
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class RequestSizeLimitMiddleware:
    """Refuse a body larger than EVALHUB_MAX_UPLOAD_BYTES with 413, from its Content-Length, unread.

    Django caps form and JSON bodies (DATA_UPLOAD_MAX_MEMORY_SIZE) but streams uploaded files to disk
    without limit; this caps every body, file uploads included. A body without Content-Length is
    read by Django as empty, so it cannot slip past.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return self._refuse(request, 400, "The Content-Length header is not a number.")
        limit = int(settings.EVALHUB_MAX_UPLOAD_BYTES)
        if length > limit:
            return self._refuse(request, 413, f"The request body is larger than the limit of {limit} bytes.")
        return self.get_response(request)

    def _refuse(self, request: HttpRequest, status: int, message: str) -> HttpResponse:
        if is_api_path(request.path):
            return error_json_response(
                status, code="too_large" if status == 413 else "bad_request", message=message
            )
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RejectNulBytesMiddleware:
    """Refuse a NUL byte in the path or query string with 400: no address or filter needs one, and
    PostgreSQL cannot compare text with it, so it would otherwise surface as a server error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            "\x00" in request.path
            or "%00" in request.META.get("QUERY_STRING", "")
            or "\x00" in (request.META.get("QUERY_STRING", ""))
        ):
            message = "The address contains a NUL character."
            if is_api_path(request.path):
                return error_json_response(400, code="bad_request", message=message)
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class ApiErrorFormatMiddleware:
    """Errors that never reached DRF (unknown URL, CSRF failure, server error) still get the API's format."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            is_api_path(request.path)
            and response.status_code >= 400
            and not response.headers.get("Content-Type", "").startswith("application/json")
        ):
            return error_json_response(response.status_code)
        return response


UNAVAILABLE_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Temporarily unavailable</title>"
    "<h1>evalhub is temporarily unavailable</h1><p>The database or the task queue did not answer. "
    "Nothing was lost; please try again in {seconds} seconds.</p></html>"
)


class TransientErrorMiddleware:
    """A view that failed because the database or the broker went away answers 503 with Retry-After
    (EVALHUB_RETRY_AFTER_SECONDS), in the API's error format under /api/ and as a short page elsewhere,
    so a client retries instead of reading a 500 as a bug.

    DRF's exception handler leaves these errors alone, so API views reach `process_exception` too. The page
    is a fixed string: rendering the site's templates would query the database that just failed.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, transient_errors()):
            return None
        log.warning("503 for %s %s: %r", request.method, request.path, exception)
        seconds = int(settings.EVALHUB_RETRY_AFTER_SECONDS)
        if is_api_path(request.path):
            response: HttpResponse = error_json_response(
                503, code="unavailable",
                message=f"The database or the task queue is unavailable; retry in {seconds} s.",
            )
        else:
            response = HttpResponse(UNAVAILABLE_PAGE.format(seconds=seconds), status=503)
        response["Retry-After"] = str(seconds)
        return response


def transient_errors() -> tuple[type[Exception], ...]:
    """The task policy's transient errors and the broker client's own (kombu wraps a refused connection),
    and the Redis client's: with CACHE_URL on Redis, every API request reads the cache (DRF's throttles),
    and redis-py's ConnectionError is not the built-in one."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (*TRANSIENT_ERRORS, BrokerError, RedisConnectionError, RedisTimeoutError)


class RequestIdMiddleware:
    """Give each request an id (the load balancer's X-Request-ID, or a new one) for the JSON logs, and echo
    it in the response so a user's report can be matched with the server's log lines."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        rid = request_id_from(request.headers.get("X-Request-ID"))
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
