"""Every web page of the URLconf (the admin and the API aside), with who views it and its parameters.

A route missing here fails `test_every_page_is_listed`, so the XSS and id-tampering tests grow with
the UI. `params(world, scope)` names the objects of a project that fill the route's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

SKIPPED_PREFIXES = ("admin/", "api/")


def _none(world: Any, scope: str) -> dict[str, Any]:
    return {}


def _project(world: Any, scope: str) -> dict[str, Any]:
    return {"project_slug": world.project(scope).slug}


def _suite(world: Any, scope: str) -> dict[str, Any]:
    return {**_project(world, scope), "suite_id": world.get("suite", scope).pk}


def _run(world: Any, scope: str) -> dict[str, Any]:
    return {**_project(world, scope), "run_id": world.get("run", scope).pk}


def _study(world: Any, scope: str) -> dict[str, Any]:
    return {"study_id": world.get("study", scope).public_id}


@dataclass(frozen=True)
class Page:
    viewer: str  # the actor who may see it
    params: Callable[[Any, str], dict[str, Any]] = _none
    method: str = "GET"  # POST-only routes are probed with POST and skipped by the XSS scan
    html: bool = True  # False for downloads and JSON
    status: int = 200  # what the viewer gets on their own objects
    fixed: tuple[str, ...] = ()  # parameters that are not object ids (a format, a version number)
    data: dict[str, str] | None = None  # a valid form for POST routes, so the id is what gets checked


PAGES: dict[str, Page] = {
    "": Page("lead"),
    "healthz": Page("anonymous", html=False),
    "readyz": Page("anonymous", html=False),
    "metrics": Page("anonymous", html=False, status=404),  # off until EVALHUB_METRICS_TOKEN is set
    "accounts/login/": Page("anonymous"),
    "accounts/logout/": Page("lead", method="POST", status=302),
    "accounts/tokens/": Page("lead"),
    "accounts/tokens/<int:token_id>/revoke/": Page(
        "lead", lambda w, s: {"token_id": w.get("token", s).pk}, method="POST", status=302
    ),
    "accounts/set-password/<uidb64>/<token>/": Page(
        "anonymous", lambda w, s: {"uidb64": "MQ", "token": "set-password"}, fixed=("uidb64", "token")
    ),
    "accounts/set-password/done/": Page("anonymous"),
    "accounts/projects/<slug:project_slug>/members/": Page("admin", _project),
    "accounts/projects/<slug:project_slug>/members/<int:membership_id>/remove/": Page(
        "admin",
        lambda w, s: {**_project(w, s), "membership_id": w.get("membership", s).pk},
        method="POST",
        status=302,
        data={"confirm": "yes"},
    ),
    "p/<slug:project_slug>/adapters/": Page("lead", _project),
    "p/<slug:project_slug>/suites/": Page("lead", _project),
    "p/<slug:project_slug>/suites/upload/": Page("lead", _project),
    "p/<slug:project_slug>/suites/uploads/<uuid:upload_id>/": Page(
        "lead", lambda w, s: {**_project(w, s), "upload_id": w.get("upload", s).pk}
    ),
    "p/<slug:project_slug>/suites/uploads/<uuid:upload_id>/discard/": Page(
        "lead", lambda w, s: {**_project(w, s), "upload_id": w.get("upload", s).pk}, method="POST", status=302
    ),
    "p/<slug:project_slug>/suites/<int:suite_id>/": Page("lead", _suite),
    "p/<slug:project_slug>/suites/<int:suite_id>/v<int:number>/export.<str:kind>": Page(
        "lead",
        lambda w, s: {**_suite(w, s), "number": 1, "kind": "csv"},
        html=False,
        fixed=("number", "kind"),
    ),
    "p/<slug:project_slug>/runs/": Page("lead", _project),
    "p/<slug:project_slug>/runs/new/": Page("lead", _project),
    "p/<slug:project_slug>/runs/<int:run_id>/": Page("lead", _run),
    "p/<slug:project_slug>/runs/<int:run_id>/outputs/": Page("lead", _run),
    "p/<slug:project_slug>/runs/<int:run_id>/cancel/": Page("lead", _run, method="POST", status=302),
    "p/<slug:project_slug>/runs/<int:run_id>/resume/": Page("lead", _run, method="POST", status=302),
    "p/<slug:project_slug>/runs/<int:run_id>/score/": Page("lead", _run, method="POST", status=302),
    "p/<slug:project_slug>/runs/<int:run_id>/report/": Page("lead", _run),
    "p/<slug:project_slug>/runs/<int:run_id>/report/state.json": Page("lead", _run, html=False),
    "p/<slug:project_slug>/runs/<int:run_id>/report/plot/<slug:name>.png": Page(
        "lead", lambda w, s: {**_run(w, s), "name": "win-rates"}, html=False, fixed=("name",)
    ),
    "p/<slug:project_slug>/runs/<int:run_id>/report/export.<str:fmt>": Page(
        "lead", lambda w, s: {**_run(w, s), "fmt": "json"}, html=False, fixed=("fmt",)
    ),
    "p/<slug:project_slug>/runs/<int:run_id>/report/cases/<int:case_id>/": Page(
        "lead", lambda w, s: {**_run(w, s), "case_id": w.get("case", s).pk}
    ),
    "p/<slug:project_slug>/runs/<int:run_id>/report/freeze": Page("lead", _run, method="POST", status=302),
    "p/<slug:project_slug>/verdicts/<str:public_id>/": Page(
        "lead", lambda w, s: {**_project(w, s), "public_id": w.get("verdict", s).public_id}
    ),
    "p/<slug:project_slug>/gate-policies/": Page("lead", _project),
    "p/<slug:project_slug>/verdicts/<str:public_id>/approve/": Page(
        "lead", lambda w, s: {**_project(w, s), "public_id": w.get("verdict", s).public_id}, method="POST", status=302
    ),
    "p/<slug:project_slug>/continuous/": Page("lead", _project),
    "p/<slug:project_slug>/continuous/notifications/": Page(
        "lead", _project, method="POST", status=302, data={"emails": "ops@example.com", "webhook_url": ""}
    ),
    # An empty form: refused with its errors (400), after the project check that id tampering probes.
    "p/<slug:project_slug>/continuous/schedules/": Page("lead", _project, method="POST", status=400, data={}),
    "p/<slug:project_slug>/continuous/deliveries/": Page("lead", _project),
    "p/<slug:project_slug>/adapters/<int:adapter_id>/timeline/": Page(
        "lead", lambda w, s: {**_project(w, s), "adapter_id": w.get("adapter", s).pk}
    ),
    "p/<slug:project_slug>/trend/": Page("lead", _project),
    "p/<slug:project_slug>/trend/plot.png": Page("lead", _project, html=False),
    "audit/": Page("admin"),
    "audit/export.<str:fmt>": Page("admin", lambda w, s: {"fmt": "csv"}, html=False, fixed=("fmt",)),
    "rate/": Page("rater"),
    "rate/s/<str:study_id>/": Page("rater", _study, status=302),  # consented already: on to the queue
    "rate/s/<str:study_id>/next/": Page("rater", _study, status=302),
    "rate/s/<str:study_id>/t/<str:task_id>/": Page(
        "rater", lambda w, s: {**_study(w, s), "task_id": w.get("task", s).public_id}
    ),
    "rate/s/<str:study_id>/t/<str:task_id>/skip/": Page(
        "rater",
        lambda w, s: {**_study(w, s), "task_id": w.get("task", s).public_id},
        method="POST",
        status=302,
        data={"reason": "other", "detail": "not my field"},
    ),
    "rate/studies/": Page("lead"),
    "rate/studies/<str:study_id>/": Page("lead", _study),
    "rate/runs/<int:run_id>/new-study/": Page("lead", lambda w, s: {"run_id": w.get("run", s).pk}),
}


def routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    for route, pattern in walk(get_resolver().url_patterns, ""):
        if not route.startswith(SKIPPED_PREFIXES):
            yield route, pattern


def url_for(route: str, values: dict[str, Any]) -> str:
    """Fill a route like 'p/<slug:project_slug>/suites/' with values; every parameter must be given."""
    import re

    def put(match: re.Match[str]) -> str:
        name = match.group(2)
        assert name in values, f"{route}: no value for {name}; add it to tests/security/pages.py"
        return str(values[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", put, route)
