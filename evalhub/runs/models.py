"""Evaluation runs, their generated outputs and the automatic metric scores of each output."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    """Generate one output per (adapter, case, sample) of a suite version, then score them."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    suite_version = models.ForeignKey("suites.SuiteVersion", on_delete=models.PROTECT, related_name="runs")
    base_model = models.ForeignKey("catalog.BaseModel", on_delete=models.PROTECT, related_name="runs")
    adapters: models.ManyToManyField = models.ManyToManyField(
        "catalog.Adapter", through="RunAdapter", related_name="runs"
    )
    backend = models.CharField(max_length=20, default="hf")
    generation_config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64)
    samples_per_case = models.PositiveIntegerField(default=1)
    force_regenerate = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    reused = models.PositiveIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class AdapterRole(models.TextChoices):
    BASELINE = "baseline", "Baseline"
    CANDIDATE = "candidate", "Candidate"


class RunAdapter(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="run_adapters")
    adapter = models.ForeignKey("catalog.Adapter", on_delete=models.PROTECT, related_name="run_adapters")
    role = models.CharField(max_length=12, choices=AdapterRole.choices, default=AdapterRole.CANDIDATE)
    sanity = models.JSONField(default=dict, blank=True, help_text="The adapter sanity check's result.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "adapter"], name="runadapter_unique")]


class Output(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="outputs")
    adapter = models.ForeignKey("catalog.Adapter", on_delete=models.PROTECT, related_name="outputs")
    case = models.ForeignKey("suites.Case", on_delete=models.PROTECT, related_name="outputs")
    sample = models.PositiveIntegerField(default=0)
    text = models.TextField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=20)
    latency_ms = models.FloatField(default=0.0)
    backend = models.CharField(max_length=20)
    seed = models.BigIntegerField(null=True, blank=True)
    config_hash = models.CharField(max_length=64)
    cache_key = models.CharField(
        max_length=64, db_index=True, help_text="Hash of adapter weights, case content, config and sample."
    )
    truncated = models.BooleanField(default=False)
    reused_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "adapter", "case", "sample"], name="output_unique_run_adapter_case_sample"
            ),
        ]

    def __str__(self) -> str:
        return f"output {self.pk}"


class MetricScore(models.Model):
    """One metric's value for one output (or, for perplexity, for one adapter and case)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_scores")
    adapter = models.ForeignKey("catalog.Adapter", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("suites.Case", on_delete=models.PROTECT, related_name="+")
    output = models.ForeignKey(Output, null=True, blank=True, on_delete=models.CASCADE, related_name="scores")
    sample = models.PositiveIntegerField(default=0)
    metric = models.CharField(max_length=80)
    metric_version = models.CharField(max_length=20)
    config_hash = models.CharField(max_length=64)
    value = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "adapter", "case", "sample", "metric", "config_hash"],
                name="metricscore_unique",
            ),
        ]
        indexes = [models.Index(fields=["run", "metric"])]
