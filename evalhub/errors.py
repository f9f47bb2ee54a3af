"""Domain exceptions raised by services. The API, the web views and the CLI each map them in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure the user can act on; its message is shown to them as is."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class ValidationFailed(DomainError):
    code = "invalid"


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class Forbidden(DomainError):
    code = "forbidden"
    http_status = 403
