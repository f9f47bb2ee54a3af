from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "evalhub.catalog"
    label = "catalog"
