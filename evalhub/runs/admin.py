"""Read-mostly admin for runs: status and counters at a glance, outputs and chunks for support."""

from django.contrib import admin

from evalhub.runs.models import Output, Run, RunAdapter, RunChunk, RunScoring


class RunAdapterInline(admin.TabularInline[RunAdapter, Run]):
    model = RunAdapter
    extra = 0
    readonly_fields = ["adapter", "role", "sanity"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = ["id", "name", "project", "status", "done", "total", "reused", "backend", "created_at"]
    list_filter = ["project", "status", "backend"]
    search_fields = ["name"]
    readonly_fields = [
        "config_hash",
        "generation_config",
        "total",
        "done",
        "reused",
        "output_tokens",
        "generation_seconds",
        "started_at",
        "finished_at",
        "error",
    ]
    inlines = [RunAdapterInline]


@admin.register(RunChunk)
class RunChunkAdmin(admin.ModelAdmin[RunChunk]):
    list_display = ["run", "index", "status", "size", "attempts", "leased_by", "leased_at", "finished_at"]
    list_filter = ["status"]


@admin.register(Output)
class OutputAdmin(admin.ModelAdmin[Output]):
    list_display = ["id", "run", "adapter", "case", "sample", "finish_reason", "output_tokens", "truncated"]
    list_filter = ["finish_reason", "truncated", "backend"]
    raw_id_fields = ["run", "adapter", "case", "reused_from"]


@admin.register(RunScoring)
class RunScoringAdmin(admin.ModelAdmin[RunScoring]):
    list_display = ["run", "kind", "status", "written", "started_at", "finished_at", "updated_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["run"]
