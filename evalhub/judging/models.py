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
    failure = models.TextField(
        blank=True,
        default="",
        help_text="Why the judge gave no usable answer (timeout, HTTP 429 after the retries, refusal, "
        "garbage); empty when it answered. A failed order is unparseable.",
    )
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
            models.CheckConstraint(
                condition=models.Q(failure="") | models.Q(preference=JudgePreference.UNPARSEABLE),
                name="judgement_failure_is_unparseable",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.judge_name}@{self.judge_version} on task {self.task_id} ({self.order}): {self.preference}"
        )


class JudgeApi(models.TextChoices):
    CHAT = "chat", "/v1/chat/completions"
    COMPLETIONS = "completions", "/v1/completions"


class JudgeEndpoint(models.Model):
    """An OpenAI-compatible HTTP judge a project configured (vLLM, or any server speaking that API).

    ``api_key`` is a secret: stored like the webhook signing secret (a column only the server reads),
    written through the API, form and CLI but never shown back, never in the audit trail nor the admin.
    The URL passed ``evalhub.outbound``'s rule when saved (private addresses need
    EVALHUB_JUDGE_ALLOW_PRIVATE) and is checked again when a judge is built from it.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="judge_endpoints")
    name = models.CharField(max_length=100)
    base_url = models.CharField(max_length=500, help_text="http(s)://host[:port], with or without /v1.")
    model = models.CharField(max_length=200, help_text="The model name the server serves.")
    api = models.CharField(max_length=12, choices=JudgeApi.choices, default=JudgeApi.CHAT)
    api_key = models.CharField(max_length=500, blank=True, default="")
    timeout_seconds = models.FloatField(default=30.0)
    concurrency = models.PositiveSmallIntegerField(default=4)
    max_retries = models.PositiveSmallIntegerField(default=3)
    constrained = models.BooleanField(
        default=False,
        help_text="vLLM only: constrain the answer to the allowed words (structured outputs), so it always parses.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Declared: django-stubs does not infer the default manager of a model with a field named "model".
    objects: models.Manager[JudgeEndpoint] = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="judge_endpoint_name_unique"),
            models.CheckConstraint(
                condition=models.Q(api__in=JudgeApi.values), name="judge_endpoint_api_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gt=0, timeout_seconds__lte=600),
                name="judge_endpoint_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(concurrency__gte=1, concurrency__lte=64),
                name="judge_endpoint_concurrency_range",
            ),
            models.CheckConstraint(
                condition=models.Q(max_retries__lte=10), name="judge_endpoint_retries_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model} at {self.base_url})"
