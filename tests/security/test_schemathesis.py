"""Property-based API testing with schemathesis against the live OpenAPI schema: no 5xx, ever.

The schema is loaded from /api/schema/ of the WSGI app in process, so requests hit the test
database. Every operation gets one case with real ids from the seeded world and a bounded number of
generated ones, each inside a rolled-back savepoint so the world stays the same for the next. The
caller is a project admin's token: it reaches every endpoint except the session-only ones.
"""

from __future__ import annotations

import os

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.security import rules
from tests.security.schema import param_names, param_prefix
from tests.security.world import World, build_world

MAX_EXAMPLES = int(os.environ.get("EVALHUB_SCHEMATHESIS_EXAMPLES", "15"))
SEED_KINDS = (
    "adapter",
    "suite",
    "cases",
    "run",
    "study",
    "task",
    "token",
    "membership",
    "audit_event",
    "gate_policy",
    "verdict",
    "judge_endpoint",
)


@pytest.fixture
def keep_connection():
    """Requests here go through the bare WSGI handler, whose request_finished signal would close the
    test's database connection (mid-transaction on PostgreSQL); Django's test client unhooks it too."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, settings, keep_connection) -> World:
    settings.EVALHUB_SUITE_PII_SCAN = False
    settings.EVALHUB_PUBLIC_API_SCHEMA = True  # schemathesis loads the schema without credentials
    world = build_world()
    for kind in SEED_KINDS:
        world.get(kind, "own")
    return world


def _real_parameters(world: World, path: str) -> dict[str, str] | None:
    if param_prefix(path) is None:
        return None
    names = param_names(path)
    values = [str(v) for v in rules.param_values(world, path, "own")]
    # Any parameter past those PARAMS fills (none today): a value that names nothing there.
    return {name: values[i] if i < len(values) else f"no-such-{name}" for i, name in enumerate(names)}


@pytest.mark.slow
def test_no_operation_answers_with_a_server_error(world):
    import schemathesis

    app = WSGIHandler()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", app)
    headers = {"Authorization": f"Bearer {world.actors['admin'].secret}"}
    failures: list[str] = []
    answered: dict[str, set[int]] = {}

    def exercise(case) -> None:
        with transaction.atomic():
            try:
                response = case.call(headers=headers)
                answered.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
                case.validate_response(response, checks=[not_a_server_error])
            except AssertionError as exc:
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:600]}")
            except Exception as exc:  # a failed check raises schemathesis' own failure group
                failures.append(
                    f"{case.method} {case.formatted_path}: {type(exc).__name__}: {str(exc)[:600]}"
                )
            transaction.set_rollback(True)

    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema lists no operation"
    for operation in operations:
        real = _real_parameters(world, operation.path)
        if real is not None:
            exercise(operation.Case(path_parameters=real))

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def generated(case) -> None:
            exercise(case)

        generated()
    # The token really reaches the API: every read the matrix grants a project admin succeeded.
    granted_reads = {
        f"GET {path}"
        for (method, path), rule in rules.RULES.items()
        if method == "GET" and rule.policy.own.get("admin") in rules.GRANTED
    }
    never_ok = sorted(
        op for op in granted_reads & set(answered) if not any(200 <= s < 300 for s in answered[op])
    )
    assert not never_ok, f"never answered 2xx: {never_ok}"
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} server errors:\n" + "\n\n".join(unique[:20])
