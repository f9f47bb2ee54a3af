from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "evalhub.ops"
    label = "ops"
    verbose_name = "Operations: health, readiness and metrics"
