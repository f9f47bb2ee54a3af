from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "evalhub.accounts"
    label = "accounts"

    def ready(self) -> None:
        from evalhub.accounts import schema, signals  # noqa: F401  (OpenAPI auth extension; audit signals)
