"""One row per (pair, judge identity and version, order): the prompt, the raw output, the parsed result."""

from __future__ import annotations

from django.db import models


class JudgeOrder(models.TextChoices):
    AB = "ab", "Output A shown first"
    BA = "ba", "Output B shown first"


class JudgePreference(models.TextChoices):
    A = "A", "Output A"
    B = "B", "Output B"
    TIE = "tie", "Tie"
    UNPARSEABLE = "unparseable", "Unparseable answer"


class Judgement(models.Model):
    """The judge's answer on one pair in one order. ``preference`` and ``prob_a`` are in the task's own
    frame (A is ``task.output_a`` whatever position it was shown in). An unparseable answer has no
    probability and is stored as such, never guessed."""

    task = models.ForeignKey("annotation.Task", on_delete=models.CASCADE, related_name="judgements")
    judge_name = models.CharField(max_length=200)
    judge_version = models.CharField(max_length=64, help_text="Fingerprint of the model, adapter and prompt.")
    order = models.CharField(max_length=2, choices=JudgeOrder.choices)
    prompt = models.TextField()
    raw_output = models.TextField()
    preference = models.CharField(max_length=12, choices=JudgePreference.choices)
    prob_a = models.FloatField(
        null=True, blank=True, help_text="Probability that output A is the better one."
    )
    scores = models.JSONField(
        default=dict, blank=True, help_text="Per-criterion scores, when the judge gives them."
    )
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "judge_name", "judge_version", "order"], name="judgement_one_per_order"
            ),
            models.CheckConstraint(
                condition=models.Q(order__in=JudgeOrder.values), name="judgement_order_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(preference__in=JudgePreference.values), name="judgement_preference_valid"
            ),
            # Unparseable has no probability; every parsed answer has one in [0, 1].
            models.CheckConstraint(
                condition=(
                    models.Q(preference=JudgePreference.UNPARSEABLE, prob_a__isnull=True)
                    | (
                        ~models.Q(preference=JudgePreference.UNPARSEABLE)
                        & models.Q(prob_a__gte=0.0, prob_a__lte=1.0)
                    )
                ),
                name="judgement_prob_matches_preference",
            ),
            models.CheckConstraint(
                condition=models.Q(latency_ms__gte=0), name="judgement_latency_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.judge_name}@{self.judge_version} on task {self.task_id} ({self.order}): {self.preference}"
        )
