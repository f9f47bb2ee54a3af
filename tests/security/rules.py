"""The authorisation table: for every API operation, what each actor may get.

Keys are (METHOD, path template) exactly as the OpenAPI schema lists them. A new endpoint that is not
in this table fails `test_authz_matrix` until someone decides its rule here. Outcomes are checked
against the own project's objects and, for members of the own project, against the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from tests.security.schema import param_prefix

# Outcomes
OK = "ok"  # 2xx
PASS = "pass"  # got past authorisation: 2xx or a 400/409 about the body, never 401/403/404 or 5xx
LIST_OWN = "list_own"  # 200, the own project's objects in it and none of the other's
LIST_ALL = "list_all"  # 200 with the own project's objects (site admins see every project)
EMPTY = "empty"  # 200 (or 403) and nothing of the target project in it
HIDE = "hide"  # 404
DENY = "deny"  # 403 or 404
DENY_BODY = "deny_body"  # 403/404, or 400 naming the refused reference (the project, a run) in fields
FORBID = "forbid"  # 403
UNAUTH = "unauth"  # 401

GRANTED = {OK, PASS, LIST_OWN, LIST_ALL}


@dataclass(frozen=True)
class Policy:
    name: str
    own: dict[str, str]
    other: dict[str, str] = field(default_factory=dict)


def _policy(name: str, own: dict[str, str], other: dict[str, str] | None = None) -> Policy:
    base = {"anonymous": UNAUTH, "revoked": UNAUTH}
    own = {**base, **own}
    return Policy(name, {**own, **_dual_on_own(own)}, {**(other or {}), **_dual_on_other(own, other)})


# The two-role user (world.DUAL_ACTORS: an engineer of the own project, a rater of the other) gets,
# through each token, exactly what a one-role user of the token's project gets: a scope holds whatever
# else the user may be. So their outcomes follow from the one-role actors' and are never written out.


def _dual_on_own(own: dict[str, str]) -> dict[str, str]:
    # Own-scope token: the engineer. Other-scope token: a member of the other project, as cross_token.
    return {"dual_own": own["engineer"], "dual_other": own["cross_token"]}


def _dual_on_other(own: dict[str, str], other: dict[str, str] | None) -> dict[str, str]:
    """Outcomes against the other project's objects (the dual user holds its rater-side ones)."""
    # The own-scope token: the engineer's outcome there. Where the table names none (operations with
    # no target object), the engineer's own-project answer, seen from the other project: their list
    # must hold nothing of it.
    engineer = (other or {}).get("engineer") or own["engineer"]
    if engineer in (LIST_OWN, LIST_ALL):
        engineer = EMPTY
    # The other-scope token: the rater's outcome on their own project's objects, mirrored.
    return {"dual_own": engineer, "dual_other": own["rater"]}


def staff_object(ok: str = OK) -> Policy:
    """Project objects: staff of the project read and write, raters are refused, everyone else gets 404."""
    return _policy(
        f"staff_object[{ok}]",
        {
            "admin": ok,
            "lead": ok,
            "engineer": ok,
            "site_admin": ok,
            "rater": DENY,
            "outsider": HIDE,
            "cross_token": HIDE,
        },
        {"admin": HIDE, "lead": HIDE, "engineer": HIDE, "rater": HIDE, "site_admin": ok},
    )


# Acting on a project object as its ML lead or admin: an engineer is refused (403), the rest as staff_object.
LEAD_OBJECT = _policy(
    "lead_object",
    {
        "admin": PASS,
        "lead": PASS,
        "engineer": FORBID,
        "site_admin": PASS,
        "rater": DENY,
        "outsider": HIDE,
        "cross_token": HIDE,
    },
    {"admin": HIDE, "lead": HIDE, "engineer": HIDE, "rater": HIDE, "site_admin": PASS},
)

STAFF_LIST = _policy(
    "staff_list",
    {
        "admin": LIST_OWN,
        "lead": LIST_OWN,
        "engineer": LIST_OWN,
        "site_admin": LIST_ALL,
        "rater": EMPTY,
        "outsider": EMPTY,
        "cross_token": EMPTY,
    },
)


