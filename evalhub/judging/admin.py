from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from evalhub.judging.models import Judgement


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
