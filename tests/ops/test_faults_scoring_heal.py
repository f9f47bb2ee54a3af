"""The watchdog sends again a scoring kind whose message was lost (queued for a lease, taken by no worker);
a kind queued a moment ago, or running on a worker, is left alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from evalhub.runs.models import RunScoring, ScoringKind, ScoringStatus
from evalhub.runs.watchdog import lease_seconds, runs_heal
from tests.factories import RunFactory


def test_a_scoring_kind_queued_for_a_lease_is_sent_again_and_others_are_left_alone(project: Any) -> None:
    lost_run, fresh_run, running_run = (RunFactory(suite_version__suite__project=project) for _ in range(3))
    long_ago = timezone.now() - timedelta(seconds=lease_seconds() + 60)
    for run, status in ((lost_run, ScoringStatus.QUEUED), (fresh_run, ScoringStatus.QUEUED),
                        (running_run, ScoringStatus.RUNNING)):
        RunScoring.objects.create(run=run, kind=ScoringKind.TEXT, status=status)
    RunScoring.objects.exclude(run=fresh_run).update(updated_at=long_ago)

    report = runs_heal()

    assert report.rescored == [(lost_run.pk, ScoringKind.TEXT)]
    # No broker here: the task ran in process, so the lost kind is scored now (the run has no outputs).
    assert RunScoring.objects.get(run=lost_run).status == ScoringStatus.DONE
    assert RunScoring.objects.get(run=fresh_run).status == ScoringStatus.QUEUED
    assert RunScoring.objects.get(run=running_run).status == ScoringStatus.RUNNING
    assert runs_heal().rescored == []  # nothing twice
