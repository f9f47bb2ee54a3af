"""Web pages of suites: list, upload → preview and mapping → confirm, suite page with versions and cases."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.accounts.models import Project
from evalhub.permissions import WRITE_ROLES
from evalhub.suites import selectors, services
from evalhub.suites.export import export_csv_lines, export_promptfoo, export_xlsx
from evalhub.suites.forms import DELIMITER_CHOICES, CaseFilterForm, ConfirmForm, MappingForm, UploadForm
from evalhub.suites.models import Suite, SuiteVersion, Upload, UploadStatus
from evalhub.web import form_errors, message_errors
from evalhub.web import project_for_request as _project

PAGE_SIZE = 50


def highlight(text: str, findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split text into plain and PII segments for the template to mark up (it escapes every segment)."""
    segments: list[dict[str, Any]] = []
    cursor = 0
    for f in sorted(findings, key=lambda f: f["start"]):
        start, end = int(f["start"]), int(f["end"])
        if start < cursor or end > len(text):
            continue
        if start > cursor:
            segments.append({"text": text[cursor:start], "entity": ""})
        segments.append({"text": text[start:end], "entity": f["entity_type"]})
        cursor = end
    if cursor < len(text):
        segments.append({"text": text[cursor:], "entity": ""})
    return segments


@login_required
def suite_list(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _project(request, project_slug)
    suites = selectors.suite_list(projects=Project.objects.filter(pk=project.pk))
    return render(
        request,
        "suites/suite_list.html",
        {
            "project": project,
            "suites": suites,
            "staged": selectors.staged_upload_list(project=project),
            "running": selectors.running_import_list(project=project),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest, project_slug: str) -> HttpResponse:
    project = _project(request, project_slug, roles=WRITE_ROLES)
    form = UploadForm(
        request.POST or None, request.FILES or None, initial={"name": request.GET.get("suite", "")}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        file = data["file"]
        with form_errors(form):
            staged = services.suite_upload_stage(
                project=project,
                name=data["name"],
                file=file,
                filename=file.name,
                actor=request.user,
                options=services.ImportOptions(
                    format=data["format"] or "",
                    delimiter=data["delimiter"] or ",",
                    sheet=data["sheet"],
                    input_var=data["input_var"],
                ),
            )
            return redirect("suites:preview", project_slug=project.slug, upload_id=staged.pk)
    existing = Suite.objects.filter(project=project).values_list("name", flat=True)
    return render(request, "suites/upload.html", {"project": project, "form": form, "existing": existing})


@login_required
@require_http_methods(["GET", "POST"])
def preview(request: HttpRequest, project_slug: str, upload_id: str) -> HttpResponse:
    project = _project(request, project_slug, roles=WRITE_ROLES)
    staged = get_object_or_404(Upload, pk=upload_id, project=project)
    if staged.status == UploadStatus.IMPORTED and staged.version is not None:
        messages.info(request, "This upload was already imported.")
        return redirect("suites:detail", project_slug=project.slug, suite_id=staged.version.suite_id)
    if staged.status in (
        UploadStatus.READING,
        UploadStatus.CHECKED,
        UploadStatus.PENDING,
        UploadStatus.SCREENING,
        UploadStatus.FAILED,
    ):
        return render(
            request,
            "suites/import_status.html",
            {"project": project, "upload": staged, "status": selectors.upload_status(upload=staged)},
        )
    report = staged.report
    mapping_form = MappingForm(columns=report.get("columns", []), mapping=report.get("mapping", {}))
    confirm_form = ConfirmForm()  # nothing preselected: the uploader chooses what happens to personal data
    mapped_by_column = {column: fld for fld, column in report.get("mapping", {}).items()}
    is_csv = staged.format == "csv" or staged.filename.lower().endswith((".csv", ".tsv", ".txt"))
    if request.method == "POST" and staged.status == UploadStatus.STAGED:
        action = request.POST.get("action")
        # A refusal (row problems, PII rejected, a stale upload) is a message on the page rendered below.
        with message_errors(request):
            if action == "discard":
                services.suite_upload_discard(upload=staged, actor=request.user)
                messages.info(request, f"Discarded {staged.filename}; nothing was imported.")
                return redirect("suites:list", project_slug=project.slug)
            if action == "reread":
                # Another delimiter, sheet or input variable: the columns change, so the mapping restarts.
                options = services.ImportOptions.from_dict(staged.options)
                options.mapping = None
                options.delimiter = request.POST.get("delimiter") or options.delimiter
                options.sheet = request.POST.get("sheet", options.sheet)
                options.input_var = request.POST.get("input_var", options.input_var)
                services.suite_upload_remap(upload=staged, options=options, actor=request.user)
                messages.info(request, "Read the file again with your settings.")
                return redirect("suites:preview", project_slug=project.slug, upload_id=staged.pk)
            if action == "remap":
                mapping_form = MappingForm(request.POST, columns=report.get("columns", []), mapping={})
                if mapping_form.is_valid():
                    options = services.ImportOptions.from_dict(staged.options)
                    options.mapping = mapping_form.mapping()
                    services.suite_upload_remap(upload=staged, options=options, actor=request.user)
                    messages.info(request, "Checked the file again with your column mapping.")
                    return redirect("suites:preview", project_slug=project.slug, upload_id=staged.pk)
            if action == "confirm":
                confirm_form = ConfirmForm(request.POST)
                if confirm_form.is_valid():
                    data = confirm_form.cleaned_data
                    result = services.suite_upload_submit(
                        upload=staged,
                        actor=request.user,
                        choices=services.ImportChoices(
                            pii_action=data["pii_action"],
                            pii_justification=data["pii_justification"],
                            data_source=data["data_source"],
                            consent_statement=data["consent_statement"],
                            only_valid_rows=data["only_valid_rows"],
                        ),
                    )
                    if isinstance(result, Upload):  # queued: imported by a task; its page shows progress
                        return redirect("suites:preview", project_slug=project.slug, upload_id=staged.pk)
                    version = result.version
                    if result.unchanged:
                        messages.info(
                            request, f"The file matches version {version.number}: no new version was made."
                        )
                    else:
                        messages.success(
                            request, f"Imported {version.case_count} cases as version {version.number}."
                        )
                    return redirect("suites:detail", project_slug=project.slug, suite_id=version.suite_id)
        staged.refresh_from_db()  # a PII rejection discards the upload (services.suite_upload_confirm)
    return render(
        request,
        "suites/preview.html",
        {
            "project": project,
            "upload": staged,
            "report": report,
            "problems": report.get("problems", []),
            "fatal": report.get("fatal", False),
            "preview_headers": [
                {"column": c, "field": mapped_by_column.get(c, "")} for c in report.get("columns", [])[:30]
            ],
            "preview_rows": [
                {"row": r["row"], "cells": [r["values"].get(c, "") for c in report.get("columns", [])[:30]]}
                for r in report.get("preview", [])
            ],
            "pii_rows": [
                {
                    "row": r["row"],
                    "key": r["key"],
                    "fields": [
                        {**f, "segments": highlight(f["excerpt"], f["findings"])} for f in r["fields"]
                    ],
                }
                for r in report.get("pii_rows", [])
            ],
            "mapping_form": mapping_form,
            "confirm_form": confirm_form,
            "delimiter": staged.options.get("delimiter", ","),
            "delimiters": DELIMITER_CHOICES,
            "options": staged.options,
            "is_csv": is_csv,
            # Offer another delimiter where it can help: a delimiter hint, or row problems in a CSV.
            "offer_delimiter": is_csv
            and (
                any("delimiter" in p["problem"] for p in report.get("problems", []))
                or (report.get("problem_count", 0) > 0 and not report.get("fatal"))
            ),
            "importable": not report.get("fatal") and report.get("valid_rows", 0) > 0,
            "can_map": staged.format in ("csv", "xlsx", "jsonl"),
        },
    )


@login_required
def detail(request: HttpRequest, project_slug: str, suite_id: int) -> HttpResponse:
    project = _project(request, project_slug)
    suite = get_object_or_404(Suite, pk=suite_id, project=project)
    versions = list(selectors.suite_version_list(suite=suite))
    wanted = request.GET.get("v", "")
    version = next((v for v in versions if str(v.number) == wanted), versions[0] if versions else None)
    all_counts = selectors.case_counts(version=version) if version is not None else {}
    choices = {"tags": list(all_counts.get("tags", {})), "categories": list(all_counts.get("category", {}))}
    filters = CaseFilterForm(request.GET or None, **choices)
    data = filters.cleaned_data if filters.is_valid() else {}
    context: dict[str, Any] = {"project": project, "suite": suite, "versions": versions, "version": version}
    if version is not None:
        name, _, value = (data.get("slice") or "").partition(":")
        cases = selectors.case_filter(
            version=version,
            tag=data.get("tag") or "",
            origin=data.get("origin") or "",
            split=data.get("split") or "",
            category=data.get("category") or "",
            slice_name=name.strip(),
            slice_value=value.strip(),
            search=data.get("q") or "",
        )
        page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        filtered = any(data.get(k) for k in ("q", "tag", "origin", "split", "category", "slice"))
        context.update(
            {
                "page": page,
                "filters": filters
                if filters.is_bound
                else CaseFilterForm(initial={"v": version.number}, **choices),
                "filtered": filtered,
                "counts": selectors.case_counts(version=version, cases=cases) if filtered else all_counts,
                "query": query.urlencode(),
                "version_number": version.number,
            }
        )
    return render(request, "suites/detail.html", context)


@login_required
def export(
    request: HttpRequest, project_slug: str, suite_id: int, number: int, kind: str
) -> HttpResponseBase:
    project = _project(request, project_slug)
    version = get_object_or_404(SuiteVersion, suite_id=suite_id, suite__project=project, number=number)
    if kind not in ("csv", "xlsx", "promptfoo"):
        raise Http404("Export as .csv, .xlsx or .promptfoo")
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{version.suite.name}-v{version.number}")
    if kind == "promptfoo":  # a .zip bundle: promptfooconfig.yaml + tests.yaml
        handle = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)  # noqa: SIM115
        handle.close()
        export_promptfoo(version=version, path=Path(handle.name))
        response = FileResponse(open(handle.name, "rb"), as_attachment=True, filename=f"{stem}-promptfoo.zip")  # noqa: SIM115
        Path(handle.name).unlink()
        return response
    if kind == "xlsx":
        handle = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)  # noqa: SIM115
        handle.close()
        export_xlsx(version=version, path=Path(handle.name))
        response = FileResponse(open(handle.name, "rb"), as_attachment=True, filename=f"{stem}.xlsx")  # noqa: SIM115
        Path(handle.name).unlink()
        return response
    streaming = StreamingHttpResponse(
        export_csv_lines(version=version), content_type="text/csv; charset=utf-8"
    )
    streaming["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
    return streaming


@login_required
@require_POST
def discard(request: HttpRequest, project_slug: str, upload_id: str) -> HttpResponse:
    project = _project(request, project_slug, roles=WRITE_ROLES)
    staged = get_object_or_404(Upload, pk=upload_id, project=project)
    services.suite_upload_discard(upload=staged, actor=request.user)
    return redirect("suites:list", project_slug=project.slug)
