from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "evalhub.accounts"
    label = "accounts"

    def ready(self) -> None:
        from evalhub.accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