def staff_create(ok: str = PASS) -> Policy:
    """Creating in a project named in the body: its staff may, anyone else is told the project is unknown."""
    return _policy(
        f"staff_create[{ok}]",
        {
            "admin": ok,
            "lead": ok,
            "engineer": ok,
            "site_admin": ok,
            "rater": DENY_BODY,
            "outsider": DENY_BODY,
            "cross_token": DENY_BODY,
        },
        {"admin": DENY_BODY, "lead": DENY_BODY, "engineer": DENY_BODY, "rater": DENY_BODY, "site_admin": ok},
    )


ANY_USER = _policy(
    "any_user",
    {
        "admin": OK,
        "lead": OK,
        "engineer": OK,
        "rater": OK,
        "outsider": OK,
        "cross_token": OK,
        "site_admin": OK,
    },
)
SITE_ADMIN_ONLY = _policy(
    "site_admin_only",
    {
        "admin": FORBID,
        "lead": FORBID,
        "engineer": FORBID,
        "rater": FORBID,
        "outsider": FORBID,
        "cross_token": FORBID,
        "site_admin": OK,
    },
)
SESSION_ONLY = _policy(
    "session_only",  # tokens may not mint tokens
    {
        "admin": FORBID,
        "lead": FORBID,
        "engineer": FORBID,
        "rater": FORBID,
        "outsider": FORBID,
        "cross_token": FORBID,
        "site_admin": OK,
    },
    {"site_admin": OK},
)
PROJECT_ADMIN_LIST = _policy(
    "project_admin_list",
    {
        "admin": LIST_OWN,
        "site_admin": LIST_ALL,
        "lead": FORBID,
        "engineer": FORBID,
        "rater": FORBID,
        "outsider": FORBID,
        "cross_token": FORBID,
    },
)


def project_admin_object(ok: str = OK) -> Policy:
    return _policy(
        f"project_admin_object[{ok}]",
        {
            "admin": ok,
            "site_admin": ok,
            "lead": FORBID,
            "engineer": FORBID,
            "rater": FORBID,
            "outsider": FORBID,
            "cross_token": FORBID,
        },
        {"admin": HIDE, "lead": FORBID, "engineer": FORBID, "rater": FORBID, "site_admin": ok},
    )


PROJECT_ADMIN_CREATE = _policy(
    "project_admin_create",
    {
        "admin": OK,
        "site_admin": OK,
        "lead": FORBID,
        "engineer": FORBID,
        "rater": FORBID,
        "outsider": FORBID,
        "cross_token": FORBID,
    },
    {"admin": DENY_BODY, "lead": FORBID, "engineer": FORBID, "rater": FORBID, "site_admin": OK},
)


def own_token(ok: str = OK) -> Policy:
    """A token belongs to its owner (the lead) and is visible to its project's admins."""
    return _policy(
        f"own_token[{ok}]",
        {
            "admin": ok,
            "lead": ok,
            "site_admin": ok,
            "engineer": HIDE,
            "rater": HIDE,
            "outsider": HIDE,
            "cross_token": HIDE,
        },
        {"admin": HIDE, "lead": HIDE, "engineer": HIDE, "rater": HIDE, "site_admin": ok},
    )


RATER_LIST = _policy(
    "rater_list",  # a rater's own studies; staff are not raters and see nothing
    {
        "rater": LIST_OWN,
        "admin": EMPTY,
        "lead": EMPTY,
        "engineer": EMPTY,
        "site_admin": EMPTY,
        "outsider": EMPTY,
        "cross_token": EMPTY,
    },
)


def rater_object(ok: str = OK) -> Policy:
    """A rater's study or task: only the rater reaches it; to everyone else it does not exist."""
    hidden = {a: HIDE for a in ("admin", "lead", "engineer", "site_admin", "outsider", "cross_token")}
    return _policy(
        f"rater_object[{ok}]",
        {"rater": ok, **hidden},
        {"admin": HIDE, "lead": HIDE, "engineer": HIDE, "rater": HIDE, "site_admin": HIDE},
    )


