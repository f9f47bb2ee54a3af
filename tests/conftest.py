"""Shared fixtures: users in each role, a project, and the fixture model family registered in it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from evalhub.accounts.models import Project, Role
from evalhub.accounts.services import membership_set, project_create, user_create
from tests.browser import browser, shots  # noqa: F401  (fixtures for the browser tests)
from tests.vllm_server import vllm_server  # noqa: F401  (a real vLLM server for the HTTP clients' tests)

REPO = Path(__file__).resolve().parent.parent
FIXTURE_MODELS = REPO / "fixtures" / "models"
FIXTURE_SUITES = REPO / "fixtures" / "suites"
ADAPTER_ORDER = ["summariser-v1", "summariser-v2", "tone-v1", "synthetic-bad"]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Tests that must not share the machine with themselves under pytest-xdist (`--dist loadgroup`): each
# group runs on one worker, one test after another. Real Celery workers take fixed Redis databases and
# several processes each; the load bench drops and recreates one fixed PostgreSQL database; the vLLM
# engine reserves a share of host RAM; Chromium is memory-hungry. Everything else is independent
# (pytest-django gives each xdist worker its own test database).
SERIAL_GROUPS: dict[str, str] = {
    "tests/runs/test_worker_kill.py": "celery-workers",
    "tests/runs/test_scoring_worker.py": "celery-workers",
    "tests/runs/test_gpu_workers.py": "celery-workers",
    "tests/continuous/test_workers.py": "celery-workers",
    "tests/ops/test_faults.py": "faults",
    "tests/annotation/test_rating_load_smoke.py": "load-bench",
    "tests/generation/test_vllm.py": "vllm",
    "tests/judging/test_http_judge_vllm.py": "vllm",
}


def serial_group(item: Any) -> str | None:
    """The xdist group an item must run in, or None where it can run anywhere."""
    path = item.path.relative_to(REPO).as_posix()
    if path in SERIAL_GROUPS:
        return SERIAL_GROUPS[path]
    if "browser" in item.keywords:
        return "browser"
    return None


# Fixtures through which a test reaches the database (pytest-django's, and everything built on them).
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}
)


def uses_database(item: Any) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(
        DATABASE_FIXTURES & set(item.fixturenames)
    )


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    # `make test`'s second pass re-runs the suite on SQLite to prove the embedded default: a test that
    # never reaches the database (metrics, generation, parsers) would only repeat itself there.
    if os.environ.get("EVALHUB_TESTS_DATABASE_ONLY") == "1":
        kept = [item for item in items if uses_database(item)]
        config.hook.pytest_deselected(items=[item for item in items if not uses_database(item)])
        items[:] = kept
    redis_up = port_open("127.0.0.1", 6379)
    for item in items:
        if "redis" in item.keywords and not redis_up:
            item.add_marker(pytest.mark.skip(reason="Redis is not running on 127.0.0.1:6379"))
        group = serial_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=_start_rank)  # stable: the same order in every xdist worker's collection


# The longest serial groups start first (xdist hands out work in collection order, see pytest_configure),
# so none of them is the last thing running while the other workers sit idle: the fault tests alone take
# about six minutes, mostly waiting on outages, and started last they once made the whole pass's tail.
START_FIRST = ("faults", "browser", "celery-workers", "tests/runs/test_demo_verdicts.py", "vllm", "load-bench")


def _start_rank(item: Any) -> int:
    key = serial_group(item) or item.path.relative_to(REPO).as_posix()
    if key in START_FIRST:
        return START_FIRST.index(key)
    return len(START_FIRST) + (0 if "slow" in item.keywords else 1)


def pytest_configure(config: Any) -> None:
    # pytest-xdist would reorder groups by their number of tests; collection order (above) is by length.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


class Clock:
    """Wall-clock time that a test moves forward instead of sleeping.

    It replaces `time.time` for the test, so our code (login lockout) and Django's cache expiry see the
    same jump; `time.monotonic` and `time.sleep` are untouched.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def require_postgres(db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (make test does)")


@pytest.fixture
def project(db: None) -> Project:
    return project_create(name="Acme Summaries", description="Earnings-call and clinic-visit summarisers.")


@pytest.fixture
def other_project(db: None) -> Project:
    return project_create(name="Other Team")


def _member(project: Project, username: str, role: str) -> Any:
    user = user_create(username=username, password="correct-horse-battery")
    membership_set(project=project, user=user, role=role)
    return user


@pytest.fixture
def admin_user(db: None) -> Any:
    return user_create(username="root-admin", password="correct-horse-battery", is_superuser=True)


@pytest.fixture
def lead(project: Project) -> Any:
    return _member(project, "lead", Role.LEAD)


@pytest.fixture
def engineer(project: Project) -> Any:
    return _member(project, "engineer", Role.ENGINEER)


@pytest.fixture
def rater(project: Project) -> Any:
    return _member(project, "rater1", Role.RATER)


@pytest.fixture
def fixture_base_model(project: Project) -> Any:
    from evalhub.catalog.services import base_model_register

    return base_model_register(project=project, name="base", folder=str(FIXTURE_MODELS / "base"))


@pytest.fixture
def fixture_adapters(project: Project, fixture_base_model: Any) -> dict[str, Any]:
    """The four fixture adapters, registered in lineage order (tone-v1's parent is summariser-v1)."""
    from evalhub.catalog.services import adapter_register

    return {
        name: adapter_register(
            project=project, base_model=fixture_base_model, folder=str(FIXTURE_MODELS / name)
        )
        for name in ADAPTER_ORDER
    }
