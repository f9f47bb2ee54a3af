from django.apps import AppConfig


class SuitesConfig(AppConfig):
    name = "evalhub.suites"
    label = "suites"

    def ready(self) -> None:
        from evalhub.suites import checks  # noqa: F401  (registers the system checks)
