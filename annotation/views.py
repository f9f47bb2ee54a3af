"""Rater pages (onboarding, the queue, the rating form) and the study owner's page.

Views translate between HTTP and the services; every task a rater sees is rendered from a BlindTask.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotation import selectors, services
from annotation.blinding import task_blind_by_id
from annotation.forms import SKIP_REASONS, StudyCreateForm, rating_form_context, rating_payload_from_post
from annotation.models import Assignment, AssignmentStatus, Study
from annotation.queue import task_assign_next
from evalhub.accounts.selectors import user_is_rater_only
from evalhub.errors import NotFound, ValidationFailed
from evalhub.web import domain_error_page, form_errors, message_errors

# Rater pages turn a refused request into one page: the message, and a way on.
error_page = domain_error_page("annotation/error.html")


def _duration(seconds: int) -> str:
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds} seconds"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = [
        (study, selectors.rater_progress(study=study, rater=request.user))
        for study in selectors.rater_studies(rater=request.user)
    ]
    return render(request, "annotation/home.html", {"studies": studies})


@login_required
@require_http_methods(["GET", "POST"])
@error_page
def study_start(request: HttpRequest, study_id: str) -> HttpResponse:
    """Onboarding: instructions and terms, accepted once before the first task."""
    study = selectors.study_for_rater(public_id=study_id, rater=request.user)
    consented = selectors.rater_has_consented(study=study, rater=request.user)
    error = ""
    if request.method == "POST":
        if request.POST.get("accept") == "1":
            services.consent_accept(study=study, rater=request.user)
            return redirect("annotation:next", study_id=study.public_id)
        error = "Tick the box to accept the terms, or leave this page if you do not."
    elif consented and request.GET.get("review") != "1":
        return redirect("annotation:next", study_id=study.public_id)
    return render(
        request,
        "annotation/onboarding.html",
        {
            "study": study,
            "consented": consented,
            "error": error,
            "lease_text": _duration(study.lease_seconds),
        },
        status=400 if error else 200,
    )


def _ready_study(request: HttpRequest, study_id: str) -> Study | HttpResponse:
    """The study, or the onboarding page's redirect; a refusal is raised for the view's error page."""
    study = selectors.study_for_rater(public_id=study_id, rater=request.user)
    if not selectors.rater_has_consented(study=study, rater=request.user):
        return redirect("annotation:start", study_id=study.public_id)
    return study


@login_required
@error_page
def next_task(request: HttpRequest, study_id: str) -> HttpResponse:
    study = _ready_study(request, study_id)
    if isinstance(study, HttpResponse):
        return study
    assignment = task_assign_next(study=study, rater=request.user)
    if assignment is None:
        progress = selectors.rater_progress(study=study, rater=request.user)
        return render(request, "annotation/done.html", {"study": study, "progress": progress})
    return redirect("annotation:task", study_id=study.public_id, task_id=assignment.task.public_id)


def _render_form(
    request: HttpRequest,
    *,
    study: Study,
    assignment: Assignment,
    data: dict | None = None,
    errors: dict | None = None,
    message: str = "",
    status: int = 200,
) -> HttpResponse:
    blind = task_blind_by_id(task_id=assignment.task_id)
    context = rating_form_context(blind=blind, data=data, errors=errors)
    progress = selectors.rater_progress(study=study, rater=request.user)
    remaining_s = max(0, int((assignment.expires_at - timezone.now()).total_seconds()))
    context.update(
        {
            "study": study,
            "progress": progress,
            "progress_total": progress.done + progress.remaining,
            "lease_remaining_s": remaining_s,
            "form_error": message,
            # The browser keeps an unsent draft under this key (rate.js): per rater and task.
            "draft_key": f"evalhub-draft:{request.user.pk}:{blind.public_id}",
        }
    )
    return render(request, "annotation/rate.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@error_page
def task_page(request: HttpRequest, study_id: str, task_id: str) -> HttpResponse:
    study = _ready_study(request, study_id)
    if isinstance(study, HttpResponse):
        return study
    assignment = (
        Assignment.objects.filter(study=study, rater_id=request.user.pk, task__public_id=task_id)
        .select_related("task")
        .first()
    )
    if assignment is None:
        raise NotFound("No such task among those given to you.")
    if request.method == "POST":
        sides = ("A", "B") if assignment.task.output_b_id else ("A",)
        data = rating_payload_from_post(request.POST, sides=sides)
        with message_errors(request):  # taken back, closed study: say so on the next page
            try:
                _, created = services.rating_submit(
                    public_id=task_id, rater=request.user, data=data, study=study
                )
            except ValidationFailed as error:
                return _render_form(
                    request,
                    study=study,
                    assignment=assignment,
                    data=data,
                    errors=error.fields,
                    message=str(error),
                    status=400,
                )
            messages.success(request, "Rating saved." if created else "That rating was already saved.")
        return redirect("annotation:next", study_id=study.public_id)
    if assignment.status != AssignmentStatus.ACTIVE or assignment.expires_at <= timezone.now():
        # Finished, skipped or expired: the queue decides what comes next (an expired lease comes
        # back to the same rater when the task is still open).
        return redirect("annotation:next", study_id=study.public_id)
    return _render_form(request, study=study, assignment=assignment)


@login_required
@require_POST
@error_page
def task_skip(request: HttpRequest, study_id: str, task_id: str) -> HttpResponse:
    study = _ready_study(request, study_id)
    if isinstance(study, HttpResponse):
        return study
    code = request.POST.get("reason", "")
    labels = dict(SKIP_REASONS)
    detail = request.POST.get("detail", "").strip()
    if code == "other" or code not in labels:
        reason = detail  # "Another reason" means nothing without the rater's words
    else:
        reason = f"{labels[code]}: {detail}" if detail else labels[code]
    try:
        services.task_skip(public_id=task_id, rater=request.user, reason=reason, study=study)
    except ValidationFailed:
        messages.error(request, "Choose why you skip the task, or describe it under 'Another reason'.")
        return redirect("annotation:task", study_id=study.public_id, task_id=task_id)
    messages.info(request, "Task skipped. You will not see it again.")
    return redirect("annotation:next", study_id=study.public_id)


# --- the study owner ---------------------------------------------------------------------------


@login_required
def owner_studies(request: HttpRequest) -> HttpResponse:
    if user_is_rater_only(user=request.user):
        raise PermissionDenied("Study owners' pages are for engineers and leads.")
    studies = [
        (study, selectors.study_progress(study=study))
        for study in selectors.studies_for_owner(user=request.user)
    ]
    return render(request, "annotation/owner_list.html", {"studies": studies})


@login_required
@require_http_methods(["GET", "POST"])
@error_page
def owner_study(request: HttpRequest, study_id: str) -> HttpResponse:
    study = selectors.study_for_owner(user=request.user, public_id=study_id)
    if request.method == "POST":
        with message_errors(request):
            services.study_set_status(study=study, status=request.POST.get("status", ""), actor=request.user)
        return redirect(reverse("annotation:owner-study", args=[study.public_id]))
    alpha, alpha_reason = selectors.study_preference_alpha(study=study)
    return render(
        request,
        "annotation/owner_study.html",
        {
            "study": study,
            "progress": selectors.study_progress(study=study),
            "raters_needed": selectors.study_raters_needed(study=study),
            "raters": selectors.study_rater_stats(study=study),
            "alpha": alpha,
            "alpha_reason": alpha_reason,
            "skip_reasons": selectors.skip_reasons(study=study),
            "statuses": Study._meta.get_field("status").choices,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@error_page
def study_new(request: HttpRequest, run_id: int) -> HttpResponse:
    """Create a study from a run's page (engineers and leads of its project)."""
    run = selectors.run_for_study_owner(user=request.user, run_id=run_id)
    form = StudyCreateForm(request.POST or None, run=run)
    if request.method == "POST" and form.is_valid():
        with form_errors(form):
            study = services.study_create_from_run(run=run, actor=request.user, **form.service_kwargs())
            messages.success(request, f"Study “{study.name}” created: {study.tasks.count()} tasks.")
            return redirect(reverse("annotation:owner-study", args=[study.public_id]))
    return render(request, "annotation/study_new.html", {"run": run, "form": form})
