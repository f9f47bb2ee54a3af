"""Reads for suites: lists, case filters (tag, slice, origin, split, category, search) and counts.

The reports app builds its real / synthetic / held-out comparisons on `case_filter` and `case_counts`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from evalhub.accounts.models import Project
from evalhub.suites.models import Case, Origin, Split, Suite, SuiteVersion, Upload, UploadStatus


def suite_list(*, projects: QuerySet[Project]) -> QuerySet[Suite]:
    return (
        Suite.objects.filter(project__in=projects)
        .select_related("project")
        .annotate(latest_number=Max("versions__number"), version_count=Count("versions", distinct=True))
        .order_by("project__name", "name")
    )


def suite_latest_version(*, suite: Suite) -> SuiteVersion | None:
    return suite.versions.order_by("-number").first()


def suite_version_list(*, suite: Suite) -> QuerySet[SuiteVersion]:
    return suite.versions.select_related("created_by").order_by("-number")


def staged_upload_list(*, project: Project) -> QuerySet[Upload]:
    return Upload.objects.filter(project=project, status=UploadStatus.STAGED).order_by("-created_at")


def running_import_list(*, project: Project) -> QuerySet[Upload]:
    """Large uploads being read, queued or screening, so their status page can be found again."""
    running = [UploadStatus.READING, UploadStatus.PENDING, UploadStatus.SCREENING]
    return Upload.objects.filter(project=project, status__in=running).order_by("-created_at")


def _has_tag(qs: QuerySet[Case], tag: str) -> QuerySet[Case]:
    if connection.features.supports_json_field_contains:
        return qs.filter(tags__contains=[tag])
    # SQLite stores the list as JSON text: match the quoted, JSON-escaped tag.
    return qs.annotate(_tags_text=Cast("tags", TextField())).filter(_tags_text__contains=json.dumps(tag))


def case_filter(
    *,
    version: SuiteVersion,
    tag: str = "",
    origin: str = "",
    split: str = "",
    category: str = "",
    slice_name: str = "",
    slice_value: str = "",
    search: str = "",
) -> QuerySet[Case]:
    """Cases of a version narrowed by any of the filters (empty means no filter), in file order."""
    qs = Case.objects.filter(version=version)
    if tag:
        qs = _has_tag(qs, tag)
    if origin:
        qs = qs.filter(origin=origin)
    if split:
        qs = qs.filter(split=split)
    if category:
        qs = qs.filter(category=category)
    if slice_name:
        qs = qs.annotate(_slice=Cast(KeyTextTransform(slice_name, "slices"), TextField()))
        qs = qs.filter(_slice=slice_value) if slice_value else qs.filter(_slice__isnull=False)
    if search:
        qs = qs.filter(Q(input__icontains=search) | Q(reference__icontains=search) | Q(key__icontains=search))
    return qs.order_by("position")


def case_counts(*, version: SuiteVersion, cases: QuerySet[Case] | None = None) -> dict[str, Any]:
    """Counts per origin, split, category, origin x split, tag and slice value (of `cases`, default all)."""
    qs = cases if cases is not None else Case.objects.filter(version=version)
    origin: Counter[str] = Counter()
    split: Counter[str] = Counter()
    category: Counter[str] = Counter()
    origin_split: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    slices: dict[str, Counter[str]] = {}
    total = 0
    for o, s, c, t, sl in qs.values_list("origin", "split", "category", "tags", "slices").iterator(
        chunk_size=2000
    ):
        total += 1
        origin[o] += 1
        split[s] += 1
        origin_split[f"{o}/{s}"] += 1
        if c:
            category[c] += 1
        for tag in t or []:
            tags[str(tag)] += 1
        for name, value in (sl or {}).items():
            slices.setdefault(str(name), Counter())[str(value)] += 1
    return {
        "total": total,
        "origin": {o.value: origin.get(o.value, 0) for o in Origin},
        "split": {s.value: split.get(s.value, 0) for s in Split},
        "origin_split": dict(sorted(origin_split.items())),
        "category": dict(category.most_common()),
        "tags": dict(tags.most_common()),
        "slices": {name: dict(values.most_common()) for name, values in sorted(slices.items())},
    }


def case_groups_for_synthetic_validation(*, version: SuiteVersion) -> dict[str, QuerySet[Case]]:
    """The groups the reports compare adapters on: did synthetic training data help on real data?

    `real_eval` and `synthetic_eval` are the evaluation split by origin; `heldout_real` is the held-out
    real split (never synthetic, which the upload checks enforce).
    """
    cases = Case.objects.filter(version=version)
    return {
        "real_eval": cases.filter(origin=Origin.REAL, split=Split.EVAL),
        "synthetic_eval": cases.filter(origin=Origin.SYNTHETIC, split=Split.EVAL),
        "heldout_real": cases.filter(origin=Origin.REAL, split=Split.HELDOUT),
    }


def upload_status(*, upload: Upload) -> dict[str, Any]:
    """A queued import's state for its page: counts, percent, and a failure's row problems."""
    fields = dict(upload.error.get("fields") or {})
    rows = fields.pop("rows", [])
    pii = fields.pop("pii", [])
    for key in ("problem_count", "rows_with_problems"):
        fields.pop(key, None)
    return {
        "status": upload.status,
        "label": upload.get_status_display(),
        "finished": upload.status in (UploadStatus.IMPORTED, UploadStatus.FAILED, UploadStatus.CHECKED),
        "done": upload.rows_screened,
        "total": upload.rows_total,
        "percent": int(100 * upload.rows_screened / upload.rows_total) if upload.rows_total else 0,
        "message": upload.error.get("message", ""),
        "problems": rows,
        "pii_rows": pii,
        "field_errors": fields,
    }
