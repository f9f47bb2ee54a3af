from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "evalhub.runs"
    label = "runs"