Builder = Callable[[Any, str], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    policy: Policy
    body: Builder | None = None  # the request body for a target project ("own" or "other")
    query: Builder | None = None  # query parameters
    seed: tuple[str, ...] = ()  # kinds of objects to build in both projects first (for lists)
    multipart: bool = False


# --- bodies ------------------------------------------------------------------------------------------


def _slug(world: Any, scope: str) -> str:
    return world.project(scope).slug


def adapter_body(world: Any, scope: str) -> dict[str, Any]:
    return {
        "project": _slug(world, scope),
        "base_model": world.get("base_model", scope).name,
        "folder": "/nonexistent",
    }


def base_model_body(world: Any, scope: str) -> dict[str, Any]:
    return {"project": _slug(world, scope), "name": "new-base", "folder": "/nonexistent"}


def suite_body(world: Any, scope: str) -> dict[str, Any]:
    return {
        "project": _slug(world, scope),
        "name": "new-suite",
        "cases": [{"id": "c1", "input": "Summarise the call."}],
        "pii_action": "keep",
        "pii_justification": "synthetic test text",
    }


def upload_body(world: Any, scope: str) -> dict[str, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        "project": _slug(world, scope),
        "name": "uploaded",
        "pii_action": "keep",
        "pii_justification": "synthetic test text",
        "file": SimpleUploadedFile("cases.jsonl", b'{"id": "u1", "input": "Summarise."}\n'),
    }


def membership_body(world: Any, scope: str) -> dict[str, Any]:
    return {"project": _slug(world, scope), "username": "m-newcomer", "role": "rater"}


def run_body(world: Any, scope: str) -> dict[str, Any]:
    return {
        "project": _slug(world, scope),
        "suite": world.get("suite", scope).name,
        "base_model": world.get("base_model", scope).name,
        "adapters": ["no-such-adapter@1"],
    }


def policy_body(world: Any, scope: str) -> dict[str, Any]:
    from evalhub.reports.gates import DEFAULT_POLICY_YAML

    return {"project": _slug(world, scope), "name": "new policy", "source": DEFAULT_POLICY_YAML}


def study_body(world: Any, scope: str) -> dict[str, Any]:
    return {"run": world.get("run", scope).pk, "name": "new study", "overlap": 1}


def study_query(world: Any, scope: str) -> dict[str, Any]:
    return {"study": world.get("study", scope).public_id}


def rating_body(world: Any, scope: str) -> dict[str, Any]:
    return {"scores": {"factual_accuracy": {"A": 4, "B": 3}}, "preference": "A", "rationale": "ok"}


def judge_endpoint_body(world: Any, scope: str) -> dict[str, Any]:
    # The host need not resolve: a 400 on base_url is past authorisation (PASS).
    return {"name": "new-judge", "base_url": "https://judge.example.com/v1", "model": "m"}


RULES: dict[tuple[str, str], Rule] = {
    # accounts
    ("GET", "/api/v1/me/"): Rule(ANY_USER),
    ("GET", "/api/v1/projects/"): Rule(STAFF_LIST),
    ("POST", "/api/v1/projects/"): Rule(SITE_ADMIN_ONLY, body=lambda w, s: {"name": "brand new"}),
    ("GET", "/api/v1/projects/{slug}/"): Rule(staff_object()),
    ("GET", "/api/v1/memberships/"): Rule(PROJECT_ADMIN_LIST, seed=("membership",)),
    ("POST", "/api/v1/memberships/"): Rule(PROJECT_ADMIN_CREATE, body=membership_body),
    ("GET", "/api/v1/memberships/{id}/"): Rule(project_admin_object()),
    ("PATCH", "/api/v1/memberships/{id}/"): Rule(project_admin_object(), body=lambda w, s: {"role": "lead"}),
    ("DELETE", "/api/v1/memberships/{id}/"): Rule(project_admin_object()),
    ("GET", "/api/v1/tokens/"): Rule(ANY_USER),
    ("POST", "/api/v1/tokens/"): Rule(
        SESSION_ONLY, body=lambda w, s: {"project": _slug(w, s), "name": "new"}
    ),
    ("GET", "/api/v1/tokens/{id}/"): Rule(own_token()),
    ("POST", "/api/v1/tokens/{id}/revoke/"): Rule(own_token()),
    # audit
    ("GET", "/api/v1/audit-events/"): Rule(PROJECT_ADMIN_LIST, seed=("audit_event",)),
    ("GET", "/api/v1/audit-events/{id}/"): Rule(project_admin_object()),
    # catalogue
    ("GET", "/api/v1/base-models/"): Rule(STAFF_LIST, seed=("base_model",)),
    ("POST", "/api/v1/base-models/"): Rule(staff_create(), body=base_model_body),
    ("GET", "/api/v1/base-models/{id}/"): Rule(staff_object()),
    ("GET", "/api/v1/adapters/"): Rule(STAFF_LIST, seed=("adapter",)),
    ("POST", "/api/v1/adapters/"): Rule(staff_create(), body=adapter_body),
    ("GET", "/api/v1/adapters/{id}/"): Rule(staff_object()),
    ("POST", "/api/v1/adapters/{id}/status/"): Rule(staff_object(), body=lambda w, s: {"status": "approved"}),
    # suites
    ("GET", "/api/v1/suites/"): Rule(STAFF_LIST, seed=("suite",)),
    ("POST", "/api/v1/suites/"): Rule(staff_create(), body=suite_body),
    ("GET", "/api/v1/suites/{id}/"): Rule(staff_object()),
    ("POST", "/api/v1/suites/upload/"): Rule(staff_create(), body=upload_body, multipart=True),
    ("GET", "/api/v1/suite-versions/"): Rule(STAFF_LIST, seed=("suite_version",)),
    ("GET", "/api/v1/suite-versions/{id}/"): Rule(staff_object()),
    ("GET", "/api/v1/suite-uploads/{id}/"): Rule(staff_object()),
    ("GET", "/api/v1/suite-versions/{id}/counts/"): Rule(staff_object()),
    ("GET", "/api/v1/suite-versions/{id}/export/"): Rule(staff_object()),
    ("GET", "/api/v1/cases/"): Rule(
        STAFF_LIST, seed=("cases",), query=lambda w, s: {"version": w.get("suite_version", "own").pk}
    ),
    ("GET", "/api/v1/cases/{id}/"): Rule(staff_object()),
    # runs
    ("GET", "/api/v1/runs/"): Rule(STAFF_LIST, seed=("run",)),
    ("POST", "/api/v1/runs/"): Rule(staff_create(), body=run_body),
    ("GET", "/api/v1/runs/{id}/"): Rule(staff_object()),
    ("GET", "/api/v1/runs/{id}/outputs/"): Rule(staff_object()),
    ("GET", "/api/v1/runs/{id}/progress/"): Rule(staff_object()),
    ("POST", "/api/v1/runs/{id}/cancel/"): Rule(staff_object(PASS)),
    ("POST", "/api/v1/runs/{id}/resume/"): Rule(staff_object(PASS)),
    ("POST", "/api/v1/runs/{id}/score/"): Rule(staff_object(PASS)),
    # reports, gate policies and verdicts
    ("GET", "/api/v1/runs/{run_id}/report"): Rule(staff_object(PASS)),
    ("GET", "/api/v1/gate-policies"): Rule(STAFF_LIST, seed=("gate_policy",)),
    # What each gate metric means: reference text, no project data.
    ("GET", "/api/v1/gate-policies/metrics"): Rule(ANY_USER),
    ("POST", "/api/v1/gate-policies"): Rule(staff_create(OK), body=policy_body),
    ("GET", "/api/v1/gate-policies/{id}"): Rule(staff_object()),
    ("PUT", "/api/v1/gate-policies/{id}"): Rule(staff_object(), body=policy_body),
    ("DELETE", "/api/v1/gate-policies/{id}"): Rule(staff_object()),
    ("POST", "/api/v1/verdicts"): Rule(staff_create(), body=lambda w, s: {"run": w.get("run", s).pk}),
    ("GET", "/api/v1/verdicts/{public_id}"): Rule(staff_object()),
    # continuous evaluation: a project's recipe and delivery log; approval is for leads and admins
    ("GET", "/api/v1/projects/{slug}/recipe/"): Rule(staff_object()),
    ("PUT", "/api/v1/projects/{slug}/recipe/"): Rule(
        staff_object(PASS), body=lambda w, s: {"suites": ["no-such-suite"], "baseline_rule": "parent"}
    ),
    ("GET", "/api/v1/projects/{slug}/deliveries/"): Rule(staff_object()),
    ("POST", "/api/v1/verdicts/{public_id}/approve/"): Rule(LEAD_OBJECT),
    # a project's HTTP judge endpoints: the recipe's rule (staff read, write roles change; raters get 404)
    ("GET", "/api/v1/projects/{slug}/judge-endpoints/"): Rule(staff_object(), seed=("judge_endpoint",)),
    ("POST", "/api/v1/projects/{slug}/judge-endpoints/"): Rule(staff_object(PASS), body=judge_endpoint_body),
    ("GET", "/api/v1/projects/{slug}/judge-endpoints/{name}/"): Rule(staff_object()),
    ("PUT", "/api/v1/projects/{slug}/judge-endpoints/{name}/"): Rule(
        staff_object(PASS), body=judge_endpoint_body
    ),
    ("DELETE", "/api/v1/projects/{slug}/judge-endpoints/{name}/"): Rule(staff_object()),
    # rating: the rater's side
    ("GET", "/api/v1/rater/assigned-studies"): Rule(RATER_LIST, seed=("study",)),
    ("POST", "/api/v1/rater/assigned-studies/{study_id}/consent"): Rule(rater_object()),
    ("GET", "/api/v1/rater/next"): Rule(rater_object(PASS), query=study_query),
    ("GET", "/api/v1/rater/progress"): Rule(rater_object(), query=study_query),
    ("POST", "/api/v1/rater/tasks/{task_id}/rating"): Rule(rater_object(PASS), body=rating_body),
    ("POST", "/api/v1/rater/tasks/{task_id}/skip"): Rule(
        rater_object(PASS), body=lambda w, s: {"reason": "unsure"}
    ),
    # rating: the study owner's side
    ("GET", "/api/v1/rater/studies/"): Rule(STAFF_LIST, seed=("study",)),
    ("POST", "/api/v1/rater/studies/"): Rule(staff_create(), body=study_body),
    ("GET", "/api/v1/rater/studies/{study_id}/"): Rule(staff_object()),
    ("POST", "/api/v1/rater/studies/{study_id}/status"): Rule(
        staff_object(PASS), body=lambda w, s: {"status": "paused"}
    ),
}

# Path parameters: the prefix up to the last parameter -> (kind of object, attribute that fills it, or
# one attribute per parameter, dotted paths allowed, for an object named within its parent).
PARAMS: dict[str, tuple[str, str | tuple[str, ...]]] = {
    "/api/v1/projects/{slug}": ("project", "slug"),
    "/api/v1/projects/{slug}/judge-endpoints/{name}": ("judge_endpoint", ("project.slug", "name")),
    "/api/v1/memberships/{id}": ("membership", "pk"),
    "/api/v1/tokens/{id}": ("token", "pk"),
    "/api/v1/audit-events/{id}": ("audit_event", "pk"),
    "/api/v1/base-models/{id}": ("base_model", "pk"),
    "/api/v1/adapters/{id}": ("adapter", "pk"),
    "/api/v1/suites/{id}": ("suite", "pk"),
    "/api/v1/suite-versions/{id}": ("suite_version", "pk"),
    "/api/v1/suite-uploads/{id}": ("upload", "pk"),
    "/api/v1/cases/{id}": ("case", "pk"),
    "/api/v1/runs/{id}": ("run", "pk"),
    "/api/v1/runs/{run_id}": ("run", "pk"),
    "/api/v1/gate-policies/{id}": ("gate_policy", "pk"),
    "/api/v1/verdicts/{public_id}": ("verdict", "public_id"),
    "/api/v1/rater/assigned-studies/{study_id}": ("study", "public_id"),
    "/api/v1/rater/tasks/{task_id}": ("task", "public_id"),
    "/api/v1/rater/studies/{study_id}": ("study", "public_id"),
}


def param_values(world: Any, path: str, scope: str) -> list[Any]:
    """The values of the path's parameters, in order, from the scope's object of PARAMS' kind."""
    kind, attrs = PARAMS[param_prefix(path) or ""]
    obj = world.get(kind, scope)
    return [attrgetter(attr)(obj) for attr in ((attrs,) if isinstance(attrs, str) else attrs)]
