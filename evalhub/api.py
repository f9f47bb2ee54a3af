"""API plumbing shared by every app: one error format for every 4xx/5xx response, pagination, throttles.

Every error body is `{"error": {"code": ..., "message": ..., "fields": {field: [messages]}}}` so a CI
pipeline can show a user what was wrong without knowing which view answered.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, pagination, status, throttling
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from evalhub.errors import DomainError


def error_body(*, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_json_response(status_code: int, *, code: str = "", message: str = "") -> JsonResponse:
    """The error format for responses made outside DRF (unknown URLs, oversized bodies, server errors)."""
    phrase = HTTPStatus(status_code).phrase
    return JsonResponse(
        error_body(code=code or phrase.lower().replace(" ", "_"), message=message or f"{phrase}."),
        status=status_code,
    )


def _fields(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {str(k): v if isinstance(v, list | dict) else [v] for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(
            error_body(code=exc.code, message=str(exc), fields=exc.fields), status=exc.http_status
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message = "The request has invalid fields."
        fields = _fields(exc.detail)
        code = "invalid"
    else:
        detail = getattr(exc, "detail", "")
        message = str(detail) if not isinstance(detail, dict | list) else "Request failed."
        fields = {}
        code = getattr(exc, "default_code", "error")
        if isinstance(exc, exceptions.APIException):
            codes = exc.get_codes()
            if isinstance(codes, str):
                code = codes
    response.data = error_body(code=code, message=message, fields=fields)
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response.data["error"]["code"] = "throttled"
    return response


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N`, and `?page_size=N` up to 500, for every list endpoint."""

    page_size_query_param = "page_size"
    max_page_size = 500


class LoginRateThrottle(throttling.SimpleRateThrottle):
    """The `login` scope: credential-sensitive endpoints (creating tokens), per user or per address."""

    scope = "login"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
