"""The audit trail page for admins, with filters and CSV/JSON export of the filtered events."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from evalhub.audit.export import csv_lines, json_chunks
from evalhub.audit.filters import AuditEventFilter
from evalhub.audit.selectors import audit_can_view, audit_changes, audit_visible_events
from evalhub.audit.services import audit_record

PAGE_SIZE = 100
EXPORT_FORMATS = ("csv", "json")


def _filtered(request: HttpRequest) -> AuditEventFilter:
    if not audit_can_view(user=request.user):
        raise PermissionDenied("Only admins can read the audit trail.")
    return AuditEventFilter(request.GET or None, queryset=audit_visible_events(user=request.user))


@login_required
def events(request: HttpRequest) -> HttpResponse:
    filterset = _filtered(request).with_choices()
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(event, audit_changes(before=event.before, after=event.after)) for event in page]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/events.html",
        {"filter": filterset, "page": page, "rows": rows, "query": query.urlencode()},
    )


@login_required
def export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    if fmt not in EXPORT_FORMATS:
        raise Http404("Unknown export format.")
    filterset = _filtered(request)
    # Invalid filters export nothing rather than everything.
    valid = not filterset.is_bound or filterset.is_valid()
    queryset = filterset.qs if valid else filterset.queryset.none()
    # Reading the trail out of the system is itself worth a line in it.
    audit_record(
        actor=request.user,
        action="audit.export",
        object_type="audit.auditevent",
        after={"format": fmt, "filters": {k: v for k, v in request.GET.items() if v}},
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    rows = queryset.iterator(chunk_size=1000)
    if fmt == "csv":
        response: StreamingHttpResponse = StreamingHttpResponse(
            csv_lines(rows), content_type="text/csv; charset=utf-8"
        )
    else:
        response = StreamingHttpResponse(json_chunks(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
