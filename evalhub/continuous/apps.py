from django.apps import AppConfig


class ContinuousConfig(AppConfig):
    """Evaluation recipes run on registration, re-evaluation schedules and notifications."""

    name = "evalhub.continuous"
    label = "continuous"
    verbose_name = "Continuous evaluation"

    def ready(self) -> None:
        from evalhub.catalog.signals import adapter_registered
        from evalhub.continuous import receivers

        adapter_registered.connect(receivers.adapter_registered_start_recipe, dispatch_uid="continuous-recipe")
