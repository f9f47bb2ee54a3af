"""The form that starts a run from the web UI: choices limited to the project's own objects."""

from __future__ import annotations

from typing import Any

from django import forms

from evalhub.accounts.models import Project
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.generation import available_backends
from evalhub.suites.models import SuiteVersion


class RunStartForm(forms.Form):
    suite_version = forms.ModelChoiceField(queryset=SuiteVersion.objects.none(), label="Suite version")
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.none(), label="Base model")
    adapters = forms.ModelMultipleChoiceField(
        queryset=Adapter.objects.none(), label="Candidate adapters", widget=forms.CheckboxSelectMultiple
    )
    baseline = forms.ModelChoiceField(
        queryset=Adapter.objects.none(), required=False, label="Baseline adapter"
    )
    backend = forms.ChoiceField(choices=[], initial="hf")
    max_new_tokens = forms.IntegerField(min_value=1, initial=128, label="Max new tokens")
    temperature = forms.FloatField(min_value=0, initial=0.0, help_text="0 means greedy.")
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=1.0, label="Top-p")
    seed = forms.IntegerField(initial=0)
    samples_per_case = forms.IntegerField(min_value=1, max_value=50, initial=1, label="Samples per case")
    truncation = forms.ChoiceField(
        choices=[("left", "Cut from the left and flag"), ("reject", "Reject the case")],
        initial="left",
        label="Cases longer than the context",
    )
    force_regenerate = forms.BooleanField(
        required=False, label="Regenerate instead of reusing cached outputs"
    )
    judge_checks = forms.BooleanField(
        required=False,
        label="Evaluate the suite's pending checks with the judge",
        help_text="Imported model-graded assertions (llm-rubric, factuality, ...) are graded by the base model "
        "as a log-probability judge; the report marks them judge-evaluated.",
    )
    judge_adapter = forms.ModelChoiceField(
        queryset=Adapter.objects.none(), required=False, label="Judge adapter (optional)"
    )
    name = forms.CharField(required=False, max_length=200)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["suite_version"].queryset = (
            SuiteVersion.objects.filter(suite__project=project)
            .select_related("suite")
            .order_by("suite__name", "-number")
        )
        fields["base_model"].queryset = BaseModel.objects.filter(project=project)
        adapters = (
            Adapter.objects.filter(project=project).select_related("base_model").order_by("name", "version")
        )
        fields["adapters"].queryset = adapters
        fields["adapters"].label_from_instance = lambda a: f"{a.label} (on {a.base_model.name})"
        fields["baseline"].queryset = adapters
        fields["baseline"].label_from_instance = lambda a: a.label
        fields["judge_adapter"].queryset = adapters
        fields["judge_adapter"].label_from_instance = lambda a: f"{a.label} (on {a.base_model.name})"
        fields["backend"].choices = [(name, name) for name in available_backends()]
        # Where there is only one sensible choice, start from it rather than "---------".
        base_models = list(fields["base_model"].queryset[:2])
        if len(base_models) == 1:
            fields["base_model"].initial = base_models[0].pk
        suites = {version.suite_id for version in fields["suite_version"].queryset}
        if len(suites) == 1:
            fields["suite_version"].initial = fields["suite_version"].queryset.first().pk

    def generation_config(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "max_new_tokens": data["max_new_tokens"],
            "temperature": data["temperature"],
            "top_p": data["top_p"],
            "seed": data["seed"],
            "truncation": data["truncation"],
        }
