from django.contrib import admin

from evalhub.suites.models import Case, Suite, SuiteVersion, Upload


@admin.register(Suite)
class SuiteAdmin(admin.ModelAdmin[Suite]):
    list_display = ["name", "project", "data_source", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "data_source"]


@admin.register(SuiteVersion)
class SuiteVersionAdmin(admin.ModelAdmin[SuiteVersion]):
    """Read-only: versions change only through uploads, and never once a run has used them."""

    list_display = ["suite", "number", "case_count", "pii_decision", "locked_at", "created_at"]
    list_filter = ["pii_decision", "suite__project"]
    readonly_fields = [f.name for f in SuiteVersion._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin[Case]):
    list_display = ["key", "version", "origin", "split", "category"]
    list_filter = ["origin", "split", "category"]
    search_fields = ["key", "input"]
    readonly_fields = [f.name for f in Case._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin[Upload]):
    list_display = ["filename", "suite_name", "project", "status", "created_at"]
    list_filter = ["status", "project"]
    readonly_fields = [f.name for f in Upload._meta.fields if f.name != "report"]
    exclude = ["report"]  # it may hold personal data found in the file
