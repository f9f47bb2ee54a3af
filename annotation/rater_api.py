"""The two hot rater endpoints (fetch the next task, submit a rating) as plain Django views.

A rater's browser calls them for every rating, so they skip DRF's request stack (content negotiation,
authentication classes, renderers) and read the session's user with one statement instead of two.
Everything else goes to the DRF view of the same URL (annotation.api), which stays the reference:
a bearer token, a non-JSON body, a CSRF failure, a throttled caller, an unusual session (another
backend, a stale auth hash, a non-database session engine) or a wrong method. Both answer the same
JSON, the same errors (evalhub.api's format) and stay in the OpenAPI schema under the DRF class.

Session check without a stale window: the (user id, backend, auth hash) a session key holds cannot
change while the key lives (Django's login and password change rotate the key), so it is decoded
once per process; every request still checks, in the same statement as the user row, that the
session row exists and has not expired, and that the user is active and the hash matches the
password. A logout, a deleted session, a deactivated user or a password change therefore take
effect on the very next request, as with Django's own session authentication.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView

from annotation import api, selectors, services
from annotation.blinding import task_blind_by_id
from annotation.models import Assignment, Consent, RaterPool, Study, StudyStatus
from annotation.queue import task_assign_next
from evalhub.accounts.models import Membership, Role
from evalhub.api import error_body
from evalhub.errors import DomainError, NotFound, ValidationFailed

_DB_SESSIONS = "django.contrib.sessions.backends.db"
# Session key -> (user id, backend, auth hash) as the session row held them; bounded, see _remember.
_SESSIONS: dict[str, tuple[Any, str, str]] = {}
_SESSIONS_MAX = 50_000

View = Callable[..., HttpResponseBase]
M = TypeVar("M", bound=Model)


def _json(data: Any, status: int = 200) -> JsonResponse:
    # DRF's JSONRenderer output: UTF-8, compact.
    return JsonResponse(
        data, status=status, safe=False, json_dumps_params={"ensure_ascii": False, "separators": (",", ":")}
    )


def _error(exc: DomainError) -> JsonResponse:
    return _json(error_body(code=exc.code, message=str(exc), fields=exc.fields), status=exc.http_status)


# --- the session's user ---------------------------------------------------------------------------


def _session_claim(request: HttpRequest) -> tuple[str, tuple[Any, str, str]] | None:
    """The session key and what it says about its user, or None to leave the request to DRF."""
    if settings.SESSION_ENGINE != _DB_SESSIONS or "HTTP_AUTHORIZATION" in request.META:
        return None
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    claim = _SESSIONS.get(key)
    if claim is None:
        session = request.session  # one read of the session row, the first time this process sees it
        user_id, backend, auth_hash = (
            session.get(SESSION_KEY),
            session.get(BACKEND_SESSION_KEY),
            session.get(HASH_SESSION_KEY),
        )
        if not (user_id and backend and auth_hash) or session.session_key != key:
            return None
        claim = (get_user_model()._meta.pk.to_python(user_id), backend, auth_hash)
        if len(_SESSIONS) >= _SESSIONS_MAX:
            _SESSIONS.clear()  # sessions are cheap to decode again; this only bounds memory
        _SESSIONS[key] = claim
    if claim[1] not in settings.AUTHENTICATION_BACKENDS:
        return None
    return key, claim


_USER_FIELDS = ("id", "password", "is_active", "username")


@functools.cache
def _user_sql(*, with_study: bool) -> str:
    """The user row, whether the session row is live, and (for /next) the study the rater may rate,
    with the hash of the terms they accepted, in one statement that PostgreSQL and SQLite both run.
    Table names come from the models; only values are parameters."""
    columns = [f"u.{name}" for name in _USER_FIELDS]
    session = Session._meta.db_table
    columns.append(
        " ".join(["EXISTS (SELECT 1 FROM", session, "x WHERE x.session_key = %s AND x.expire_date > %s)"])
    )
    joins: list[str] = []
    if with_study:
        consent, study = Consent._meta.db_table, Study._meta.db_table
        member, pooled = Membership._meta.db_table, RaterPool.members.through._meta.db_table
        columns += [f"s.{field.column}" for field in Study._meta.concrete_fields]
        columns.append(
            " ".join(
                ["(SELECT c.terms_sha256 FROM", consent, "c WHERE c.study_id = s.id AND c.rater_id = u.id)"]
            )
        )
        assignment = Assignment._meta.db_table
        columns += [f"o.{field.column}" for field in Assignment._meta.concrete_fields]
        joins = [
            "LEFT JOIN",
            study,
            "s ON s.public_id = %s AND s.status = %s",
            "AND EXISTS (SELECT 1 FROM",
            member,
            "m WHERE m.project_id = s.project_id AND m.user_id = u.id AND m.role = %s)",
            "AND (s.pool_id IS NULL OR EXISTS (SELECT 1 FROM",
            pooled,
            "p WHERE p.raterpool_id = s.pool_id AND p.user_id = u.id))",
            # the rater's latest assignment in the study, as queue.latest_assignment reads it
            "LEFT JOIN",
            assignment,
            "o ON o.id = (SELECT l.id FROM",
            assignment,
            "l WHERE l.rater_id = u.id AND l.study_id = s.id ORDER BY l.leased_at DESC LIMIT 1)",
        ]
    user_table = get_user_model()._meta.db_table
    return " ".join(["SELECT", ", ".join(columns), "FROM", user_table, "u", *joins, "WHERE u.id = %s"])


def _from_row(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from its concrete columns in order, through the fields' database converters
    (JSON, datetimes on SQLite), as a raw queryset would build it."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


@dataclass
class RaterContext:
    user: Any
    study: Study | None = None  # given a study id: the study, if the user may rate it
    latest: Assignment | None = None  # and their latest assignment in it


def _rater(request: HttpRequest, *, study_id: str | None = None) -> RaterContext | None:
    """The session's active user (and, given a study id, the study they may rate and their latest
    assignment in it), or None when the request should take DRF's path (no session, a stale one,
    anything unusual)."""
    found = _session_claim(request)
    if found is None:
        return None
    key, (user_id, _, auth_hash) = found
    now: datetime = timezone.now()
    when = connection.ops.adapt_datetimefield_value(now)
    params: list[Any] = [key, when]
    if study_id is not None:
        params += [study_id, StudyStatus.OPEN, Role.RATER]
    params.append(user_id)
    with connection.cursor() as cursor:
        cursor.execute(_user_sql(with_study=study_id is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(_USER_FIELDS)
    live, is_active = bool(row[n]), bool(row[2])
    if not live or not is_active:
        return None
    user_model = get_user_model()
    user = user_model.from_db(connection.alias, list(_USER_FIELDS), list(row[:n]))
    if not constant_time_compare(auth_hash, user.get_session_auth_hash()):
        return None  # DRF's path verifies against SECRET_KEY_FALLBACKS and flushes a stale session
    context = RaterContext(user=user)
    if study_id is not None and row[n + 1] is not None:
        n_study = len(Study._meta.concrete_fields)
        study_row, rest = row[n + 1 : n + 1 + n_study], row[n + 1 + n_study :]
        context.study = _from_row(Study, study_row)
        context.study.accepted_terms_sha256 = rest[0]  # type: ignore[attr-defined]
        context.latest = _from_row(Assignment, rest[1:]) if rest[1] is not None else None
    request.user = user  # what Django's AuthenticationMiddleware would have loaded, already checked
    return context


def _csrf_ok(request: HttpRequest) -> bool:
    """DRF's SessionAuthentication check: a session-authenticated unsafe request needs the token."""

    def no_response(_: HttpRequest) -> None:  # pragma: no cover - never called by process_view
        return None

    check = CsrfViewMiddleware(no_response)  # type: ignore[arg-type]
    check.process_request(request)
    return check.process_view(request, None, (), {}) is None  # type: ignore[arg-type]


