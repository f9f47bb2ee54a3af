"""Web pages of the catalogue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from evalhub.catalog.selectors import adapter_lineage, adapter_list, base_model_list
from evalhub.permissions import projects_for


@login_required
def adapters(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = get_object_or_404(projects_for(user=request.user), slug=project_slug)
    rows = [(adapter, adapter_lineage(adapter=adapter)) for adapter in adapter_list(project=project)]
    return render(
        request,
        "catalog/adapters.html",
        {"project": project, "base_models": base_model_list(project=project), "rows": rows},
    )
