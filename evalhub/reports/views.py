"""Web pages of the reports app: the report of a run, its plots and exports, a case's drill-down,
verdicts, gate policies and the project trend. Staff roles only (raters never see adapter names)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.accounts.models import Project
from evalhub.errors import DomainError
from evalhub.permissions import APPROVE_ROLES, WRITE_ROLES, projects_for
from evalhub.reports import exports, gates, plots, selectors, services
from evalhub.reports.judge_section import calibration_tables, judge_only_gates
from evalhub.reports.models import GatePolicy
from evalhub.reports.schema import Report
from evalhub.reports.services import VerdictOutcome
from evalhub.runs.models import Run
from evalhub.web import domain_error_page
from evalhub.web import project_for_request as _project

error_page = domain_error_page("reports/error.html")


def _run(project: Project, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("project", "suite_version__suite"), pk=run_id, project=project
    )


def _params(request: HttpRequest, run: Run) -> dict[str, Any]:
    """candidate / baseline (name@version), exclude_below, exclude_flagged and min_seconds from the
    query string."""
    params: dict[str, Any] = {}
    for role in ("candidate", "baseline"):
        label = request.GET.get(role)
        if label:
            params[role] = selectors.adapter_in_run(run=run, label=label)
    below = request.GET.get("exclude_below")
    if below:
        try:
            params["exclude_raters_below"] = min(1.0, max(0.0, float(below)))
        except ValueError:
            params["exclude_raters_below"] = None
    params.update(
        services.rater_quality_params(
            exclude_flagged=request.GET.get("exclude_flagged"), min_seconds=request.GET.get("min_seconds")
        )
    )
    return params


def _query_with(request: HttpRequest, **changes: str | None) -> str:
    """The request's query string with some parameters set (or removed, for None)."""
    query = request.GET.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = value
    return query.urlencode()


def _verdict(request: HttpRequest, run: Run, report: Report) -> VerdictOutcome:
    stored = selectors.policy_for_run(run=run, name=request.GET.get("policy") or None)
    policy = stored.parsed if stored else gates.default_policy()
    return services.report_with_verdict(report=report, policy=policy)


def _report(request: HttpRequest, run: Run) -> tuple[Report, VerdictOutcome]:
    report = services.report_cached(run=run, **_params(request, run))
    return report, _verdict(request, run, report)


