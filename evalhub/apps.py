"""The project's own app: wires the Celery app into every Django process."""

from __future__ import annotations

from django.apps import AppConfig


class EvalhubConfig(AppConfig):
    name = "evalhub"
    label = "evalhub"
    verbose_name = "evalhub"

    def ready(self) -> None:
        # Loading the app here (not in evalhub/__init__.py) makes it the current app of every Django
        # process, so `.delay()` from a view uses the configured broker, without making the
        # Django-free `evalhub.generation` depend on Celery.
        from evalhub import celery  # noqa: F401
