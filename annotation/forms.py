"""Translating the HTML rating form to the service payload and back (for re-showing what was entered).

The API sends the payload as JSON directly; the form flattens it into named fields so the page works
with plain HTML and the script only adds comfort (shortcuts, span selection, timing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from django import forms

from annotation.blinding import BlindTask
from annotation.models import RaterPool
from annotation.rubric import PREFERENCE_LABELS
from evalhub.catalog.models import Adapter

SKIP_REASONS = (
    ("expertise", "Outside my expertise"),
    ("broken", "The input or an output is broken or unreadable"),
    ("identical", "The outputs are identical"),
    ("other", "Another reason"),
)


def score_field(key: str, side: str) -> str:
    return f"score__{key}__{side}"


def rating_payload_from_post(post: Mapping[str, Any], *, sides: tuple[str, ...]) -> dict[str, Any]:
    scores: dict[str, dict[str, str]] = {}
    hallucination: dict[str, Any] = {}
    for name, value in post.items():
        if name.startswith("score__"):
            _, key, side = [*name.split("__"), "", ""][:3]
            scores.setdefault(key, {})[side] = value
    for side in sides:
        try:
            spans = json.loads(post.get(f"halluc_spans__{side}") or "[]")
        except ValueError:
            spans = []
        hallucination[side] = {
            "flagged": post.get(f"halluc__{side}") == "1",
            "spans": spans if isinstance(spans, list) else [],
        }
    return {
        "scores": scores,
        "preference": post.get("preference", ""),
        "hallucination": hallucination,
        "rationale": post.get("rationale", ""),
        "time_on_task_ms": post.get("time_on_task_ms"),
    }


def rating_form_context(
    *, blind: BlindTask, data: Mapping[str, Any] | None = None, errors: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """Everything the form template loops over, with the rater's entries and errors filled back in."""
    data = data or {}
    errors = errors or {}
    scores = data.get("scores") or {}
    halluc = data.get("hallucination") or {}
    sides = []
    for side in blind.sides:
        scales = []
        for criterion in blind.rubric["criteria"]:
            chosen = str((scores.get(criterion["key"]) or {}).get(side.label, ""))
            scales.append(
                {
                    "key": criterion["key"],
                    "label": criterion["label"],
                    "help": criterion["help"],
                    "choices": bool(criterion.get("choices")),
                    "name": score_field(criterion["key"], side.label),
                    "error": (errors.get(f"scores.{criterion['key']}.{side.label}") or [""])[0],
                    "points": [
                        {
                            "value": point,
                            "anchor": criterion["anchors"].get(str(point), ""),
                            "checked": chosen == str(point),
                            "id": f"s-{criterion['key']}-{side.label}-{point}",
                        }
                        for point in range(criterion["min"], criterion["max"] + 1)
                    ],
                }
            )
        entry = halluc.get(side.label) or {}
        sides.append(
            {
                "label": side.label,
                "text": side.text,
                "scales": scales,
                "flagged": bool(entry.get("flagged")) if isinstance(entry, dict) else False,
                "spans_json": json.dumps(entry.get("spans", []) if isinstance(entry, dict) else []),
                "halluc_error": (errors.get(f"hallucination.{side.label}") or [""])[0],
            }
        )
    preference = data.get("preference", "")
    return {
        "blind": blind,
        "adversarial": blind.rubric.get("kind") == "adversarial",
        "rationale_label": blind.rubric.get("rationale_label") or "Rationale",
        "sides": sides,
        "preferences": [
            {"value": value, "label": label, "checked": preference == value, "key": key}
            for (value, label), key in zip(PREFERENCE_LABELS.items(), ("a", "b", "t", "x"), strict=True)
        ],
        "rationale": data.get("rationale", ""),
        "preference_error": (errors.get("preference") or [""])[0],
        "rationale_error": (errors.get("rationale") or [""])[0],
        "skip_reasons": SKIP_REASONS,
    }


SAMPLING = (
    ("all", "All cases"),
    ("random", "A random sample"),
    ("stratified", "A sample stratified by slice (each case's first tag)"),
)


class StudyCreateForm(forms.Form):
    """The study owner's form on a run: what `services.study_create_from_run` takes, in HTML terms."""

    name = forms.CharField(max_length=200, help_text="Raters see it: do not name an adapter.")
    baseline = forms.ModelChoiceField(queryset=Adapter.objects.none())
    candidates = forms.ModelMultipleChoiceField(queryset=Adapter.objects.none())
    pairing = forms.ChoiceField(
        choices=(
            ("baseline", "Each candidate against the baseline"),
            ("all_pairs", "Round robin: every pair"),
        ),
        initial="baseline",
    )
    sampling = forms.ChoiceField(choices=SAMPLING, initial="all")
    sample_size = forms.IntegerField(min_value=1, required=False, help_text="Cases, for a sample.")
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=2, help_text="Ratings per task (k).")
    lease_minutes = forms.IntegerField(min_value=1, max_value=24 * 60, initial=15)
    pool = forms.ModelChoiceField(
        queryset=RaterPool.objects.none(), required=False, empty_label="Every rater of the project"
    )
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    terms = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Raters accept them first."
    )
    allow_case_repeats = forms.BooleanField(
        required=False, help_text="Very small suites only: a rater may see the same output twice."
    )
    allow_missing = forms.BooleanField(
        required=False, label="Proceed without missing outputs", help_text="Otherwise wait for the run."
    )

    def __init__(self, *args: Any, run: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        adapters = Adapter.objects.filter(runs=run).order_by("name", "version")
        roles = dict(run.run_adapters.values_list("adapter_id", "role"))
        cast(forms.ModelChoiceField, self.fields["baseline"]).queryset = adapters
        cast(forms.ModelMultipleChoiceField, self.fields["candidates"]).queryset = adapters
        cast(forms.ModelChoiceField, self.fields["pool"]).queryset = RaterPool.objects.filter(
            project=run.project
        )
        self.fields["baseline"].initial = next((pk for pk, r in roles.items() if r == "baseline"), None)
        self.fields["candidates"].initial = [pk for pk, r in roles.items() if r == "candidate"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("baseline") is not None and data.get("baseline") in (data.get("candidates") or []):
            self.add_error("candidates", "The baseline cannot also be a candidate: choose another adapter.")
        if data.get("sampling") != "all" and not data.get("sample_size"):
            self.add_error("sample_size", "Give the number of cases to sample.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        sampled = data["sampling"] != "all"
        return {
            "name": data["name"],
            "baseline": data["baseline"],
            "candidates": list(data["candidates"]),
            "pairing": data["pairing"],
            "sample_size": data["sample_size"] if sampled else None,
            "stratify_by_tag": data["sampling"] == "stratified",
            "overlap": data["overlap"],
            "lease_seconds": data["lease_minutes"] * 60,
            "pool": data["pool"],
            "instructions": data["instructions"],
            "terms": data["terms"],
            "allow_case_repeats": data["allow_case_repeats"],
            "allow_missing": data["allow_missing"],
        }