def _throttled(request: HttpRequest, api_class: type[APIView]) -> bool:
    """Whether the DRF view's throttles refuse this request (they read request.user and META only)."""
    return any(not throttle().allow_request(request, None) for throttle in api_class.throttle_classes)  # type: ignore[arg-type]


# --- the views ------------------------------------------------------------------------------------


def _next(request: HttpRequest, fallback: View) -> HttpResponseBase:
    study_id = request.GET.get("study")
    if not study_id:
        return fallback(request)  # DRF answers the missing parameter (or the missing login) first
    found = _rater(request, study_id=study_id)
    if found is None or _throttled(request, api.NextTaskApi):
        return fallback(request)
    rater, study = found.user, found.study
    try:
        if study is None:
            raise NotFound("No open study with this id is available to you.")
        selectors.rater_check_ready(study=study, rater=rater)
        assignment = task_assign_next(study=study, rater=rater, latest=found.latest)
        if assignment is None:
            return _json({"task": None, "lease_seconds": study.lease_seconds})
        # the one-call lease brings the blinded task along; other paths read it here
        blind = getattr(assignment, "blind", None) or task_blind_by_id(task_id=assignment.task_id)
        return _json({"task": blind.as_dict(), "lease_seconds": study.lease_seconds})
    except DomainError as exc:
        return _error(exc)


def _rating(request: HttpRequest, fallback: View, task_id: str) -> HttpResponseBase:
    if request.content_type != "application/json" or not request.body:
        return fallback(request, task_id=task_id)  # DRF reads an empty JSON body as {}
    try:
        data = json.loads(request.body)
    except ValueError:
        return fallback(request, task_id=task_id)  # DRF's parse error
    found = _rater(request)
    if found is None or not _csrf_ok(request) or _throttled(request, api.RatingSubmitApi):
        return fallback(request, task_id=task_id)
    rater = found.user
    try:
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", fields={"non_field_errors": ["Not an object."]}
            )
        _, created = services.rating_submit(public_id=task_id, rater=rater, data=data)
    except DomainError as exc:
        return _error(exc)
    return _json({"status": "stored"}, status=201) if created else _json({"status": "already_stored"})


def _fast(api_class: type[APIView], method: str, handler: Callable[..., HttpResponseBase]) -> View:
    """A URL callback that serves `method` through `handler` and everything else through the DRF
    view; it carries the DRF class as `cls`, so drf-spectacular documents it as before."""
    fallback = api_class.as_view()

    @csrf_exempt  # the session path checks the token itself (_csrf_ok), as DRF does; tokens need none
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != method:
            return fallback(request, *args, **kwargs)
        return handler(request, fallback, *args, **kwargs)

    view.cls = api_class  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view


next_task = _fast(api.NextTaskApi, "GET", _next)
rating_submit = _fast(api.RatingSubmitApi, "POST", _rating)
