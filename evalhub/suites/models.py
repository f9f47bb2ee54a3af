"""Evaluation suites: named, versioned sets of cases. A version is immutable once a run used it."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class Suite(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="suites")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    data_source = models.CharField(max_length=300, blank=True)
    consent_statement = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="suite_unique_name")]

    def __str__(self) -> str:
        return self.name


class PiiDecision(models.TextChoices):
    NONE_FOUND = "none_found", "No PII found"
    REDACTED = "redacted", "Redacted"
    KEPT = "kept", "Kept with justification"


class SuiteVersion(models.Model):
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    source_filename = models.CharField(max_length=300, blank=True)
    source_format = models.CharField(max_length=20, blank=True)
    case_count = models.PositiveIntegerField(default=0)
    pii_decision = models.CharField(
        max_length=16, choices=PiiDecision.choices, default=PiiDecision.NONE_FOUND
    )
    pii_justification = models.TextField(blank=True)
    pii_report = models.JSONField(default=dict, blank=True)
    diff = models.JSONField(
        default=dict, blank=True, help_text="Added, removed and changed case ids vs the previous version."
    )
    fidelity = models.JSONField(
        default=dict,
        blank=True,
        help_text="A promptfoo import's summary: tests read, cases made, asserts mapped and pending, "
        "fields dropped (with counts).",
    )
    locked_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when a run first uses this version."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suite", "-number"]
        constraints = [models.UniqueConstraint(fields=["suite", "number"], name="suiteversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.suite.name} v{self.number}"


class Origin(models.TextChoices):
    REAL = "real", "Real"
    SYNTHETIC = "synthetic", "Synthetic"


class Split(models.TextChoices):
    EVAL = "eval", "Evaluation"
    HELDOUT = "heldout", "Held-out real"


class Case(models.Model):
    version = models.ForeignKey(SuiteVersion, on_delete=models.CASCADE, related_name="cases")
    key = models.CharField(max_length=200, help_text="The case id from the uploaded file.")
    position = models.PositiveIntegerField()
    input = models.TextField()
    reference = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    slices = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=12, choices=Origin.choices, default=Origin.REAL)
    generator = models.CharField(max_length=200, blank=True)
    split = models.CharField(max_length=12, choices=Split.choices, default=Split.EVAL)
    category = models.CharField(max_length=60, blank=True)
    expected = models.JSONField(default=list, blank=True)
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="case_unique_key"),
        ]

    def __str__(self) -> str:
        return self.key

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Defence in depth: services refuse first, with a message (see services.case_update).
        if SuiteVersion.objects.filter(pk=self.version_id, locked_at__isnull=False).exists():
            raise RuntimeError("This suite version is locked: a run has used it.")
        super().save(*args, **kwargs)


# The fields a case file carries (what an upload's columns map to), in the model's order; the other columns
# (id, version, position, content_hash) are the suite's bookkeeping. Import, export, the API and case edits
# derive their field lists from this one.
CASE_FILE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in Case._meta.concrete_fields if f.name not in ("id", "version", "position", "content_hash")
)


class UploadStatus(models.TextChoices):
    STAGED = "staged", "Staged"
    # A file over EVALHUB_SUITE_SANDBOX_BYTES is read by a task, never in the request that uploaded
    # it: reading -> staged (the preview), checked (an API dry run: `report` holds the result) or
    # failed with `error` (a limit hit, an unreadable file).
    READING = "reading", "Reading the file"
    CHECKED = "checked", "Checked"
    # A large import runs as a task: pending (queued) -> screening (rows_screened of rows_total)
    # -> imported, or failed with `error`.
    PENDING = "pending", "Pending"
    SCREENING = "screening", "Screening"
    IMPORTED = "imported", "Imported"
    FAILED = "failed", "Failed"
    DISCARDED = "discarded", "Discarded"


class Upload(models.Model):
    """A file staged for preview and column mapping before it becomes a suite version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="suite_uploads")
    suite_name = models.CharField(max_length=200)
    filename = models.CharField(max_length=300)
    path = models.CharField(max_length=500, help_text="The staged file, relative to MEDIA_ROOT.")
    size = models.BigIntegerField(default=0)
    format = models.CharField(max_length=20, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="delimiter, sheet, input_var, mapping.")
    report = models.JSONField(default=dict, blank=True, help_text="Preview rows, problems and PII findings.")
    status = models.CharField(max_length=12, choices=UploadStatus.choices, default=UploadStatus.STAGED)
    version = models.ForeignKey(
        SuiteVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    choices = models.JSONField(
        default=dict, blank=True, help_text="The uploader's PII choice and provenance, for a queued import."
    )
    rows_total = models.PositiveIntegerField(default=0)
    rows_screened = models.PositiveIntegerField(default=0)
    error = models.JSONField(
        default=dict, blank=True, help_text="Why a queued import failed: message, fields."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} -> {self.suite_name}"
