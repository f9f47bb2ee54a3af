"""Handing out tasks: the one place that decides which task a rater gets next, under a lease.

A task is open while `rating_count + unexpired active leases < required_ratings`. Expired leases need
no sweeper: they simply stop counting, and their rows are marked `expired` lazily, when their rater
comes back. A rater never gets a task they submitted or skipped; a rater whose own lease expired gets
that task back first if it is still open (their half-read task is where they left off).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Study, StudyStatus, Task
from evalhub.errors import Conflict

# How many locked-but-full candidates to step over before giving up (each is one round trip).
_MAX_ATTEMPTS = 8


def active_leases(*, now: datetime) -> Coalesce:
    """Number of unexpired active leases on the outer task, as a subquery expression."""
    leases = (
        Assignment.objects.filter(task=OuterRef("pk"), status=AssignmentStatus.ACTIVE, expires_at__gt=now)
        .order_by()
        .values("task")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(leases, output_field=IntegerField()), Value(0))


def _open_tasks(*, study: Study, rater: Any, now: datetime, gold: bool) -> QuerySet[Task]:
    seen = Assignment.objects.filter(task=OuterRef("pk"), rater=rater)
    tasks = Task.objects.filter(study=study, is_gold=gold).filter(~Exists(seen))
    if not gold:
        tasks = tasks.alias(leased=active_leases(now=now)).filter(
            rating_count__lt=F("required_ratings") - F("leased")
        )
    return tasks.order_by("order_key")


def _lock_first(tasks: QuerySet[Task], *, skip: list[int]) -> Task | None:
    tasks = tasks.exclude(pk__in=skip) if skip else tasks
    if connection.features.has_select_for_update_skip_locked:
        tasks = tasks.select_for_update(skip_locked=True, of=("self",))
    return tasks.only("pk", "required_ratings", "is_gold").first()


def task_has_room(*, task: Task, now: datetime, excluding: Any = None) -> bool:
    """Re-read capacity in a fresh statement, after the row lock: every earlier lease on this task has
    committed by now, so a snapshot taken before the lock cannot let the task be over-leased."""
    if task.is_gold:
        return True
    leases = Assignment.objects.filter(task=task, status=AssignmentStatus.ACTIVE, expires_at__gt=now)
    if excluding is not None:
        leases = leases.exclude(rater=excluding)
    row = (
        Task.objects.filter(pk=task.pk)
        .annotate(
            leased=Coalesce(
                Subquery(
                    leases.order_by().values("task").annotate(n=Count("pk")).values("n"),
                    output_field=IntegerField(),
                ),
                Value(0),
            )
        )
        .values_list("rating_count", "required_ratings", "leased")
        .get()
    )
    return row[0] + row[2] < row[1]


def _gold_due(*, study: Study, rater: Any) -> bool:
    """Whether this rater's next task should be a gold one: on average `gold_rate` of their tasks,
    at positions no rater can predict (seeded per study, rater and position, so a rerun is stable)."""
    if study.gold_rate <= 0:
        return False
    served = Assignment.objects.filter(study=study, rater=rater).count()
    rng = random.Random(f"{study.seed}:{study.pk}:{rater.pk}:{served}")
    return rng.random() < study.gold_rate


def _renew_own(*, assignment: Assignment, now: datetime, lease: timedelta) -> Assignment | None:
    task = _lock_first(Task.objects.filter(pk=assignment.task_id), skip=[])
    if task is not None and task_has_room(task=task, now=now, excluding=assignment.rater_id):
        assignment.leased_at, assignment.expires_at = now, now + lease
        assignment.save(update_fields=["leased_at", "expires_at"])
        return assignment
    assignment.status, assignment.finished_at = AssignmentStatus.EXPIRED, now
    assignment.save(update_fields=["status", "finished_at"])
    return None


def task_assign_next(*, study: Study, rater: Any, now: datetime | None = None) -> Assignment | None:
    """Lease the rater's next task in the study and return the Assignment, or None when nothing is left.

    Assumes the caller checked the rater may rate this study (see selectors.rater_check_access).
    Atomic: on PostgreSQL candidate rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so
    concurrent raters never wait on each other's task; on SQLite the transaction serialises writers.
    Calling it again while a lease is live returns the same assignment.
    """
    if study.status != StudyStatus.OPEN:
        raise Conflict("This study is not open for rating at the moment.")
    now = now or timezone.now()
    lease = timedelta(seconds=study.lease_seconds)
    with transaction.atomic():
        own = (
            Assignment.objects.filter(rater=rater, study=study, status=AssignmentStatus.ACTIVE)
            .order_by("-leased_at")
            .first()
        )
        if own is not None:
            if own.expires_at > now:
                return own
            renewed = _renew_own(assignment=own, now=now, lease=lease)
            if renewed is not None:
                return renewed

        for gold in (True, False) if _gold_due(study=study, rater=rater) else (False,):
            candidates = _open_tasks(study=study, rater=rater, now=now, gold=gold)
            skipped: list[int] = []
            for _ in range(_MAX_ATTEMPTS):
                task = _lock_first(candidates, skip=skipped)
                if task is None:
                    break
                if task_has_room(task=task, now=now):
                    return Assignment.objects.create(
                        task=task, study=study, rater=rater, leased_at=now, expires_at=now + lease
                    )
                skipped.append(task.pk)
    return None


def assignment_for_update(*, study: Study | None, rater: Any, public_id: str) -> Assignment | None:
    """The rater's own assignment for a task, row-locked; None for a task they were never given."""
    rows = Assignment.objects.select_for_update(of=("self",)).select_related("task", "study")
    rows = rows.filter(rater=rater, task__public_id=public_id)
    if study is not None:
        rows = rows.filter(study=study)
    return rows.first()
