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
    judge_checks = models.BooleanField(
        default=False,
        help_text="Evaluate the suite's pending checks (imported model-graded assertions) with the judge.",
    )
    judge_adapter = models.ForeignKey(
        "catalog.Adapter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The judge: the run's base model with this adapter (none: the base model alone).",
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    reused = models.PositiveIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    generation_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    watchdog_note = models.TextField(
        blank=True, help_text="Why the watchdog last sent this run's work again (a stalled chunk, a lost message)."
    )
    watchdog_at = models.DateTimeField(null=True, blank=True, help_text="When the watchdog last did.")
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
    truncated = models.BooleanField(default=False, help_text="The prompt was cut from the left to fit.")
    error = models.TextField(
        blank=True, help_text='Why the case was not generated (finish reason "rejected").'
    )
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


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class RunChunk(models.Model):
    """A slice of a run's cases: every adapter and sample of those cases, generated by one task.

    The chunk is the unit of work a worker takes; a worker killed mid-run loses at most its chunk's
    unsaved batch, and a redelivered chunk generates only what is missing.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    case_ids = models.JSONField(default=list)
    size = models.PositiveIntegerField(help_text="Outputs expected: cases x adapters x samples.")
    status = models.CharField(max_length=12, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    leased_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the last worker.")
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expiries = models.PositiveIntegerField(
        default=0, help_text="Times the watchdog found this chunk's lease expired without progress."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="runchunk_unique_index")]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index}"


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


class ScoringKind(models.TextChoices):
    TEXT = "text", "Text metrics and checks"
    PERPLEXITY = "perplexity", "Perplexity"
    JUDGE_CHECKS = "judge_checks", "Pending checks by the judge"


class ScoringStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RunScoring(models.Model):
    """Where one kind of a run's automatic scoring stands, so a failure is seen outside the worker logs.

    `written` counts the rows the last scoring pass inserted (0 when every score was stored already);
    `error` is the exception's class and message when it failed.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scorings")
    kind = models.CharField(max_length=16, choices=ScoringKind.choices)
    status = models.CharField(max_length=12, choices=ScoringStatus.choices, default=ScoringStatus.QUEUED)
    error = models.TextField(blank=True)
    written = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "kind"], name="runscoring_unique_run_kind")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} scoring: {self.status}"
