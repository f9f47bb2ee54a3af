"""Schedules in the database (django-celery-beat) and regression alerts against the last run."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask

from evalhub.catalog.services import adapter_set_status
from evalhub.continuous.models import Alert, Evaluation, EvaluationState
from evalhub.continuous.recipes import recipe_save
from evalhub.continuous.schedules import reevaluate, schedule_save
from evalhub.errors import ValidationFailed
from evalhub.runs.models import Output
from evalhub.suites.models import Case
from tests.continuous.conftest import make_suite_version, payload, words

pytestmark = pytest.mark.django_db


def test_a_schedule_is_a_periodic_task_in_the_database(project, suite_version):
    schedule = schedule_save(project=project, suite=suite_version.suite, crontab="0 6 * * 1")
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "evalhub.continuous.tasks.reevaluate"
    assert json.loads(task.kwargs) == {"schedule_id": schedule.pk}
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "6", "1")
    schedule_save(project=project, suite=suite_version.suite, crontab="30 2 * * *", enabled=False)
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("30", "2", False)
    assert PeriodicTask.objects.filter(task="evalhub.continuous.tasks.reevaluate").count() == 1


@pytest.mark.parametrize("crontab", ["every monday", "0 6 * *", "61 * * * *", "0 25 * * *"])
def test_a_bad_crontab_is_refused(project, suite_version, crontab):
    with pytest.raises(ValidationFailed) as refused:
        schedule_save(project=project, suite=suite_version.suite, crontab=crontab)
    assert "crontab" in refused.value.fields
    assert not PeriodicTask.objects.filter(task="evalhub.continuous.tasks.reevaluate").exists()


# Transactional: the scheduler closes the database connection when it loads, as beat does between ticks.
@pytest.mark.django_db(transaction=True)
def test_beat_keeps_the_settings_entries_next_to_the_database_schedules(project, suite_version):
    from django_celery_beat.schedulers import DatabaseScheduler

    from evalhub.celery import app

    # Every minute: the scheduler loads only crontabs due around the current hour.
    schedule_save(project=project, suite=suite_version.suite, crontab="* * * * *")
    scheduler = DatabaseScheduler(app=app, lazy=False)
    names = set(scheduler.schedule)
    assert {"runs-watchdog", "continuous-watch-folder", "continuous-finish-studies"} <= names
    assert any(name.startswith("evalhub re-evaluation") for name in names)


def _with_references(project, inputs, references, number):
    version = make_suite_version(project, inputs, number=number)
    for case, reference in zip(Case.objects.filter(version=version).order_by("position"), references, strict=True):
        Case.objects.filter(pk=case.pk).update(reference=reference)
    return version


def test_reevaluation_runs_approved_adapters_on_the_newest_version_and_alerts_on_a_regression(
    project, tiny, notified, endpoint, auto_policy, settings, django_capture_on_commit_callbacks
):
    settings.EVALHUB_SCORE_ON_COMPLETE = True
    adapter_set_status(adapter=tiny["alpha"], status="approved")
    inputs = [words(i * 5, 10 + i) for i in range(5)]
    first = make_suite_version(project, inputs, number=1)
    recipe_save(project=project, suites=["tiny-suite"], baseline_rule="parent", gate_policy=auto_policy,
                generation_config={"max_new_tokens": 8})
    schedule = schedule_save(project=project, suite=first.suite, crontab="0 6 * * 1")
    with django_capture_on_commit_callbacks(execute=True):
        (one,) = reevaluate(schedule_id=schedule.pk)
    one.refresh_from_db()
    assert one.state == EvaluationState.SCORED and one.run.suite_version == first
    assert not Alert.objects.exists()
    # A tick with no new version starts nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert reevaluate(schedule_id=schedule.pk) == []

    # Version 2's references are the adapter's own outputs (every metric high); version 3's are unrelated.
    outputs = dict(Output.objects.filter(run=one.run).values_list("case__position", "text"))
    _with_references(project, inputs, [outputs[i] for i in range(5)], number=2)
    with django_capture_on_commit_callbacks(execute=True):
        (two,) = reevaluate(schedule_id=schedule.pk)
    assert not Alert.objects.filter(evaluation=two).exists()
    _with_references(project, inputs, [f"zz{i} unrelated words" for i in range(5)], number=3)
    with django_capture_on_commit_callbacks(execute=True):
        (three,) = reevaluate(schedule_id=schedule.pk)
    alerts = {a.metric: a for a in Alert.objects.filter(evaluation=three)}
    assert "rougeL" in alerts
    assert alerts["rougeL"].previous > alerts["rougeL"].ci_high
    two.refresh_from_db()
    assert alerts["rougeL"].previous_run == two.run
    regressions = [payload(r) for r in endpoint.received if payload(r)["event"] == "regression"]
    assert len(regressions) == 1 and regressions[0]["data"]["run"] == three.run_id
    assert Evaluation.objects.filter(trigger="schedule").count() == 3
