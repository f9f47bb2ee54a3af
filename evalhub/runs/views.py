"""Web pages of runs: the list, the start form, a run's progress and scoring page, and the outputs browser."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from evalhub.accounts.models import Project
from evalhub.permissions import WRITE_ROLES, projects_for
from evalhub.runs import scoring, selectors, services
from evalhub.runs.forms import RunStartForm
from evalhub.runs.models import Run, RunStatus
from evalhub.suites.models import Split
from evalhub.web import form_errors, message_errors, project_for_request

CASES_PER_PAGE = 20


def _run(project: Project, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("suite_version__suite", "base_model", "project"),
        project=project,
        pk=run_id,
    )


@login_required
def run_list(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug)
    return render(
        request, "runs/list.html", {"project": project, "runs": selectors.run_list(project=project)}
    )


@login_required
def run_new(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    form = RunStartForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with form_errors(form):
            run = services.run_create(
                project=project,
                suite_version=data["suite_version"],
                base_model=data["base_model"],
                adapters=list(data["adapters"]),
                baseline=data["baseline"],
                backend=data["backend"],
                generation_config=form.generation_config(),
                samples_per_case=data["samples_per_case"],
                force_regenerate=data["force_regenerate"],
                judge_checks=data["judge_checks"],
                judge_adapter=data["judge_adapter"],
                name=data["name"] or "",
                actor=request.user,
            )
            run = services.run_start(run=run, actor=request.user)
            messages.info(request, f"Run {run.pk} started.")
            return redirect("runs:detail", project.slug, run.pk)
    return render(request, "runs/new.html", {"project": project, "form": form})


@login_required
def run_detail(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug)
    run = _run(project, run_id)
    can_write = projects_for(user=request.user, roles=WRITE_ROLES).filter(pk=project.pk).exists()
    run_adapters = selectors.run_adapters(run=run)
    return render(
        request,
        "runs/detail.html",
        {
            "project": project,
            "run": run,
            "progress": selectors.run_progress(run=run),
            "run_adapters": run_adapters,
            "scores": selectors.run_scores(run=run, adapters=run_adapters),
            "scoring": selectors.run_scoring(run=run),
            "can_score": can_write and run.status == RunStatus.COMPLETED,
            "can_study": can_write,
            "can_cancel": can_write and run.status in (RunStatus.PENDING, RunStatus.RUNNING),
            "can_resume": can_write
            and run.status in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.RUNNING),
        },
    )


@login_required
def run_outputs(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug)
    run = _run(project, run_id)
    split = request.GET.get("split") or ""
    if split not in Split.values:
        split = ""
    run_adapters = selectors.run_adapters(run=run)
    columns = [(ra.adapter_id, sample) for ra in run_adapters for sample in range(run.samples_per_case)]
    headers = [(ra, sample) for ra in run_adapters for sample in range(run.samples_per_case)]
    page = Paginator(selectors.run_cases(run=run, split=split or None), CASES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = selectors.output_rows(run=run, cases=list(page.object_list), columns=columns)
    return render(
        request,
        "runs/outputs.html",
        {
            "project": project,
            "run": run,
            "page": page,
            "rows": rows,
            "headers": headers,
            "split": split,
            "splits": Split.choices,
            "multi_sample": run.samples_per_case > 1,
        },
    )


@login_required
@require_POST
def run_cancel(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    with message_errors(request):
        services.run_cancel(run=_run(project, run_id), actor=request.user)
        messages.info(request, f"Run {run_id} cancelled.")
    return redirect("runs:detail", project.slug, run_id)


@login_required
@require_POST
def run_resume(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    with message_errors(request):
        services.run_resume(run=_run(project, run_id), actor=request.user)
        messages.info(request, f"Run {run_id} resumed.")
    return redirect("runs:detail", project.slug, run_id)


@login_required
@require_POST
def run_score(request: HttpRequest, project_slug: str, run_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    with message_errors(request):
        scoring.run_rescore(
            run=_run(project, run_id), force=bool(request.POST.get("force")), actor=request.user
        )
        messages.info(request, f"Run {run_id}: scoring sent again.")
    return redirect("runs:detail", project.slug, run_id)
