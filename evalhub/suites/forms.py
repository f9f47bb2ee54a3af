"""Forms of the suite pages: upload, column mapping, and the confirm step with the PII choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

from evalhub.suites.models import Origin, Split
from evalhub.suites.parsing import FORMATS
from evalhub.suites.validation import FIELD_HELP, FIELDS

FORMAT_CHOICES = [("", "Detect from the file name")] + [
    (
        f,
        {
            "csv": "CSV",
            "jsonl": "JSON Lines",
            "xlsx": "Excel (XLSX)",
            "promptfoo": "promptfoo YAML",
            "bundle": "promptfoo bundle (.zip, .tar.gz)",
        }[f],
    )
    for f in FORMATS
]
DELIMITER_CHOICES = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]
PII_CHOICES = [
    ("redact", "Redact: replace each finding with a typed placeholder such as <PERSON>"),
    ("reject", "Reject: import nothing; I will clean the file and upload it again"),
    ("keep", "Keep the text as it is (a justification is required and recorded)"),
]


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Suite file",
        help_text="CSV, JSONL, XLSX or promptfoo YAML, or a promptfoo bundle (.zip, .tar.gz: the config "
        "with the files it references).",
        allow_empty_file=True,
    )
    name = forms.CharField(
        label="Suite name",
        max_length=200,
        help_text="An existing suite's name makes its next version; a new name creates a suite.",
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False, label="Format")
    delimiter = forms.ChoiceField(
        choices=DELIMITER_CHOICES, required=False, initial=",", label="CSV delimiter"
    )
    sheet = forms.CharField(required=False, label="XLSX sheet", help_text="Empty: the first sheet.")
    input_var = forms.CharField(
        required=False,
        label="promptfoo input variable",
        help_text="Empty: the only var, or input/prompt/document.",
    )


class MappingForm(forms.Form):
    """One select per field, listing the file's columns."""

    def __init__(self, *args: Any, columns: list[str], mapping: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "— not used —")] + [(c, c) for c in columns]
        for fld in FIELDS:
            self.fields[fld] = forms.ChoiceField(
                choices=choices,
                required=False,
                initial=mapping.get(fld, ""),
                label=fld,
                help_text=FIELD_HELP[fld],
            )

    def mapping(self) -> dict[str, str]:
        return {fld: self.cleaned_data.get(fld) or "" for fld in FIELDS}


class ConfirmForm(forms.Form):
    pii_action = forms.ChoiceField(
        choices=PII_CHOICES,
        widget=forms.RadioSelect,
        label="Personal data found",
        error_messages={
            "required": "Choose what happens to the personal data found: nothing is preselected."
        },
    )  # No initial: the uploader must stop and choose (issue #18); a preselected Redact corrupted names.
    pii_justification = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Justification for keeping personal data",
    )
    data_source = forms.CharField(
        required=False, max_length=300, label="Data source", help_text="Where these cases come from."
    )
    consent_statement = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Consent statement",
        help_text="The consent under which the data may be used for evaluation.",
    )
    only_valid_rows = forms.BooleanField(
        required=False, label="Import only the valid rows (rows with problems are skipped)"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("pii_action") == "keep" and not (data.get("pii_justification") or "").strip():
            self.add_error("pii_justification", "Say why the personal data may be kept.")
        return data


class CaseFilterForm(forms.Form):
    v = forms.IntegerField(required=False, widget=forms.HiddenInput)
    q = forms.CharField(required=False, label="Search", help_text="Text in the id, input or reference.")
    tag = forms.CharField(required=False, label="Tag")
    origin = forms.ChoiceField(choices=[("", "Any"), *list(Origin.choices)], required=False, label="Origin")
    split = forms.ChoiceField(choices=[("", "Any"), *list(Split.choices)], required=False, label="Split")
    category = forms.CharField(required=False, label="Category")
    slice = forms.CharField(required=False, label="Slice", help_text="name or name:value")

    def __init__(
        self, *args: Any, tags: Sequence[str] = (), categories: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Offer the version's own tags and categories; a value typed in a URL still works.
        tag_value = self.data.get("tag", "") if self.is_bound else ""
        cat_value = self.data.get("category", "") if self.is_bound else ""
        tag_choices = sorted(set(tags) | ({tag_value} if tag_value else set()))
        cat_choices = sorted(set(categories) | ({cat_value} if cat_value else set()))
        self.fields["tag"] = forms.ChoiceField(
            choices=[("", "Any"), *((t, t) for t in tag_choices)], required=False, label="Tag"
        )
        self.fields["category"] = forms.ChoiceField(
            choices=[("", "Any"), *((c, c) for c in cat_choices)], required=False, label="Category"
        )
