"""Shared fixtures of the continuous-evaluation tests: the tiny model family of the run tests, a suite, a
real local HTTP endpoint for webhooks, and a project whose notifications go to it."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.runs.conftest import _fresh_engine, make_suite_version, tiny, tiny_folders, words  # noqa: F401

AUTO_POLICY = "name: auto\ngates:\n  - metric: metric_delta:rougeL\n    op: '>='\n    threshold: -1\n"


@dataclass
class Endpoint:
    """A webhook receiver on 127.0.0.1: answers each POST with the next status of `statuses` (then 200)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append({"headers": dict(self.headers), "body": body})
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def notified(project: Any, endpoint: Endpoint, settings: Any) -> Any:
    """The project notifies ops@example.com and the local endpoint (the admin allowance on)."""
    from evalhub.continuous.notifications import notification_settings_save

    settings.EVALHUB_WEBHOOK_ALLOW_PRIVATE = True
    return notification_settings_save(project=project, emails="ops@example.com", webhook_url=endpoint.url)


@pytest.fixture
def suite_version(project: Any) -> Any:
    return make_suite_version(project, [words(i * 7, 12 + i) for i in range(4)])


@pytest.fixture
def auto_policy(project: Any) -> Any:
    from evalhub.reports.services import gate_policy_save

    return gate_policy_save(project=project, name="auto", source=AUTO_POLICY)


def payload(received: dict[str, Any]) -> dict[str, Any]:
    return json.loads(received["body"])
