"""The run tasks: a transient error is retried on a worker; when a task gives up, the run fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.exceptions import Retry
from django.db import OperationalError

from evalhub.celery import MAX_RETRIES, run_with_retry_policy
from evalhub.runs import services, tasks
from evalhub.runs.models import Output, RunStatus
from evalhub.runs.services import run_create, run_resume, run_start

# No transaction=True: the runs these tests start are enqueued on commit, and capturing the on_commit
# callbacks (executing them as the block ends) is all the commit they need.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_completion_hooks")]


def test_in_process_a_task_that_gives_up_fails_the_run_which_then_resumes(
    project, tiny, suite_version, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 2
    real = services.run_generate_chunk

    def flaky(*, run_id: int, chunk_index: int) -> None:
        if chunk_index == 1:
            raise OperationalError("database went away")
        real(run_id=run_id, chunk_index=chunk_index)

    monkeypatch.setattr(services, "run_generate_chunk", flaky)
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    with django_capture_on_commit_callbacks(execute=True):
        run = run_start(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "generate_chunk gave up: OperationalError('database went away')" in run.error

    monkeypatch.setattr(services, "run_generate_chunk", real)
    with django_capture_on_commit_callbacks(execute=True):
        run = run_resume(run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and Output.objects.filter(run=run).count() == run.total


class FakeTask:
    name = "evalhub.runs.tasks.generate_chunk"

    def __init__(self, retries: int) -> None:
        self.request = SimpleNamespace(is_eager=False, retries=retries)
        self.countdowns: list[int] = []

    def retry(self, *, exc: Exception, countdown: int) -> Retry:
        self.countdowns.append(countdown)
        return Retry(exc=exc)


def test_on_a_worker_a_transient_error_is_retried_with_backoff_then_fails_the_run(project, tiny, suite_version):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])

    def body() -> None:
        raise OperationalError("connection reset")

    task = FakeTask(retries=2)
    with pytest.raises(Retry):
        run_with_retry_policy(task, body, tasks._run_gave_up, {"run_id": run.pk})
    assert task.countdowns == [20]
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING

    with pytest.raises(OperationalError):
        run_with_retry_policy(FakeTask(retries=MAX_RETRIES), body, tasks._run_gave_up, {"run_id": run.pk})
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "generate_chunk gave up" in run.error and "connection reset" in run.error


def test_on_a_worker_an_unexpected_error_gives_up_at_once(project, tiny, suite_version):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]])

    def body() -> None:
        raise ValueError("a bug")

    task = FakeTask(retries=0)
    with pytest.raises(ValueError):
        run_with_retry_policy(task, body, tasks._run_gave_up, {"run_id": run.pk})
    assert task.countdowns == []
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "ValueError('a bug')" in run.error


def test_every_task_follows_the_one_policy_and_is_named_after_its_module():
    """Names must point at the module that defines the task (queued messages carry them), and every
    task of the project retries the same way."""
    import importlib

    from evalhub.celery import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.startswith(("evalhub.", "annotation."))}
    assert {"evalhub.runs.tasks.prepare_run", "evalhub.runs.tasks.generate_chunk",
            "evalhub.runs.tasks.score_text", "evalhub.runs.tasks.score_perplexity",
            "evalhub.suites.tasks.import_upload"} <= set(ours)
    for name, task in ours.items():
        module, _, attribute = name.rpartition(".")
        assert getattr(importlib.import_module(module), attribute).name == name
        assert task.acks_late and task.max_retries == MAX_RETRIES, name
