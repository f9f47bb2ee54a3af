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
from annotation.models import RaterPool, StudyRouting
from annotation.rubric import PREFERENCE_LABELS, rubric_normalise
from annotation.services import DEFAULT_SINGLE_OUTPUT_CATEGORIES
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.errors import DomainError
from evalhub.suites.models import Case

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


# The rubric templates a study owner picks from (annotation.rubric holds the rubrics themselves).
RUBRIC_CHOICES = (
    (
        "summary_pairwise",
        "Summaries side by side (accuracy, completeness, conciseness); single-output cases alone",
    ),
    ("adversarial_single", "Adversarial cases only, each output alone: was the expected behaviour met?"),
    ("custom", "Custom criteria with anchors (JSON below)"),
)
CUSTOM_RUBRIC_EXAMPLE = """{"criteria": [{"key": "clarity", "label": "Clarity", "min": 1, "max": 5,
  "help": "Can a busy reader follow it?",
  "anchors": {"1": "Confusing", "3": "Clear with effort", "5": "Clear at a glance"}}],
 "preference": true, "hallucination": true, "rationale": "optional"}"""


def _gold_lines(text: str) -> list[dict[str, str]]:
    """`case-key answer` per line (answer: baseline, candidate, tie or both_bad) as the service's gold specs."""
    specs: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise forms.ValidationError(
                f"Line {number}: write the case key and the answer, for example “c-12 candidate”."
            )
        specs.append({"case": parts[0], "preference": parts[1]})
    return specs


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
    rubric_template = forms.ChoiceField(choices=RUBRIC_CHOICES, initial="summary_pairwise", label="Rubric")
    rubric_custom = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": CUSTOM_RUBRIC_EXAMPLE}),
        required=False,
        label="Custom criteria",
        help_text="For the custom rubric: criteria with a scale and an anchor text per point (JSON).",
    )
    single_categories = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Cases rated alone",
        help_text="Cases of these categories are single-output tasks (one per adapter), rated on their expected behaviour.",
    )
    gold = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "c-12 candidate\nc-40 baseline"}),
        required=False,
        label="Gold tasks",
        help_text="One per line: a case key and the known answer (baseline, candidate, tie or both_bad).",
    )
    gold_rate = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0,
        required=False,
        label="Gold rate",
        help_text="Share of each rater's tasks that are gold (0 to 1).",
    )
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
    judge = forms.ChoiceField(
        choices=(),
        required=False,
        label="Judge",
        help_text="A model or adapter of the catalogue that rates every pair in both orders. Raters never see its answers; "
        "the report measures it against them.",
    )
    routing = forms.ChoiceField(
        choices=StudyRouting.choices,
        initial=StudyRouting.RANDOM,
        required=False,
        label="Order of the pairs",
        help_text="Uncertainty-first needs a judge: experts get first the pairs it is least sure of, plus a random audit share.",
    )
    audit_share = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.2,
        required=False,
        label="Audit share",
        help_text="Under uncertainty-first: the share of the order drawn uniformly at random (above 0, up to 1).",
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
        categories = sorted(
            set(
                Case.objects.filter(version=run.suite_version_id)
                .exclude(category="")
                .values_list("category", flat=True)
            )
        )
        single = cast(forms.MultipleChoiceField, self.fields["single_categories"])
        single.choices = [(c, c) for c in categories]
        single.initial = [c for c in categories if c in DEFAULT_SINGLE_OUTPUT_CATEGORIES]
        if not categories:
            single.help_text = "No case of this run's suite has a category: every case is rated as a pair."
        judge = cast(forms.ChoiceField, self.fields["judge"])
        judge.choices = [("", "No judge")]
        judge.choices += [
            (f"base:{m.pk}", f"{m.name} (base model)")
            for m in BaseModel.objects.filter(project=run.project).order_by("name")
        ]
        judge.choices += [
            (f"adapter:{a.pk}", f"{a.label} (adapter on {a.base_model.name})")
            for a in Adapter.objects.filter(project=run.project)
            .select_related("base_model")
            .order_by("name", "version")
        ]
        from evalhub.judging.models import JudgeEndpoint

        judge.choices += [
            (f"endpoint:{e.pk}", f"{e.name} (HTTP judge, {e.model})")
            for e in JudgeEndpoint.objects.filter(project=run.project).order_by("name")
        ]
        self.fields["baseline"].initial = next((pk for pk, r in roles.items() if r == "baseline"), None)
        self.fields["candidates"].initial = [pk for pk, r in roles.items() if r == "candidate"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("sampling") != "all" and not data.get("sample_size"):
            self.add_error("sample_size", "Give the number of cases to sample.")
        template = data.get("rubric_template")
        if template == "custom":
            self._custom_rubric(data)
        if template == "adversarial_single" and not data.get("single_categories"):
            self.add_error("single_categories", "Choose the categories of the adversarial cases to rate.")
        try:
            data["gold_tasks"] = _gold_lines(data.get("gold") or "")
        except forms.ValidationError as exc:
            self.add_error("gold", exc)
        return data

    def _custom_rubric(self, data: dict[str, Any]) -> None:
        try:
            raw = json.loads(data.get("rubric_custom") or "")
        except ValueError:
            self.add_error("rubric_custom", "Write the criteria as JSON (see the example in the box).")
            return
        try:
            # The rubric's one check (annotation.rubric), run here so its message lands on this field.
            data["rubric"] = rubric_normalise(raw)
        except DomainError as exc:
            self.add_error("rubric_custom", str(exc))

    def _rubric(self) -> dict[str, Any] | None:
        template = self.cleaned_data["rubric_template"]
        if template == "custom":
            return cast(dict[str, Any], self.cleaned_data["rubric"])
        if template == "adversarial_single":
            return {"kind": "adversarial"}  # annotation.rubric fills in the adversarial template
        return None

    def _judge(self) -> dict[str, Any]:
        kind, _, pk = (self.cleaned_data.get("judge") or "").partition(":")
        if kind == "adapter":
            return {"judge_adapter": Adapter.objects.get(pk=int(pk))}
        if kind == "base":
            return {"judge_base_model": BaseModel.objects.get(pk=int(pk))}
        if kind == "endpoint":
            from evalhub.judging.models import JudgeEndpoint

            return {"judge_endpoint": JudgeEndpoint.objects.get(pk=int(pk))}
        return {}

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        sampled = data["sampling"] != "all"
        return {
            **self._judge(),
            "routing": data.get("routing") or StudyRouting.RANDOM,
            "audit_share": 0.2 if data.get("audit_share") is None else data["audit_share"],
            "name": data["name"],
            "baseline": data["baseline"],
            "candidates": list(data["candidates"]),
            "pairing": data["pairing"],
            "sample_size": data["sample_size"] if sampled else None,
            "stratify_by_tag": data["sampling"] == "stratified",
            "overlap": data["overlap"],
            "lease_seconds": data["lease_minutes"] * 60,
            "pool": data["pool"],
            "rubric": self._rubric(),
            "single_output_categories": list(data["single_categories"]),
            "categories": list(data["single_categories"])
            if data["rubric_template"] == "adversarial_single"
            else None,
            "gold_tasks": data["gold_tasks"],
            "gold_rate": data["gold_rate"] or 0.0,
            "instructions": data["instructions"],
            "terms": data["terms"],
            "allow_case_repeats": data["allow_case_repeats"],
            "allow_missing": data["allow_missing"],
        }