@login_required
@error_page
def report(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    """The report once built (from the cache); until then a "building" page that polls
    ``report_state`` (which starts the build) and reloads when it is ready."""
    project = _project(request, project_slug)
    run = _run(project, run_id)
    state = services.report_state(run=run, **_params(request, run))
    if state.report is None:
        return render(
            request,
            "reports/report_building.html",
            {"project": project, "run": run, "state": state.to_dict(), "query": request.GET.urlencode()},
        )
    data = state.report
    verdict = _verdict(request, run, data)
    baseline, candidates = selectors.run_adapters_by_role(run=run)
    adapters = ([baseline] if baseline else []) + candidates
    worst_cases = sorted((c for c in data.cases if c.rated), key=lambda c: c.human or 0)[:10]
    return render(
        request,
        "reports/report.html",
        {
            "project": project,
            "run": run,
            "report": data,
            "verdict": verdict,
            "gates_shown": gates.gates_explained(verdict["decision"], list(verdict["gates"]), data),
            "adapters": adapters,
            "policies": GatePolicy.objects.filter(project=project).order_by("name"),
            "query": request.GET.urlencode(),
            "worst_cases": worst_cases,
            "calibration_tables": calibration_tables(data.judge),
            "judge_only_gates": judge_only_gates(list(verdict["gates"])),
            "query_exclude_flagged": _query_with(request, exclude_flagged="1"),
            "query_all_raters": _query_with(request, exclude_flagged=None),
            "can_freeze": projects_for(user=request.user, roles=WRITE_ROLES).filter(pk=project.pk).exists(),
        },
    )


@login_required
@error_page
def report_state(request: HttpRequest, project_slug: str, run_id: int) -> JsonResponse:
    """Where the report's build stands (JSON), starting the build if nothing is building it."""
    project = _project(request, project_slug)
    run = _run(project, run_id)
    state = services.report_state(run=run, start=True, **_params(request, run))
    return JsonResponse(state.to_dict())


@login_required
@error_page
def report_plot(request: HttpRequest, project_slug: str, run_id: int, name: str) -> HttpResponse:
    project = _project(request, project_slug)
    run = _run(project, run_id)
    if name not in plots.REPORT_PLOTS:
        raise Http404
    png = services.report_plot_png(run=run, name=name, **_params(request, run))
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=60"
    return response


@login_required
@error_page
def report_export(request: HttpRequest, project_slug: str, run_id: int, fmt: str) -> HttpResponse:
    project = _project(request, project_slug)
    run = _run(project, run_id)
    data, verdict = _report(request, run)
    stem = f"report-run{run.pk}"
    if fmt == "json":
        body = json.dumps({"report": data.to_dict(), "verdict": verdict}, indent=1, default=str)
        response = HttpResponse(body, content_type="application/json")
    elif fmt == "cases.csv":
        response = HttpResponse(exports.cases_csv(data), content_type="text/csv")
    elif fmt == "judge.csv" and data.judge is not None:
        response = HttpResponse(exports.judge_csv(data), content_type="text/csv")
    elif fmt == "ratings.csv":
        response = HttpResponse(
            exports.ratings_csv(selectors.rating_rows(run=run), list(data.settings.criteria)),
            content_type="text/csv",
        )
    elif fmt == "ratings.json":
        response = HttpResponse(
            exports.ratings_json(selectors.rating_rows(run=run)), content_type="application/json"
        )
    elif fmt == "pdf":
        response = HttpResponse(exports.report_pdf(data, verdict), content_type="application/pdf")
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response


@login_required
@error_page
def case_detail(request: HttpRequest, project_slug: str, run_id: int, case_id: int) -> HttpResponse:
    project = _project(request, project_slug)
    run = _run(project, run_id)
    detail = selectors.case_detail(run=run, case_id=case_id)
    return render(request, "reports/case.html", {"project": project, "run": run, **detail})


@login_required
@require_POST
@error_page
def verdict_freeze(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = _project(request, project_slug, roles=WRITE_ROLES)
    run = _run(project, run_id)
    if request.POST.get("confirm") != "yes":
        # One click must not freeze a verdict for good: the page asks first, and only its answer carries confirm.
        messages.error(request, "Confirm to freeze the verdict: nothing was frozen.")
        query = request.GET.urlencode()
        return redirect(
            reverse("reports:report", args=[project.slug, run.pk]) + (f"?{query}" if query else "")
        )
    params = _params(request, run)
    policy = selectors.policy_for_run(run=run, name=request.GET.get("policy") or None)
    verdict = services.verdict_freeze(run=run, policy=policy, actor=request.user, **params)
    messages.success(request, f"Verdict frozen: {verdict.decision}.")
    return redirect("reports:verdict", project_slug=project.slug, public_id=verdict.public_id)


@login_required
@error_page
def verdict(request: HttpRequest, project_slug: str, public_id: str) -> HttpResponse:
    project = _project(request, project_slug)
    obj = selectors.verdict_get(
        public_id=public_id, projects=projects_for(user=request.user).filter(pk=project.pk)
    )
    reopened = services.verdict_reopen(obj) if request.GET.get("reopen") else None
    return render(
        request,
        "reports/verdict.html",
        {
            "project": project,
            "verdict": obj,
            "report": obj.snapshot.get("report", {}),
            "reopened": reopened,
            # Approving the candidate of a GO verdict is a lead's decision (evalhub.continuous.recipes).
            "can_approve": projects_for(user=request.user, roles=APPROVE_ROLES)
            .filter(pk=project.pk)
            .exists(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def policies(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _project(request, project_slug)
    error = None
    form = {"name": "", "source": gates.DEFAULT_POLICY_YAML}
    if request.method == "POST":
        project = _project(request, project_slug, roles=WRITE_ROLES)
        form = {"name": request.POST.get("name", ""), "source": request.POST.get("source", "")}
        try:
            services.gate_policy_save(
                project=project, name=form["name"], source=form["source"], actor=request.user
            )
        except DomainError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Gate policy {form['name']!r} saved.")
            return redirect("reports:policies", project_slug=project.slug)
    return render(
        request,
        "reports/policies.html",
        {
            "project": project,
            "policies": GatePolicy.objects.filter(project=project).order_by("name"),
            "form": form,
            "error": error,
            "metric_help": gates.METRIC_HELP,
            "field_help": gates.FIELD_HELP,
            "verdicts": project.verdicts.select_related("candidate", "baseline", "run")[:20],
            "runs": Run.objects.filter(project=project).order_by("-created_at")[:20],
        },
    )


@login_required
def trend(request: HttpRequest, project_slug: str) -> HttpResponse:
    """The metric means per adapter, lineage by lineage (the plot joins only a lineage's versions)."""
    project = _project(request, project_slug)
    data = plots.trend_data(selectors.project_trend(project=project))
    metrics = plots.trend_metrics(data.values)
    lineages = [
        {
            "name": lineage.name,
            "parent": lineage.parent,
            "rows": [
                {
                    "adapter": label,
                    "stage": data.stages.get(label, ""),
                    "cells": [data.values[m].get(label) for m in metrics],
                }
                for label in lineage.labels
            ],
        }
        for lineage in data.lineages
    ]
    return render(
        request, "reports/trend.html", {"project": project, "lineages": lineages, "metrics": metrics}
    )


@login_required
def trend_plot(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _project(request, project_slug)
    return HttpResponse(plots.trend(selectors.project_trend(project=project)), content_type="image/png")
