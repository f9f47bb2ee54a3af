"""Schedules and regressions: re-evaluate approved adapters on a suite's newest version on a crontab kept in
django-celery-beat's tables, and alert when a value leaves its interval against the adapter's last run.

A regression is a value of the new run whose 95% interval no longer holds the previous run's value, in the
worse direction: an automatic metric's mean (seeded bootstrap interval over the adapter's outputs; metrics
without a better direction are not judged), or the human win rate of a recipe verdict (Wilson interval of
the ties-as-half rate) against the previous verdict on the same adapter name.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evalhub.accounts.models import Project
from evalhub.audit.services import audit_record
from evalhub.catalog.models import Adapter, AdapterStatus
from evalhub.continuous.models import (
    Alert,
    AlertKind,
    Evaluation,
    EvaluationState,
    Event,
    Recipe,
    Schedule,
    Trigger,
)
from evalhub.errors import ValidationFailed
from evalhub.reports.models import Verdict
from evalhub.runs.models import MetricScore, Run, RunStatus
from evalhub.runs.services import run_create, run_start
from evalhub.suites.models import Suite, SuiteVersion
from metrics.registry import PERPLEXITY_METRIC, higher_is_better
from metrics.stats import mean_ci

log = logging.getLogger(__name__)

REEVALUATE_TASK = "evalhub.continuous.tasks.reevaluate"
_CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def check_crontab(expression: str) -> dict[str, str]:
    """Five crontab fields, each checked by python-crontab (a django-celery-beat dependency)."""
    from crontab import CronSlices

    parts = expression.split()
    if len(parts) != 5 or not CronSlices.is_valid(" ".join(parts)):
        raise ValidationFailed(
            f"{expression!r} is not five crontab fields (minute hour day month weekday).",
            fields={"crontab": ['For example "0 6 * * 1" (Mondays 06:00 UTC).']},
        )
    return dict(zip(_CRON_FIELDS, parts, strict=True))


def schedule_save(*, project: Project, suite: Suite, crontab: str, enabled: bool = True, actor: Any = None) -> Schedule:
    """Create or change the project's schedule for a suite and its beat entry (in the database)."""
    if suite.project_id != project.pk:
        raise ValidationFailed("The suite belongs to another project.", fields={"suite": ["Not in this project."]})
    fields = check_crontab(crontab)
    with transaction.atomic():
        cron, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **fields)
        schedule, _ = Schedule.objects.select_for_update().get_or_create(
            project=project, suite=suite, defaults={"crontab": crontab}
        )
        schedule.crontab, schedule.enabled = " ".join(fields.values()), enabled
        task = schedule.periodic_task or PeriodicTask(name=f"evalhub re-evaluation {project.slug}/{suite.name} #{suite.pk}")
        task.task = REEVALUATE_TASK
        task.crontab, task.interval = cron, None
        task.kwargs = json.dumps({"schedule_id": schedule.pk})
        task.enabled = enabled
        task.queue = "cpu"
        task.save()
        schedule.periodic_task = task
        schedule.save()
        audit_record(actor=actor, action="schedule.save", obj=schedule,
                     after={"suite": suite.name, "crontab": schedule.crontab, "enabled": enabled})
    return schedule


def schedule_delete(*, schedule: Schedule, actor: Any = None) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action="schedule.delete", obj=schedule, before={"suite": schedule.suite.name})
        if schedule.periodic_task is not None:
            schedule.periodic_task.delete()
        schedule.delete()


def reevaluate(*, schedule_id: int) -> list[Evaluation]:
    """A schedule's tick: run every approved adapter of the project on the suite's newest version, with the
    generation settings of the project's recipe.

    An adapter already evaluated on that version by a schedule is skipped (unique evaluation), so a tick
    delivered twice, or a week without a new version, starts nothing.
    """
    schedule = Schedule.objects.select_related("project", "suite").filter(pk=schedule_id, enabled=True).first()
    if schedule is None:
        return []
    version = SuiteVersion.objects.filter(suite=schedule.suite).order_by("-number").first()
    Schedule.objects.filter(pk=schedule.pk).update(last_run_at=timezone.now())
    if version is None:
        return []
    started = []
    # The project's recipe says how to generate; without one, the run defaults.
    recipe = Recipe.objects.filter(project=schedule.project).first()
    generation: dict[str, Any] = (
        {"backend": recipe.backend, "generation_config": recipe.generation_config,
         "samples_per_case": recipe.samples_per_case} if recipe else {}
    )
    approved = Adapter.objects.filter(project=schedule.project, status=AdapterStatus.APPROVED).select_related("base_model")
    for adapter in approved:
        try:
            with transaction.atomic():
                evaluation = Evaluation.objects.create(
                    project=schedule.project, adapter=adapter, suite_version=version, trigger=Trigger.SCHEDULE
                )
        except IntegrityError:
            continue
        try:
            with transaction.atomic():
                run = run_create(
                    project=schedule.project, suite_version=version, base_model=adapter.base_model,
                    adapters=[adapter], name=f"scheduled · {adapter.label} · {version}", **generation,
                )
                Evaluation.objects.filter(pk=evaluation.pk).update(run=run)
                audit_record(actor=None, action="evaluation.start", obj=evaluation,
                             after={"run": run.pk, "suite_version": str(version), "schedule": schedule.pk})
            run_start(run=run)
        except ValidationFailed as exc:
            Evaluation.objects.filter(pk=evaluation.pk).update(state=EvaluationState.FAILED, error=str(exc)[:5000])
        evaluation.refresh_from_db()
        started.append(evaluation)
    return started


