"""Handing out tasks: the one place that decides which task a rater gets next, under a lease.

A task is open while `rating_count + unexpired active leases < required_ratings`. Expired leases need
no sweeper: they simply stop counting, and their rows are marked `expired` lazily, when the task is
handed to someone else or their rater comes back. A rater never gets a task they submitted or skipped;
a rater whose own lease expired gets that task back first if it is still open (their half-read task is
where they left off). Every database runs these same ORM statements; on PostgreSQL the candidate rows
are taken with `FOR UPDATE SKIP LOCKED`, so concurrent raters never wait on each other's task.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Study, StudyStatus, Task
from annotation.selectors import rateable_studies
from evalhub.accounts.models import ApiToken
from evalhub.errors import Conflict

# How many locked-but-full candidates to step over before giving up.
_MAX_ATTEMPTS = 8
# Seconds to wait, one after the other, for open tasks that other raters' transactions hold locked.
_BUSY_PAUSES = (0.005, 0.01, 0.02, 0.04, 0.08)


def _live_leases(*, task: Any, now: datetime) -> QuerySet[Assignment]:
    """Leases that hold a place on `task` (an id or an OuterRef): active and not yet expired."""
    return Assignment.objects.filter(task=task, status=AssignmentStatus.ACTIVE, expires_at__gt=now)


def _leased_count(*, now: datetime) -> Coalesce:
    """The number of live leases of the outer task, as an annotation."""
    counted = _live_leases(task=OuterRef("pk"), now=now).order_by().values("task").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), Value(0))


def _candidates(*, study: Study, rater: Any, now: datetime, gold: bool) -> QuerySet[Task]:
    """Tasks of the study the rater has never had, in queue order; for non-gold ones, only those with
    room (the first condition matches the partial index task_open_queue, the second counts leases)."""
    had = Assignment.objects.filter(task=OuterRef("pk"), rater_id=rater.pk)
    stale = Assignment.objects.filter(
        task=OuterRef("pk"), status=AssignmentStatus.ACTIVE, expires_at__lte=now
    )
    tasks = Task.objects.filter(~Exists(had), study=study, is_gold=gold)
    if not gold:
        tasks = tasks.filter(rating_count__lt=F("required_ratings")).alias(leased=_leased_count(now=now))
        tasks = tasks.filter(rating_count__lt=F("required_ratings") - F("leased"))
    return tasks.annotate(stale=Exists(stale)).order_by("order_key")


def _lock_first(tasks: QuerySet[Task], *, skip: list[int]) -> Task | None:
    """The first task, row-locked on PostgreSQL; tasks other raters hold locked are skipped, not
    waited for."""
    tasks = tasks.exclude(pk__in=skip) if skip else tasks
    if connection.features.has_select_for_update_skip_locked:
        tasks = tasks.select_for_update(skip_locked=True, of=("self",))
    return tasks.only("pk", "required_ratings", "is_gold").first()


def task_has_room(*, task: Task, now: datetime, excluding: Any = None) -> bool:
    """Re-read capacity in a fresh statement, after the row lock: every earlier lease on this task has
    committed by now, so a snapshot taken before the lock cannot let the task be over-leased.
    Assumes the caller holds the task's row lock."""
    if task.is_gold:
        return True
    leases = _live_leases(task=OuterRef("pk"), now=now)
    if excluding is not None:
        leases = leases.exclude(rater=excluding)
    counted = leases.order_by().values("task").annotate(n=Count("pk")).values("n")
    row = (
        Task.objects.filter(pk=task.pk)
        .annotate(leased=Coalesce(Subquery(counted, output_field=IntegerField()), Value(0)))
        .values_list("rating_count", "required_ratings", "leased")
        .get()
    )
    return row[0] + row[2] < row[1]


def _leases_expire(*, task_id: int, now: datetime) -> None:
    """Mark the task's lapsed leases `expired` (lazily, now that the task is handed on). A late
    submitter may hold their assignment's row while waiting for this task's row, which we hold: their
    row is skipped rather than waited for (waiting would deadlock)."""
    lapsed = Assignment.objects.filter(task_id=task_id, status=AssignmentStatus.ACTIVE, expires_at__lte=now)
    if connection.features.has_select_for_update_skip_locked:
        lapsed = lapsed.select_for_update(skip_locked=True)
    ids = list(lapsed.values_list("pk", flat=True))
    Assignment.objects.filter(pk__in=ids).update(status=AssignmentStatus.EXPIRED, finished_at=now)


def _gold_due(*, study: Study, rater: Any) -> bool:
    """Whether this rater's next task should be a gold one: on average `gold_rate` of their tasks,
    at positions no rater can predict (seeded per study, rater and position, so a rerun is stable)."""
    if study.gold_rate <= 0:
        return False
    served = Assignment.objects.filter(study=study, rater=rater).count()
    rng = random.Random(f"{study.seed}:{study.pk}:{rater.pk}:{served}")
    return rng.random() < study.gold_rate


