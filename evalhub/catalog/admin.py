from django.contrib import admin

from evalhub.catalog.models import Adapter, BaseModel


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin[BaseModel]):
    list_display = ["name", "project", "architecture", "dtype", "parameters", "created_at"]
    list_filter = ["project"]
    readonly_fields = ["weights_hash", "config"]


@admin.register(Adapter)
class AdapterAdmin(admin.ModelAdmin[Adapter]):
    list_display = [
        "name",
        "version",
        "project",
        "base_model",
        "stage",
        "parent",
        "status",
        "synthetic_share",
    ]
    list_filter = ["project", "status", "stage"]
    search_fields = ["name", "version", "data_source"]
    readonly_fields = ["weights_hash", "peft_config"]
