"""Structured logs: a request id on every request (echoed in the response) and in the JSON log lines,
and the task id and name in the lines a task writes."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import Client

from evalhub.ops.logs import JsonFormatter, request_id
from evalhub.runs.tasks import score_text


def test_each_response_carries_a_request_id_and_a_plain_given_one_is_kept():
    generated = Client().get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="lb-42.a_b")["X-Request-ID"] == "lb-42.a_b"
    # A header is user input: anything else than a short plain token is replaced, not logged.
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="x\ny: <script>")["X-Request-ID"] != "x\ny: <script>"


def test_a_log_line_is_one_json_object_with_the_request_id():
    record = logging.LogRecord("evalhub.x", logging.WARNING, __file__, 1, "run %s stalled", (7,), None)
    token = request_id.set("req-1")
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert entry["message"] == "run 7 stalled" and entry["level"] == "WARNING"
    assert entry["request_id"] == "req-1" and entry["logger"] == "evalhub.x" and "task_id" not in entry


@pytest.mark.django_db
def test_the_lines_a_task_writes_carry_its_id_and_name():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("evalhub.runs.tasks")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.INFO
    try:
        result = score_text.apply(kwargs={"run_id": 987654}, task_id="task-abc")  # no such run: logs, does nothing
    finally:
        logger.removeHandler(handler)
        logger.level = old_level
    assert result.get() == 0
    entry = json.loads(stream.getvalue().splitlines()[0])
    assert entry["task_id"] == "task-abc" and entry["task"] == "evalhub.runs.tasks.score_text"
    assert "987654" in entry["message"]
