from django.contrib import admin

from evalhub.judging.models import Judgement


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    list_display = ("task", "judge_name", "judge_version", "order", "preference", "prob_a", "latency_ms")
    list_filter = ("judge_name", "order", "preference")
    readonly_fields = [f.name for f in Judgement._meta.fields]
