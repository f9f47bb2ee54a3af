"""The model and adapter catalogue: base models, PEFT adapters, versions and lineage."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    """A local Hugging Face model folder (weights, config, tokenizer)."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="base_models")
    name = models.CharField(max_length=200)
    folder = models.CharField(max_length=500, help_text="Absolute path of the local model folder.")
    architecture = models.CharField(max_length=120, blank=True)
    model_type = models.CharField(max_length=60, blank=True)
    weights_hash = models.CharField(max_length=64, help_text="SHA-256 over the weight files.")
    dtype = models.CharField(max_length=20, blank=True)
    tokenizer = models.CharField(max_length=500, help_text="Tokenizer folder (usually the model folder).")
    parameters = models.BigIntegerField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="basemodel_unique_name")]

    def __str__(self) -> str:
        return self.name


class AdapterStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Adapter(models.Model):
    """A PEFT adapter version on one base model, with its lineage and training-data provenance."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="adapters")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="adapters")
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=40)
    folder = models.CharField(max_length=500)
    weights_hash = models.CharField(max_length=64)
    peft_type = models.CharField(max_length=40)
    rank = models.PositiveIntegerField()
    alpha = models.FloatField()
    target_modules = models.JSONField(default=list)
    peft_config = models.JSONField(default=dict)
    base_quantization = models.CharField(
        max_length=10,
        default="none",
        help_text=(
            'How the base was quantised when the adapter was trained: "none", or "nf4"/"fp4"/"int8" for '
            "QLoRA (the values: evalhub.generation.folders.QUANTIZATIONS)."
        ),
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The adapter this one was trained from (multi-stage fine-tuning).",
    )
    stage = models.CharField(max_length=60, blank=True, help_text='For example "factual" or "tone".')
    train_examples = models.PositiveIntegerField(null=True, blank=True)
    synthetic_share = models.FloatField(null=True, blank=True)
    data_source = models.CharField(max_length=300, blank=True)
    consent_reference = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=AdapterStatus.choices, default=AdapterStatus.CANDIDATE)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="adapter_unique_version"),
            models.CheckConstraint(
                condition=models.Q(synthetic_share__isnull=True)
                | (models.Q(synthetic_share__gte=0) & models.Q(synthetic_share__lte=1)),
                name="adapter_synthetic_share_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"
