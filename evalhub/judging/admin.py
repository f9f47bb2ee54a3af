from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from evalhub.errors import ValidationFailed
from evalhub.judging.endpoints import endpoint_save, endpoint_values
from evalhub.judging.models import JudgeEndpoint, Judgement


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    """Judgements are a record of what the judge said: staff may read them, never add or edit one."""

    list_display = ("task", "judge_name", "judge_version", "order", "preference", "prob_a", "latency_ms")
    list_filter = ("judge_name", "order", "preference")
    readonly_fields = [f.name for f in Judgement._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


ENDPOINT_FIELDS = [
    "name",
    "base_url",
    "model",
    "api",
    "timeout_seconds",
    "concurrency",
    "max_retries",
    "constrained",
]


class JudgeEndpointAdminForm(forms.ModelForm):
    """Checked by ``endpoint_values`` (the API's and the CLI's rules, errors on their fields). The key is
    write-only here too: an empty box keeps the stored key, and it is never shown."""

    new_api_key = forms.CharField(
        required=False, label="API key", widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the stored key.",
    )  # fmt: skip
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    class Meta:
        model = JudgeEndpoint
        fields = ["project", *ENDPOINT_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        fields = {k: data.get(k, getattr(self.instance, k)) for k in ENDPOINT_FIELDS}
        if data.get("clear_api_key"):
            fields["api_key"] = ""
        elif data.get("new_api_key"):
            fields["api_key"] = data["new_api_key"]
        try:
            self.endpoint_fields = endpoint_values(**fields)
        except ValidationFailed as exc:
            for field in exc.fields:
                self.add_error(
                    field if field in self.fields else "new_api_key" if field == "api_key" else None, str(exc)
                )
        return data


@admin.register(JudgeEndpoint)
class JudgeEndpointAdmin(admin.ModelAdmin):
    """Saved through ``endpoint_save`` (the same checks and audit as the API and the CLI); the key is
    never displayed."""

    form = JudgeEndpointAdminForm
    list_display = (
        "name",
        "project",
        "model",
        "base_url",
        "api",
        "key_set",
        "timeout_seconds",
        "concurrency",
    )
    list_filter = ("project", "api")
    search_fields = ("name", "model", "base_url")

    @admin.display(boolean=True, description="API key set")
    def key_set(self, obj: JudgeEndpoint) -> bool:
        return bool(obj.api_key)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("project", "name") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: JudgeEndpoint, form: Any, change: bool) -> None:
        saved = endpoint_save(project=obj.project, actor=request.user, **form.endpoint_fields)
        obj.pk = saved.pk