def _renew_own(*, assignment: Assignment, now: datetime, lease: timedelta, token: Any) -> Assignment | None:
    """Give the rater back the task whose lease lapsed, if it still has room; else mark it expired."""
    task = _lock_first(Task.objects.filter(pk=assignment.task_id), skip=[])
    if task is not None and task_has_room(task=task, now=now, excluding=assignment.rater_id):
        assignment.status, assignment.finished_at = AssignmentStatus.ACTIVE, None
        assignment.leased_at, assignment.expires_at, assignment.token = now, now + lease, token
        assignment.save(update_fields=["status", "finished_at", "leased_at", "expires_at", "token"])
        return assignment
    if assignment.status != AssignmentStatus.EXPIRED:
        assignment.status, assignment.finished_at = AssignmentStatus.EXPIRED, now
        assignment.save(update_fields=["status", "finished_at"])
    return None


def _take(
    *, study: Study, rater: Any, now: datetime, lease: timedelta, gold: bool, token: Any
) -> Assignment | None:
    """Lease the first open task nobody else holds locked, stepping over ones that filled up between
    the candidate's snapshot and its row lock. Assumes the caller's transaction."""
    skipped: list[int] = []
    candidates = _candidates(study=study, rater=rater, now=now, gold=gold)
    for _ in range(_MAX_ATTEMPTS):
        task = _lock_first(candidates, skip=skipped)
        if task is None:
            return None
        if task_has_room(task=task, now=now):
            if task.stale:  # type: ignore[attr-defined]
                _leases_expire(task_id=task.pk, now=now)
            return Assignment.objects.create(
                task=task, study=study, rater=rater, leased_at=now, expires_at=now + lease, token=token
            )
        skipped.append(task.pk)
    return None


def _take_waiting(
    *, study: Study, rater: Any, now: datetime, lease: timedelta, token: Any
) -> Assignment | None:
    """Nothing free, but at the end of a study the last open tasks may only be locked for a few
    milliseconds by other raters' leases in flight: look again before saying "done"."""
    if not connection.features.has_select_for_update_skip_locked:
        return None  # elsewhere writers are serialised: nothing is skipped, so nothing is in flight
    for pause in _BUSY_PAUSES:
        if not _candidates(study=study, rater=rater, now=now, gold=False).exists():
            return None
        time.sleep(pause)
        with transaction.atomic():
            assignment = _take(study=study, rater=rater, now=now, lease=lease, gold=False, token=token)
        if assignment is not None:
            return assignment
    return None


def task_assign_next(
    *, study: Study, rater: Any, now: datetime | None = None, auth: Any = None
) -> Assignment | None:
    """Lease the rater's next task in the study and return the Assignment, or None when nothing is left.

    Assumes the caller checked the rater may rate this study (selectors.study_for_rater). `auth` is
    the request's API token, if any: the lease remembers it, so revoking the token releases the lease.
    Calling it again while a lease is live returns the same assignment.
    """
    if study.status != StudyStatus.OPEN:
        raise Conflict("This study is not open for rating at the moment.")
    now = now or timezone.now()
    lease = timedelta(seconds=study.lease_seconds)
    token = auth if isinstance(auth, ApiToken) else None
    # The rater's latest lease: still live, it is returned as is; lapsed (whether or not another
    # rater's lease already marked it expired), the rater gets that task back if it has room.
    own = latest_assignment(study=study, rater=rater)
    if own is not None and own.status == AssignmentStatus.ACTIVE and own.expires_at > now:
        return own
    with transaction.atomic():
        if own is not None and own.status in (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED):
            renewed = _renew_own(assignment=own, now=now, lease=lease, token=token)
            if renewed is not None:
                return renewed
        for gold in (True, False) if _gold_due(study=study, rater=rater) else (False,):
            assignment = _take(study=study, rater=rater, now=now, lease=lease, gold=gold, token=token)
            if assignment is not None:
                return assignment
    return _take_waiting(study=study, rater=rater, now=now, lease=lease, token=token)


def latest_assignment(*, study: Study, rater: Any) -> Assignment | None:
    """The rater's most recently leased assignment in the study, whatever its status."""
    return Assignment.objects.filter(rater=rater, study=study).order_by("-leased_at").first()


def assignment_for_update(
    *, rater: Any, public_id: str, study: Study | None = None, auth: Any = None, lock: bool = True
) -> Assignment | None:
    """The rater's own assignment for a task, row-locked, with its task and study, if the rater may
    still rate that study (selectors.rateable_studies, read here, on every submit and skip: a removed
    rater or an out-of-scope token finds nothing); None otherwise, as for a task they were never given.
    Assumes the caller's transaction when `lock`."""
    found = Assignment.objects.filter(
        rater_id=rater.pk, task__public_id=public_id, study__in=rateable_studies(rater=rater, auth=auth)
    ).select_related("task", "study")
    if study is not None:
        found = found.filter(study=study)
    if lock and connection.features.has_select_for_update:
        found = found.select_for_update(of=("self",))
    return found.first()


def leases_release(*, leases: QuerySet[Assignment], now: datetime | None = None) -> int:
    """End these leases now (a removed rater's, a revoked token's): their tasks go back to the queue
    at once, and a submit on them is refused (the rater's access is checked again) or, for a rater who
    still has access, treated as late. Returns how many were live."""
    now = now or timezone.now()
    return leases.filter(status=AssignmentStatus.ACTIVE, expires_at__gt=now).update(
        status=AssignmentStatus.EXPIRED, expires_at=now, finished_at=now
    )
