from django.contrib import admin

from evalhub.continuous.models import Alert, Delivery, Evaluation, Recipe, Schedule


@admin.register(Recipe)
class RecipeAdmin(admin.ModelAdmin[Recipe]):
    list_display = ["project", "enabled", "baseline_rule", "open_study", "gate_policy", "updated_at"]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin[Evaluation]):
    list_display = ["adapter", "suite_version", "trigger", "state", "created_at"]
    list_filter = ["project", "trigger", "state"]
    readonly_fields = ["run", "study", "verdict"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin[Schedule]):
    list_display = ["project", "suite", "crontab", "enabled", "last_run_at"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ["evaluation", "kind", "metric", "previous", "current", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = ["project", "event", "channel", "target", "status", "attempts", "created_at"]
    list_filter = ["project", "status", "event", "channel"]
