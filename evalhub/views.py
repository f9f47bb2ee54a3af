"""Top-level pages: the dashboard and a health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from evalhub.accounts.selectors import project_list_for_user, user_is_rater_only


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if user_is_rater_only(user=request.user):
        return redirect("annotation:home")
    return render(request, "home.html", {"projects": project_list_for_user(user=request.user)})


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
