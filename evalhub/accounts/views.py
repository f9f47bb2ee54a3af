"""Account pages: the throttled login, personal and CI tokens, and a project's members."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from evalhub.accounts import selectors, services
from evalhub.accounts.forms import LoginForm, MemberForm, TokenCreateForm
from evalhub.accounts.models import Membership, Project
from evalhub.accounts.selectors import user_is_rater_only
from evalhub.permissions import admin_projects_for
from evalhub.web import form_errors, message_errors


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if getattr(form, "is_locked", False):
            response.status_code = 429
        return response


def _token_page(
    request: HttpRequest, form: TokenCreateForm, *, secret: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": selectors.token_list_for_user(user=request.user), "secret": secret},
        status=status,
    )


@never_cache
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List my tokens and create one; the secret is shown in this one response and never again.
    Not a rater's page: raters rate in the browser (issue #17), their nav does not offer it."""
    if user_is_rater_only(user=request.user):
        raise PermissionDenied("API tokens are for engineers, leads and admins.")
    projects = selectors.token_projects_for_user(user=request.user)
    if request.method != "POST":
        return _token_page(request, TokenCreateForm(projects=projects))
    form = TokenCreateForm(request.POST, projects=projects)
    if not form.is_valid():
        return _token_page(request, form, status=400)
    project, name = form.cleaned_data["project"], form.cleaned_data["name"]
    days = form.cleaned_data["lifetime_days"]
    with form_errors(form):
        services.check_token_create(user=request.user, project=project, name=name, lifetime_days=days)
        _token, secret = services.token_create(
            user=request.user, project=project, name=name, lifetime_days=days, actor=request.user
        )
        return _token_page(request, TokenCreateForm(projects=projects), secret=secret, status=201)
    return _token_page(request, form, status=400)


@require_POST
@login_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(selectors.token_list_for_user(user=request.user), pk=token_id)
    services.token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    return redirect("accounts-tokens")


def _admin_project(request: HttpRequest, project_slug: str) -> Project:
    """404 for a project the user cannot see at all, 403 for one they belong to but do not administer."""
    project = admin_projects_for(user=request.user).filter(slug=project_slug).first()
    if project is not None:
        return project
    if selectors.project_list_for_user(user=request.user).filter(slug=project_slug).exists():
        raise PermissionDenied("Only the project's admins manage its members.")
    raise Http404("No such project.")


@never_cache
@login_required
def members(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _admin_project(request, project_slug)
    form = MemberForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            with form_errors(form):
                services.membership_set(
                    project=project,
                    user=form.cleaned_data["username"],
                    role=form.cleaned_data["role"],
                    actor=request.user,
                )
                messages.success(request, "Member saved.")
                return redirect("accounts-members", project_slug=project.slug)
        status = 400
    return render(
        request,
        "accounts/members.html",
        {"project": project, "members": selectors.membership_list(project=project), "form": form},
        status=status,
    )


@require_POST
@login_required
def member_remove(request: HttpRequest, project_slug: str, membership_id: int) -> HttpResponse:
    project = _admin_project(request, project_slug)
    membership = get_object_or_404(Membership.objects.filter(project=project), pk=membership_id)
    if request.POST.get("confirm") != "yes":
        # One click must not remove someone: the page asks first, and only its answer carries confirm.
        messages.error(request, f"Confirm to remove {membership.user.get_username()}: nothing was changed.")
        return redirect("accounts-members", project_slug=project.slug)
    with message_errors(request):
        services.membership_remove(membership=membership, actor=request.user)
        messages.success(request, f"{membership.user.get_username()} removed from {project.name}.")
    return redirect("accounts-members", project_slug=project.slug)
