"""Rating studies: blinded tasks built from a run's outputs, leased to raters, and their ratings.

Which adapter wrote which side is stored only here, server-side (Task.output_a/output_b); everything a
rater receives goes through annotation.blinding, which never includes it.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


class RaterPool(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="rater_pools")
    name = models.CharField(max_length=120)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="rater_pools", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="raterpool_unique_name")]

    def __str__(self) -> str:
        return self.name


class StudyKind(models.TextChoices):
    PAIRWISE = "pairwise", "Side by side"
    SINGLE = "single", "Single output"


class StudyStatus(models.TextChoices):
    OPEN = "open", "Open"
    PAUSED = "paused", "Paused"
    CLOSED = "closed", "Closed"


class StudyRouting(models.TextChoices):
    RANDOM = "random", "Random order"
    UNCERTAINTY_FIRST = (
        "uncertainty_first",
        "Pairs the judge is least sure of first, with a random audit share",
    )


class Study(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="studies")
    run = models.ForeignKey("runs.Run", on_delete=models.PROTECT, related_name="studies")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=StudyKind.choices, default=StudyKind.PAIRWISE)
    baseline = models.ForeignKey(
        "catalog.Adapter", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    overlap = models.PositiveIntegerField(
        default=2, help_text="Ratings needed per task, from distinct raters."
    )
    lease_seconds = models.PositiveIntegerField(default=900)
    gold_rate = models.FloatField(default=0.0, help_text="Share of gold tasks mixed into each rater's queue.")
    rubric = models.JSONField(default=dict, blank=True)
    instructions = models.TextField(blank=True)
    terms = models.TextField(blank=True)
    pool = models.ForeignKey(
        RaterPool, null=True, blank=True, on_delete=models.SET_NULL, related_name="studies"
    )
    status = models.CharField(max_length=12, choices=StudyStatus.choices, default=StudyStatus.OPEN)
    seed = models.BigIntegerField(default=0)
    allow_case_repeats = models.BooleanField(
        default=False,
        help_text="Let one rater get several tasks of the same case (for very small suites): "
        "a rater who sees the same output twice can learn which side is the baseline.",
    )
    judge_spec = models.JSONField(
        default=dict,
        blank=True,
        help_text='Which judge rates every pair: {} for none, {"kind": "local", "base_model": id, '
        '"adapter": id or null} for a catalogue model read by its log-probabilities (evalhub.judging).',
    )
    routing = models.CharField(max_length=20, choices=StudyRouting.choices, default=StudyRouting.RANDOM)
    audit_share = models.FloatField(
        default=0.2,
        help_text="Under uncertainty-first routing, the share of the order drawn uniformly (audit).",
    )
    judge_state = models.JSONField(
        default=dict,
        blank=True,
        help_text="What judging the study did: status, pairs judged, failures with their reason, routing.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(condition=models.Q(overlap__gte=1), name="study_overlap_positive"),
            models.CheckConstraint(
                condition=models.Q(gold_rate__gte=0) & models.Q(gold_rate__lte=1), name="study_gold_rate_0_1"
            ),
            models.CheckConstraint(
                condition=models.Q(audit_share__gte=0) & models.Q(audit_share__lte=1),
                name="study_audit_share_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(routing__in=StudyRouting.values), name="study_routing_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Task(models.Model):
    """One item to rate: a pair of outputs (sides already randomised) or a single output."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="tasks")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    case = models.ForeignKey("suites.Case", on_delete=models.PROTECT, related_name="+")
    output_a = models.ForeignKey("runs.Output", on_delete=models.PROTECT, related_name="+")
    output_b = models.ForeignKey(
        "runs.Output", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(
        null=True,
        blank=True,
        help_text='In side terms, for example {"preference": "A", "hallucination": {"A": false, "B": true}}.',
    )
    required_ratings = models.PositiveIntegerField(
        default=2,
        help_text="Ratings needed from distinct raters; 0 on gold tasks (each rater sees each once).",
    )
    rating_count = models.PositiveIntegerField(default=0)
    order_key = models.CharField(max_length=32, db_index=True, help_text="Random key that orders the queue.")
    routing = models.JSONField(
        default=dict,
        blank=True,
        help_text="Under uncertainty-first routing: the pair's sampling weight, key and audit draw "
        "(metrics.routing.RoutingPlan), from which the report derives its inclusion probability.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["study", "is_gold", "order_key"], name="task_queue_order"),
            # The queue scans only tasks still short of ratings, so filled tasks cost nothing.
            models.Index(
                fields=["study", "order_key"],
                condition=models.Q(is_gold=False, rating_count__lt=models.F("required_ratings")),
                name="task_open_queue",
            ),
        ]
        constraints = [
            # Never more ratings than asked for; gold tasks (required_ratings 0) have no cap.
            models.CheckConstraint(
                condition=models.Q(required_ratings=0)
                | models.Q(rating_count__lte=models.F("required_ratings")),
                name="task_rating_count_within_required",
            ),
            models.CheckConstraint(
                condition=~models.Q(output_b=models.F("output_a")), name="task_sides_distinct"
            ),
        ]

    @property
    def is_pair(self) -> bool:
        return self.output_b_id is not None


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """A rater's lease on a task. One per (task, rater): no rater sees a task twice."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    # Denormalised from task.study so a rater's own lease and progress are one indexed lookup.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(
        max_length=12, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=300, blank=True)
    # The API token the lease was taken with (none through a session): revoking it ends the lease.
    token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "rater"], name="assignment_unique_task_rater")]
        indexes = [
            models.Index(fields=["rater", "study", "status"], name="assignment_rater_study"),
            models.Index(fields=["task", "status", "expires_at"], name="assignment_task_lease"),
        ]


class Rating(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="ratings")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    scores = models.JSONField(
        default=dict, help_text='Per criterion and side, e.g. {"factual_accuracy": {"A": 4, "B": 2}}.'
    )
    preference = models.CharField(
        max_length=12, blank=True, help_text="A, B, tie or both_bad (pairwise tasks)."
    )
    hallucination = models.JSONField(default=dict, blank=True, help_text='{"A": bool, "B": bool} and spans.')
    rationale = models.TextField(blank=True)
    time_on_task_ms = models.PositiveIntegerField(default=0)
    client_time_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="What the browser measured, before the server's sanity check."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "rater"], name="rating_unique_task_rater"),
            models.CheckConstraint(
                condition=models.Q(preference__in=["", "A", "B", "tie", "both_bad"]),
                name="rating_preference_valid",
            ),
        ]


class Consent(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consents")
    rater = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="study_consents"
    )
    terms_sha256 = models.CharField(
        max_length=64, blank=True, help_text="Which wording of the terms was accepted."
    )
    accepted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "rater"], name="consent_unique")]
