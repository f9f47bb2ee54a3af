"""Web pages of the catalogue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from evalhub.catalog.selectors import adapter_lineage, adapter_list, base_model_list
from evalhub.web import project_for_request


@login_required
def adapters(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = project_for_request(request, project_slug)
    rows = [(adapter, adapter_lineage(adapter=adapter)) for adapter in adapter_list(project=project)]
    return render(
        request,
        "catalog/adapters.html",
        {"project": project, "base_models": base_model_list(project=project), "rows": rows},
    )
