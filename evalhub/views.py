"""Top-level pages: the dashboard (health, readiness and metrics live in evalhub.ops)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from evalhub.accounts.selectors import project_list_for_user, user_is_rater_only


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if user_is_rater_only(user=request.user):
        return redirect("annotation:home")
    return render(request, "home.html", {"projects": project_list_for_user(user=request.user)})