# ---- regressions --------------------------------------------------------------------------------


def _worse(metric: str, current: float, previous: float) -> bool:
    if metric == PERPLEXITY_METRIC:
        return current > previous
    if higher_is_better(metric):
        return current < previous
    return False


def _previous_run(evaluation: Evaluation) -> Run | None:
    return (
        Run.objects.filter(run_adapters__adapter=evaluation.adapter, status=RunStatus.COMPLETED,
                           suite_version__suite_id=evaluation.suite_version.suite_id)
        .exclude(pk=evaluation.run_id or 0)
        .filter(finished_at__lte=evaluation.run.finished_at if evaluation.run and evaluation.run.finished_at else timezone.now())
        .filter(metric_scores__adapter=evaluation.adapter)
        .distinct()
        .order_by("-finished_at")
        .first()
    )


def _values(run_id: int, adapter_id: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    rows = MetricScore.objects.filter(run_id=run_id, adapter_id=adapter_id, value__isnull=False)
    for metric, value in rows.values_list("metric", "value"):
        if value is not None:
            out.setdefault(metric, []).append(float(value))
    return out


def evaluation_compare(*, evaluation_id: int) -> list[Alert]:
    """A scored scheduled evaluation against the adapter's previous run on the suite: one Alert per metric
    whose new interval leaves the previous mean behind on the worse side. Notifies a regression."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update(of=("self",)).select_related("run", "adapter", "suite_version", "project").get(pk=evaluation_id)
        if evaluation.state != EvaluationState.RUNNING or evaluation.run_id is None:
            return []
        run_id: int = evaluation.run_id
        previous = _previous_run(evaluation)
        alerts: list[Alert] = []
        if previous is not None:
            before = _values(previous.pk, evaluation.adapter_id)
            for metric, values in sorted(_values(run_id, evaluation.adapter_id).items()):
                if metric not in before:
                    continue
                now = mean_ci(values, resamples=2000)
                old = sum(before[metric]) / len(before[metric])
                if now.mean is None or now.ci_low is None or now.ci_high is None:
                    continue
                if not now.ci_low <= old <= now.ci_high and _worse(metric, now.mean, old):
                    alerts.append(Alert.objects.create(
                        evaluation=evaluation, previous_run=previous, kind=AlertKind.METRIC, metric=metric,
                        previous=old, current=now.mean, ci_low=now.ci_low, ci_high=now.ci_high,
                    ))
        evaluation.state = EvaluationState.SCORED
        evaluation.save(update_fields=["state", "updated_at"])
    if alerts:
        _notify_regression(evaluation, alerts, previous_run=previous.pk if previous else None)

    return alerts


def _notify_regression(evaluation: Evaluation, alerts: list[Alert], previous_run: int | None) -> None:
    from evalhub.continuous.notifications import notify

    audit_record(actor=None, action="evaluation.regression", obj=evaluation,
                 after={"alerts": [a.sentence for a in alerts]})
    notify(
        project=evaluation.project, event=Event.REGRESSION,
        subject=f"Regression: {evaluation.adapter.label} on {evaluation.suite_version}",
        data={"adapter": evaluation.adapter.label, "run": evaluation.run_id, "previous_run": previous_run,
              "alerts": [a.sentence for a in alerts]},
    )


def verdict_compare(*, evaluation_id: int) -> list[Alert]:
    """A recipe verdict with ratings against the previous verdict with ratings on the same adapter name: an
    Alert when the previous win rate lies above the new win rate's interval."""
    evaluation = Evaluation.objects.select_related("verdict", "adapter", "project").get(pk=evaluation_id)
    verdict = evaluation.verdict
    if verdict is None or verdict.study_id is None:
        return []
    previous = (
        Verdict.objects.filter(project_id=evaluation.project_id, candidate__name=evaluation.adapter.name,
                               study__isnull=False, frozen_at__lt=verdict.frozen_at)
        .order_by("-frozen_at")
        .first()
    )
    if previous is None:
        return []
    now = verdict.snapshot.get("report", {}).get("win_rate", {}).get("ties_as_half", {})
    old = previous.snapshot.get("report", {}).get("win_rate", {}).get("ties_as_half", {})
    if None in (now.get("rate"), now.get("ci_low"), now.get("ci_high"), old.get("rate")):
        return []
    if old["rate"] <= now["ci_high"]:
        return []
    alert, _ = Alert.objects.get_or_create(
        evaluation=evaluation, kind=AlertKind.WIN_RATE, metric="win_rate",
        defaults={"previous_run": previous.run, "previous": old["rate"], "current": now["rate"],
                  "ci_low": now["ci_low"], "ci_high": now["ci_high"]},
    )
    _notify_regression(evaluation, [alert], previous_run=previous.run_id)
    return [alert]
