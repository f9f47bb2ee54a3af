from django.apps import AppConfig


class SuitesConfig(AppConfig):
    name = "evalhub.suites"
    label = "suites"
