"""Gate policies and frozen verdicts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class GatePolicy(models.Model):
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="gate_policies")
    name = models.CharField(max_length=120)
    source = models.TextField(help_text="The policy as YAML.")
    parsed = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="gatepolicy_unique_name")]

    def __str__(self) -> str:
        return self.name


class Decision(models.TextChoices):
    GO = "GO", "GO"
    NO_GO = "NO-GO", "NO-GO"
    INCONCLUSIVE = "INCONCLUSIVE", "INCONCLUSIVE"


class Verdict(models.Model):
    """A frozen decision: the report's inputs snapshotted, hashed, and the gate results."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="verdicts")
    public_id = models.CharField(max_length=32, unique=True)
    run = models.ForeignKey("runs.Run", on_delete=models.PROTECT, related_name="verdicts")
    study = models.ForeignKey(
        "annotation.Study", null=True, blank=True, on_delete=models.PROTECT, related_name="verdicts"
    )
    policy = models.ForeignKey(GatePolicy, on_delete=models.PROTECT, related_name="verdicts")
    candidate = models.ForeignKey(
        "catalog.Adapter", on_delete=models.PROTECT, related_name="verdicts_as_candidate"
    )
    baseline = models.ForeignKey(
        "catalog.Adapter", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    gates = models.JSONField(default=list)
    snapshot = models.JSONField(default=dict)
    content_hash = models.CharField(max_length=64)
    frozen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    frozen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-frozen_at"]

    @property
    def why(self) -> str:
        """The one-sentence reason, recomputed from the stored gates (the rule lives in gates)."""
        from evalhub.reports.gates import verdict_why

        return verdict_why(self.decision, list(self.gates), self.candidate.label)

    @property
    def gates_shown(self) -> list[dict[str, Any]]:
        from evalhub.reports.gates import gates_explained

        return gates_explained(self.decision, list(self.gates))
