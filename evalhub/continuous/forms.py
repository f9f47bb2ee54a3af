"""Forms of the continuous-evaluation pages: they collect input; the services check it."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from annotation.models import Study
from evalhub.continuous.models import BaselineRule
from evalhub.generation import available_backends
from evalhub.reports.models import GatePolicy
from evalhub.suites.models import Suite


class RecipeForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, help_text="Run on every adapter version registered.")
    suites = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='One suite a line: "name" for its latest version, "name@3" for version 3.',
    )
    baseline_rule = forms.ChoiceField(choices=BaselineRule.choices)
    baseline = forms.CharField(required=False, help_text="name@version, when the rule is a named adapter.")
    backend = forms.ChoiceField(choices=[])
    generation_config = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, for example {"max_new_tokens": 128, "temperature": 0}.',
    )
    samples_per_case = forms.IntegerField(min_value=1, initial=1)
    open_study = forms.BooleanField(required=False, help_text="Open a rating study; the verdict is frozen when it is rated.")
    study_template = forms.ModelChoiceField(queryset=Study.objects.none(), required=False,
                                            help_text="Copy rubric, instructions, terms, overlap and pool from this study.")
    study_sample_size = forms.IntegerField(min_value=1, required=False)
    gate_policy = forms.ModelChoiceField(queryset=GatePolicy.objects.none(), required=False,
                                         help_text="Empty: the project's default policy.")

    def __init__(self, *args: Any, project: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["backend"].choices = [(b, b) for b in available_backends()]
        fields["study_template"].queryset = Study.objects.filter(project=project).order_by("-created_at")
        fields["gate_policy"].queryset = GatePolicy.objects.filter(project=project).order_by("name")

    def clean_generation_config(self) -> dict[str, Any]:
        text = self.cleaned_data.get("generation_config") or ""
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object.")
        return value


class NotificationsForm(forms.Form):
    emails = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One address a line.")
    webhook_url = forms.CharField(required=False, max_length=500, help_text="http(s) only; private addresses refused.")
    new_secret = forms.BooleanField(required=False, label="Make a new signing secret")


class ScheduleForm(forms.Form):
    suite: forms.ModelChoiceField[Any] = forms.ModelChoiceField(queryset=Suite.objects.none())
    crontab = forms.CharField(max_length=100, initial="0 6 * * 1", help_text="minute hour day month weekday (UTC).")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, project: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["suite"].queryset = Suite.objects.filter(project=project).order_by("name")
