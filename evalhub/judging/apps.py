from django.apps import AppConfig


class JudgingConfig(AppConfig):
    name = "evalhub.judging"
    label = "judging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotation.signals import study_created
        from evalhub.judging import tasks

        study_created.connect(tasks.on_study_created, dispatch_uid="judging.judge_new_study")
