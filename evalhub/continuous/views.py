"""Web pages of continuous evaluation: the recipe, notifications and schedules of a project, an adapter's
timeline, the delivery log, and the approval of a GO verdict's candidate."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from evalhub.catalog.models import Adapter
from evalhub.continuous import notifications, recipes, schedules, selectors
from evalhub.continuous.forms import NotificationsForm, RecipeForm, ScheduleForm
from evalhub.continuous.models import NotificationSettings, Schedule
from evalhub.permissions import WRITE_ROLES, projects_for
from evalhub.reports.models import Verdict
from evalhub.web import domain_error_page, form_errors, message_errors, project_for_request

error_page = domain_error_page("continuous/error.html")


def _recipe_initial(project: Any) -> dict[str, Any]:
    import json

    recipe = selectors.recipe_of(project=project)
    if recipe is None:
        return {}
    described = recipes.recipe_describe(recipe)
    return {
        **described,
        "suites": "\n".join(described["suites"]),
        "baseline": described["baseline"] or "",
        "generation_config": json.dumps(recipe.generation_config) if recipe.generation_config else "",
        "study_template": recipe.study_template,
        "gate_policy": recipe.gate_policy,
    }


def _page(request: HttpRequest, project: Any, **forms: Any) -> HttpResponse:
    config = NotificationSettings.objects.filter(project=project).first()
    context = {
        "project": project,
        "recipe_form": forms.get("recipe_form") or RecipeForm(initial=_recipe_initial(project), project=project),
        "notifications_form": forms.get("notifications_form") or NotificationsForm(
            initial={"emails": config.emails, "webhook_url": config.webhook_url} if config else {}
        ),
        "schedule_form": forms.get("schedule_form") or ScheduleForm(project=project),
        "notification_settings": config,
        "schedules": Schedule.objects.filter(project=project).select_related("suite").order_by("suite__name"),
        "evaluations": selectors.project_evaluations(project=project)[:30],
        "can_write": projects_for(user=request.user, roles=WRITE_ROLES).filter(pk=project.pk).exists(),
    }
    status = 400 if any(f.errors for f in forms.values() if f is not None) else 200
    return render(request, "continuous/recipe.html", context, status=status)


@login_required
def recipe(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug)
    if request.method != "POST":
        return _page(request, project)
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    form = RecipeForm(request.POST, project=project)
    if form.is_valid():
        data = dict(form.cleaned_data)
        with form_errors(form):
            recipes.recipe_save(
                project=project, actor=request.user, enabled=data.pop("enabled"),
                suites=recipes.parse_suite_lines(data.pop("suites")), **data,
            )
            messages.success(request, "Recipe saved: it runs on the next adapter version registered.")
            return redirect("continuous:recipe", project_slug=project.slug)
    return _page(request, project, recipe_form=form)


@login_required
@require_POST
def notifications_save(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    form = NotificationsForm(request.POST)
    if form.is_valid():
        with form_errors(form):
            notifications.notification_settings_save(project=project, actor=request.user, **form.cleaned_data)
            messages.success(request, "Notification settings saved.")
            return redirect("continuous:recipe", project_slug=project.slug)
    return _page(request, project, notifications_form=form)


@login_required
@require_POST
def schedule_save(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug, roles=WRITE_ROLES)
    form = ScheduleForm(request.POST, project=project)
    if form.is_valid():
        with form_errors(form):
            schedules.schedule_save(project=project, actor=request.user, **form.cleaned_data)
            messages.success(request, "Schedule saved.")
            return redirect("continuous:recipe", project_slug=project.slug)
    return _page(request, project, schedule_form=form)


@login_required
def timeline(request: HttpRequest, project_slug: str, adapter_id: int) -> HttpResponse:
    project = project_for_request(request, project_slug)
    adapter = get_object_or_404(Adapter.objects.select_related("project", "parent"), pk=adapter_id, project=project)
    return render(request, "continuous/timeline.html", {
        "project": project, "adapter": adapter, "steps": selectors.adapter_timeline(adapter=adapter),
        "evaluations": selectors.project_evaluations(project=project).filter(adapter=adapter),
    })


@login_required
def deliveries(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug)
    rows = selectors.deliveries(project=project)
    status = request.GET.get("status")
    if status:
        rows = rows.filter(status=status)
    return render(request, "continuous/deliveries.html", {"project": project, "deliveries": rows[:200], "status": status})


@login_required
@require_POST
@error_page
def approve(request: HttpRequest, project_slug: str, public_id: str) -> HttpResponse:
    project = project_for_request(request, project_slug)
    verdict = get_object_or_404(Verdict.objects.select_related("candidate"), public_id=public_id, project=project)
    with message_errors(request):
        adapter = recipes.adapter_approve(verdict=verdict, actor=request.user)
        messages.success(request, f"{adapter.label} approved.")
    return redirect("reports:verdict", project_slug=project.slug, public_id=verdict.public_id)
