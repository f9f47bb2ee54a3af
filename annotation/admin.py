"""Admin for rating studies. Ratings, assignments and consents are records, not editable here:
a changed rating would silently change a verdict, so the admin shows them read-only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from annotation.models import Assignment, Consent, RaterPool, Rating, Study, Task


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RaterPool)
class RaterPoolAdmin(admin.ModelAdmin[RaterPool]):
    list_display = ["name", "project"]
    list_filter = ["project"]
    filter_horizontal = ["members"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin[Study]):
    list_display = ["name", "project", "run", "status", "overlap", "lease_seconds", "gold_rate", "created_at"]
    list_filter = ["project", "status"]
    readonly_fields = ["public_id", "run", "baseline", "seed", "rubric", "created_by", "created_at"]
    fields = [
        "project",
        "name",
        "status",
        "pool",
        "overlap",
        "lease_seconds",
        "gold_rate",
        "instructions",
        "terms",
        "public_id",
        "run",
        "baseline",
        "seed",
        "rubric",
        "created_by",
        "created_at",
    ]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "study", "is_gold", "rating_count", "required_ratings"]
    list_filter = ["study", "is_gold"]
    list_select_related = ["study"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["task", "rater", "status", "leased_at", "expires_at", "finished_at"]
    list_filter = ["status", "study"]
    list_select_related = ["task", "rater"]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["task", "rater", "preference", "time_on_task_ms", "created_at"]
    list_filter = ["task__study", "preference"]
    list_select_related = ["task", "rater"]


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["study", "rater", "accepted_at"]
    list_filter = ["study"]
