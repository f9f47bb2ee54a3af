"""The watchdog: a running run whose work stopped moving gets that work sent again, with a visible reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from evalhub.runs.models import ChunkStatus, Output, Run, RunChunk, RunStatus
from evalhub.runs.services import run_create, run_start
from evalhub.runs.tasks import heal_runs
from evalhub.runs.watchdog import lease_seconds, runs_heal


@pytest.fixture(autouse=True)
def small_chunks(settings):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 4
    settings.EVALHUB_CHUNK_LEASE_SECONDS = 600


def completed_run(project, tiny, version) -> Run:
    run = run_create(project=project, suite_version=version, base_model=tiny["base"], adapters=[tiny["alpha"]],
                     generation_config={"max_new_tokens": 4})
    return run_start(run=run)


def stall(run: Run, index: int, *, ago: timedelta, worker: str = "gpu-7:4242") -> RunChunk:
    """As if the worker of chunk `index` had been killed after its first output: the run still running,
    the chunk leased to the dead worker, its other outputs missing and its message gone."""
    chunk = RunChunk.objects.get(run=run, index=index)
    Output.objects.filter(run=run, case_id__in=chunk.case_ids[1:]).delete()
    then = timezone.now() - ago
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=then, finished_at=None)
    RunChunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.RUNNING, leased_at=then, leased_by=worker, attempts=1
    )
    return chunk


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_completion_hooks")
def test_a_chunk_whose_lease_expired_without_progress_is_sent_again_and_the_run_completes(
    project, tiny, suite_version, settings
):
    settings.EVALHUB_GENERATION_CHUNK_SIZE = 2  # two cases a chunk: one survives the kill
    run = completed_run(project, tiny, suite_version)
    before = sorted(Output.objects.filter(run=run).values_list("adapter_id", "case_id", "sample"))
    chunk = stall(run, 1, ago=timedelta(seconds=2 * lease_seconds()))

    # The output saved just before the kill is recent: the chunk was making progress, its lease holds.
    assert runs_heal().resent == {}
    assert RunChunk.objects.get(pk=chunk.pk).lease_expiries == 0

    # A lease later with no new output, the watchdog sends the chunk again (run in process here).
    Output.objects.filter(run=run).update(created_at=timezone.now() - timedelta(seconds=2 * lease_seconds()))
    report = runs_heal()

    assert report.resent == {run.pk: [1]} and report.lease_expiries == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert sorted(Output.objects.filter(run=run).values_list("adapter_id", "case_id", "sample")) == before
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.DONE and chunk.lease_expiries == 1
    assert "lease of chunk 1 expired" in run.watchdog_note and "gpu-7:4242" in run.watchdog_note


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_completion_hooks")
def test_the_run_page_says_why_the_watchdog_sent_work_again(project, tiny, suite_version, engineer):
    run = completed_run(project, tiny, suite_version)
    stall(run, 0, ago=timedelta(seconds=2 * lease_seconds()), worker="gpu-9:17")
    Output.objects.filter(run=run).update(created_at=timezone.now() - timedelta(seconds=2 * lease_seconds()))
    assert heal_runs() == 1  # the beat task

    client = Client()
    client.force_login(engineer)
    page = client.get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert 'id="run-watchdog"' in page and "gpu-9:17" in page and "sent them again" in page
    api = client.get(f"/api/v1/runs/{run.pk}/").json()
    assert "gpu-9:17" in api["watchdog_note"] and api["watchdog_at"]


def test_a_run_whose_preparation_was_lost_is_prepared_again_once_per_lease(
    project, tiny, suite_version, django_capture_on_commit_callbacks
):
    # In a test transaction the enqueue after commit never runs: as if the broker lost the message.
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    run = run_start(run=run)
    assert run.status == RunStatus.RUNNING and not run.chunks.exists()
    early = timezone.now() + timedelta(seconds=lease_seconds() - 5)
    assert runs_heal(now=early).resent == {}  # within its lease: left alone

    later = timezone.now() + timedelta(seconds=lease_seconds() + 5)
    with django_capture_on_commit_callbacks() as sent:
        assert runs_heal(now=later).resent == {run.pk: []}
    assert len(sent) == 2  # the preparation sent again, and the stall notified (evalhub.runs.hooks)
    run.refresh_from_db()
    assert "not prepared" in run.watchdog_note

    # The same tick again (two beat workers, a redelivered tick): nothing is sent twice.
    with django_capture_on_commit_callbacks() as sent_again:
        assert runs_heal(now=later).resent == {}
    assert sent_again == []


def test_finished_and_cancelled_runs_are_left_alone(project, tiny, suite_version):
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, started_at=timezone.now() - timedelta(days=1))
    assert runs_heal().resent == {}
