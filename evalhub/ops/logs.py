"""Structured logs: one JSON object a line, with the request id (web) or the task id and name (workers),
so one request or one task can be followed across gunicorn and Celery processes.

`LOG_FORMAT=json` turns it on (settings.LOGGING); the request id comes from `RequestIdMiddleware`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

#: The current request's id, set by evalhub.middleware.RequestIdMiddleware for the request's duration.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("evalhub_request_id", default="")

_GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_from(header: str | None) -> str:
    """A load balancer's X-Request-ID when it is a plain token, else a new one (a header is user input)."""
    if header and _GIVEN_ID.match(header):
        return header
    return uuid.uuid4().hex


def _task() -> tuple[str, str]:
    from celery import current_task

    if current_task and getattr(current_task.request, "id", None):
        return str(current_task.request.id), str(current_task.name)
    return "", ""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if rid := request_id.get():
            entry["request_id"] = rid
        task_id, task_name = _task()
        if task_id:
            entry["task_id"], entry["task"] = task_id, task_name
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
