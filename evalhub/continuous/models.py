"""Evaluation recipes and what they started, re-evaluation schedules, regression alerts, and notifications."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BaselineRule(models.TextChoices):
    PARENT = "parent", "The adapter's parent"
    LAST_APPROVED = "last_approved", "The last approved version of its lineage"
    NAMED = "named", "A named adapter"


class Recipe(models.Model):
    """What a project runs, unattended, on every adapter version registered in it."""

    project = models.OneToOneField("accounts.Project", on_delete=models.CASCADE, related_name="recipe")
    enabled = models.BooleanField(default=True)
    backend = models.CharField(max_length=20, default="hf")
    generation_config = models.JSONField(default=dict, blank=True)
    samples_per_case = models.PositiveIntegerField(default=1)
    baseline_rule = models.CharField(max_length=16, choices=BaselineRule.choices, default=BaselineRule.PARENT)
    baseline_adapter = models.ForeignKey(
        "catalog.Adapter", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The baseline when the rule is 'named'.",
    )
    open_study = models.BooleanField(default=False, help_text="Open a rating study instead of freezing a verdict.")
    study_template = models.ForeignKey(
        "annotation.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="A study whose rubric, instructions, terms, overlap and pool the new study copies.",
    )
    study_sample_size = models.PositiveIntegerField(null=True, blank=True)
    gate_policy = models.ForeignKey(
        "reports.GatePolicy", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Empty: the project's default policy.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(baseline_rule="named") | models.Q(baseline_adapter__isnull=False),
                name="recipe_named_baseline_given",
            ),
            models.CheckConstraint(condition=models.Q(samples_per_case__gte=1), name="recipe_samples_positive"),
        ]

    def __str__(self) -> str:
        return f"recipe of {self.project}"


class RecipeSuite(models.Model):
    """One suite a recipe runs: a pinned version number, or the newest version when `version` is null."""

    recipe = models.ForeignKey(Recipe, on_delete=models.CASCADE, related_name="suites")
    suite = models.ForeignKey("suites.Suite", on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: latest.")

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["recipe", "suite"], name="recipesuite_unique")]

    @property
    def label(self) -> str:
        return f"{self.suite.name}@{self.version if self.version is not None else 'latest'}"


class Trigger(models.TextChoices):
    REGISTRATION = "registration", "Registration"
    SCHEDULE = "schedule", "Schedule"


class EvaluationState(models.TextChoices):
    RUNNING = "running", "Generating and scoring"
    STUDY_OPEN = "study_open", "Study open"
    VERDICT = "verdict", "Verdict frozen"
    SCORED = "scored", "Scored"
    FAILED = "failed", "Failed"


class Evaluation(models.Model):
    """One run an adapter version got from the recipe (on registration) or a schedule, and where it stands."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="evaluations")
    adapter = models.ForeignKey("catalog.Adapter", on_delete=models.CASCADE, related_name="evaluations")
    baseline = models.ForeignKey(
        "catalog.Adapter", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    suite_version = models.ForeignKey("suites.SuiteVersion", on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    run = models.OneToOneField(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluation"
    )
    state = models.CharField(max_length=12, choices=EvaluationState.choices, default=EvaluationState.RUNNING)
    open_study = models.BooleanField(default=False)
    study = models.ForeignKey(
        "annotation.Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verdict = models.ForeignKey(
        "reports.Verdict", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A registration (or a schedule tick) delivered twice starts nothing twice.
            models.UniqueConstraint(
                fields=["adapter", "suite_version", "trigger"], name="evaluation_unique_adapter_version_trigger"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.adapter} on {self.suite_version} ({self.trigger})"


class Schedule(models.Model):
    """Re-evaluate the project's approved adapters on a suite's newest version, on a crontab.

    The timing lives in django-celery-beat's PeriodicTask (the database scheduler beat reads), created and
    kept in step by `schedule_save`.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="schedules")
    suite = models.ForeignKey("suites.Suite", on_delete=models.CASCADE, related_name="+")
    crontab = models.CharField(max_length=100, help_text='Five crontab fields (UTC), e.g. "0 6 * * 1".')
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "suite"], name="schedule_unique_suite")]

    def __str__(self) -> str:
        return f"re-evaluate on {self.suite} at {self.crontab}"


class AlertKind(models.TextChoices):
    METRIC = "metric", "Automatic metric"
    WIN_RATE = "win_rate", "Human win rate"


class Alert(models.Model):
    """A regression: a value of the new evaluation whose interval no longer holds the previous run's value."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="alerts")
    previous_run = models.ForeignKey("runs.Run", null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=AlertKind.choices)
    metric = models.CharField(max_length=80)
    previous = models.FloatField()
    current = models.FloatField()
    ci_low = models.FloatField()
    ci_high = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "kind", "metric"], name="alert_unique")]

    @property
    def sentence(self) -> str:
        return (
            f"{self.metric}: {self.current:.4g} (95% interval {self.ci_low:.4g} to {self.ci_high:.4g}), "
            f"was {self.previous:.4g} in the last run"
        )


class Event(models.TextChoices):
    VERDICT_READY = "verdict.ready", "A verdict is ready"
    REGRESSION = "regression", "A regression appeared"
    STUDY_NEEDS_RATERS = "study.needs_raters", "A study needs raters"
    RUN_FAILED = "run.failed", "A run failed"
    RUN_STALLED = "run.stalled", "A run stalled"


class NotificationSettings(models.Model):
    """Where a project's notifications go: email addresses and one signed webhook."""

    project = models.OneToOneField("accounts.Project", on_delete=models.CASCADE, related_name="notifications")
    emails = models.TextField(blank=True, help_text="Addresses, one a line.")
    webhook_url = models.URLField(max_length=500, blank=True)
    secret = models.CharField(max_length=64, help_text="HMAC-SHA256 key of the webhook signature.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notifications of {self.project}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One notification to one channel, with every attempt's outcome: the delivery log."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=Event.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=500)
    subject = models.CharField(max_length=300)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.target}: {self.status}"


class WatchRefusal(models.Model):
    """A folder in the watched folder that failed registration, kept so the scan does not retry it until its
    files change (`mtime`)."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    folder = models.CharField(max_length=500)
    mtime = models.FloatField()
    reason = models.TextField()
    at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "folder"], name="watchrefusal_unique_folder")]
