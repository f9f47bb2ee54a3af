"""The authorisation matrix: every API operation x every actor x own or other project.

Among the actors is one user with two roles (an engineer of one project, a rater of the other)
using a token scoped to each project; they are checked against both projects on every operation.

Operations come from the generated OpenAPI schema; what each actor may get comes from the table in
tests/security/rules.py. An operation missing from the table, or a rule for an operation that no
longer exists, fails loudly. Each request runs in a savepoint that is rolled back, so one actor's
write never changes what the next one sees. Refusals must leak nothing of the target project (its
mark is absent from the body) and write nothing (no audit event).
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from evalhub.audit.models import AuditEvent
from tests.security import rules
from tests.security.schema import fill, operations, param_prefix
from tests.security.world import (
    ACTORS,
    DUAL_ACTORS,
    OTHER_MARK,
    OWN_MARK,
    ROLE_ACTORS,
    World,
    build_world,
)

pytestmark = pytest.mark.django_db

ALL_OPERATIONS = sorted(set(operations()) | set(rules.RULES))


@pytest.fixture
def world(db) -> World:
    return build_world()


def _prepare(world: World, method: str, path: str, rule: rules.Rule, scope: str) -> tuple[str, dict]:
    """The URL and request arguments; builds any object they name (outside the request's savepoint)."""
    url = path
    if param_prefix(path) is not None:
        url = fill(path, *map(str, rules.param_values(world, path, scope)))
    kwargs: dict = {}
    if rule.query:
        kwargs["data"] = rule.query(world, scope)
    if rule.body:
        kwargs["data"] = rule.body(world, scope)
        kwargs["format"] = "multipart" if rule.multipart else "json"
    return url, kwargs


def _text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _json(body: str) -> dict:
    try:
        value = json.loads(body or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check(outcome: str, response, *, target_mark: str, foreign_mark: str) -> str | None:
    """None when the response matches the outcome, else what is wrong."""
    status = response.status_code
    body = _text(response).lower()
    if status >= 500:
        return f"server error {status}"
    if outcome == rules.OK and not 200 <= status < 300:
        return f"expected 2xx, got {status}"
    if outcome == rules.PASS and (status in (401, 403, 404) or (status >= 300 and status not in (400, 409))):
        return f"expected to pass authorisation, got {status}"
    if outcome in (rules.LIST_OWN, rules.LIST_ALL):
        if status != 200:
            return f"expected 200, got {status}"
        if target_mark not in body:
            return "the list is missing the project's own objects"
        if outcome == rules.LIST_OWN and foreign_mark in body:
            return "the list shows another project's objects"
    if outcome == rules.EMPTY and status not in (200, 403):
        return f"expected 200 with nothing or 403, got {status}"
    if outcome == rules.HIDE and status != 404:
        return f"expected 404, got {status}"
    if outcome == rules.DENY and status not in (403, 404):
        return f"expected 403 or 404, got {status}"
    if outcome == rules.FORBID and status != 403:
        return f"expected 403, got {status}"
    if outcome == rules.UNAUTH and status != 401:
        return f"expected 401, got {status}"
    if outcome == rules.DENY_BODY and status not in (403, 404):
        fields = _json(body).get("error", {}).get("fields", {}) if status == 400 else {}
        if status != 400 or not fields:
            return f"expected 403/404 or a 400 naming the refused reference, got {status}"
    if outcome not in rules.GRANTED:
        if target_mark in body:
            return "the refusal reveals the target project's data"
        if status >= 400 and "error" not in _json(body):
            return "the refusal is not in the API's error format"
    return None


def run_cell(world: World, method: str, path: str, rule: rules.Rule, actor: str, scope: str, outcome: str):
    target_mark = OWN_MARK if scope == "own" else OTHER_MARK
    foreign_mark = OTHER_MARK if scope == "own" else OWN_MARK
    url, kwargs = _prepare(world, method, path, rule, scope)
    client = world.actors[actor].client()
    with transaction.atomic():
        before = AuditEvent.objects.count()
        response = getattr(client, method.lower())(url, **kwargs)
        written = AuditEvent.objects.count() - before
        transaction.set_rollback(True)
    problem = check(outcome, response, target_mark=target_mark, foreign_mark=foreign_mark)
    if problem is None and outcome not in rules.GRANTED and written:
        problem = f"a refused request wrote {written} audit event(s)"
    if problem:
        snippet = _text(response)[:300]
        return f"{actor:>12} on {scope:5} [{outcome}]: {problem} — {response.status_code} {snippet}"
    return None


@pytest.mark.parametrize(("method", "path"), ALL_OPERATIONS, ids=[f"{m} {p}" for m, p in ALL_OPERATIONS])
def test_authorisation(world, method, path):
    assert (method, path) in set(operations()), f"{method} {path} has a rule but is no longer in the API"
    rule = rules.RULES.get((method, path))
    assert rule is not None, (
        f"{method} {path} is a new endpoint with no authorisation rule: add it to tests/security/rules.py"
    )
    prefix = param_prefix(path)
    assert prefix is None or prefix in rules.PARAMS, f"{path}: add {prefix!r} to rules.PARAMS"
    for kind in rule.seed:
        world.get(kind, "own")
        world.get(kind, "other")
    assert set(rule.policy.own) == set(ACTORS), f"{rule.policy.name}: every actor needs an outcome"
    problems = []
    for actor, outcome in rule.policy.own.items():
        problems.append(run_cell(world, method, path, rule, actor, "own", outcome))
    targeted = prefix is not None or rule.body is not None or rule.query is not None
    assert set(DUAL_ACTORS) <= set(rule.policy.other), f"{rule.policy.name}: the dual actors need an outcome"
    for actor, outcome in rule.policy.other.items():
        assert actor in (*ROLE_ACTORS, "site_admin", *DUAL_ACTORS)
        # Without a target object only the marks tell the projects apart: the dual user's tokens are
        # checked against the other project's marks too, so neither scope leaks into the other.
        if targeted or actor in DUAL_ACTORS:
            problems.append(run_cell(world, method, path, rule, actor, "other", outcome))
    problems = [p for p in problems if p]
    assert not problems, f"{method} {path} ({rule.policy.name}):\n" + "\n".join(problems)


class _Fake:
    def __init__(self, status: int, body: str) -> None:
        self.status_code = status
        self.content = body.encode()


@pytest.mark.parametrize(
    ("outcome", "status", "body"),
    [
        (rules.HIDE, 200, "{}"),
        (rules.HIDE, 404, '{"error": {"message": "ownmark"}}'),
        (rules.EMPTY, 200, '{"results": [{"name": "ownmark"}]}'),
        (rules.LIST_OWN, 200, '{"results": [{"name": "ownmark"}, {"name": "othermark"}]}'),
        (rules.LIST_OWN, 200, '{"results": []}'),
        (rules.PASS, 403, '{"error": {}}'),
        (rules.OK, 500, ""),
        (rules.FORBID, 403, "<html>Forbidden</html>"),
    ],
)
def test_the_checker_catches_what_it_should(outcome, status, body):
    assert check(outcome, _Fake(status, body), target_mark=OWN_MARK, foreign_mark=OTHER_MARK) is not None
