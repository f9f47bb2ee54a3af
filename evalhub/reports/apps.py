from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "evalhub.reports"
    label = "reports"
