"""Handing out tasks: the one place that decides which task a rater gets next, under a lease.

A task is open while `rating_count + unexpired active leases < required_ratings`. Expired leases need
no sweeper: they simply stop counting, and their rows are marked `expired` lazily, when the task is
handed to someone else or their rater comes back. A rater never gets a task they submitted or skipped; a rater whose own lease expired gets
that task back first if it is still open (their half-read task is where they left off).
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import Count, IntegerField, Model, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.blinding import BLIND_COLUMNS, blind_from_row, blind_joins
from annotation.models import Assignment, AssignmentStatus, Study, StudyStatus, Task
from evalhub.errors import Conflict

M = TypeVar("M", bound=Model)

# How many locked-but-full candidates to step over before giving up (each is one round trip).
_MAX_ATTEMPTS = 8
# Seconds to wait, one after the other, for open tasks that other raters' transactions hold locked.
_BUSY_PAUSES = (0.005, 0.01, 0.02, 0.04, 0.08)


# The hot path is two statements in raw SQL (one per round trip, no ORM compilation): take the first
# open task under a row lock, then insert the lease only if the task still has room, re-counting the
# leases in a fresh statement, hence a fresh snapshot that sees every lease committed before the lock.
_ROOM = (
    "t.rating_count + (SELECT COUNT(*) FROM annotation_assignment a WHERE a.task_id = t.id"
    " AND a.status = 'active' AND a.expires_at > %s) < t.required_ratings"
)


_LEASE_INSERT = " ".join(
    [
        "INSERT INTO annotation_assignment",
        "(task_id, study_id, rater_id, status, leased_at, expires_at, finished_at, skip_reason)",
        "SELECT t.id, %s, %s, 'active', %s, %s, NULL, '' FROM annotation_task t",
        "WHERE t.id = %s AND (t.is_gold OR",
        _ROOM,
        ") RETURNING id",
    ]
)


def _lock_candidate(
    *, study: Study, rater: Any, now: datetime, gold: bool, skip: list[int], lock: bool = True
) -> tuple[int, bool] | None:
    """Id of the first open task (queue order) the rater has never had, row-locked on PostgreSQL
    (tasks other raters hold locked are skipped, not waited for), and whether it has expired leases
    still marked active."""
    when = connection.ops.adapt_datetimefield_value(now)
    sql = [
        "SELECT t.id, EXISTS (SELECT 1 FROM annotation_assignment x WHERE x.task_id = t.id",
        "AND x.status = 'active' AND x.expires_at <= %s)",
        "FROM annotation_task t WHERE t.study_id = %s AND t.is_gold = %s",
    ]
    params: list[Any] = [when, study.pk, gold]
    if not gold:
        # The first condition matches the partial index task_open_queue; the second counts leases.
        sql.append("AND t.rating_count < t.required_ratings AND " + _ROOM)
        params.append(when)
    sql.append(
        "AND NOT EXISTS (SELECT 1 FROM annotation_assignment s WHERE s.task_id = t.id AND s.rater_id = %s)"
    )
    params.append(rater.pk)
    if skip:
        sql.append("AND t.id NOT IN (" + ", ".join(["%s"] * len(skip)) + ")")
        params += skip
    sql.append("ORDER BY t.order_key LIMIT 1")
    if lock and connection.features.has_select_for_update_skip_locked:
        sql.append("FOR UPDATE OF t SKIP LOCKED")
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql), params)
        row = cursor.fetchone()
    return (row[0], bool(row[1])) if row else None


def _leases_expire(*, task_id: int, now: datetime) -> None:
    """Mark the task's lapsed leases `expired` (lazily, now that the task is handed on)."""
    when = connection.ops.adapt_datetimefield_value(now)
    sql = [
        "UPDATE annotation_assignment SET status = 'expired', finished_at = %s WHERE id IN",
        "(SELECT id FROM annotation_assignment WHERE task_id = %s AND status = 'active' AND expires_at <= %s",
    ]
    if connection.features.has_select_for_update_skip_locked:
        # A late submitter may hold their assignment's row while waiting for this task's row, which
        # we hold: skip their row rather than wait for it (waiting would deadlock).
        sql.append("FOR UPDATE SKIP LOCKED")
    sql.append(")")
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql), [when, task_id, when])


def _lease_if_room(
    *, task_id: int, study: Study, rater: Any, now: datetime, lease: timedelta
) -> Assignment | None:
    """Insert the lease if the (locked) task still has room; None if it filled up meanwhile."""
    ops = connection.ops
    when, until = ops.adapt_datetimefield_value(now), ops.adapt_datetimefield_value(now + lease)
    sql = _LEASE_INSERT
    with connection.cursor() as cursor:
        cursor.execute(sql, [study.pk, rater.pk, when, until, task_id, when])
        row = cursor.fetchone()
    if row is None:
        return None
    return Assignment(
        id=row[0],
        task_id=task_id,
        study=study,
        rater=rater,
        status=AssignmentStatus.ACTIVE,
        leased_at=now,
        expires_at=now + lease,
    )


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
    """Give the rater back the task whose lease lapsed, if it still has room; else mark it expired."""
    task = _lock_first(Task.objects.filter(pk=assignment.task_id), skip=[])
    if task is not None and task_has_room(task=task, now=now, excluding=assignment.rater_id):
        assignment.status, assignment.finished_at = AssignmentStatus.ACTIVE, None
        assignment.leased_at, assignment.expires_at = now, now + lease
        assignment.save(update_fields=["status", "finished_at", "leased_at", "expires_at"])
        return assignment
    if assignment.status != AssignmentStatus.EXPIRED:
        assignment.status, assignment.finished_at = AssignmentStatus.EXPIRED, now
        assignment.save(update_fields=["status", "finished_at"])
    return None


def _take(*, study: Study, rater: Any, now: datetime, lease: timedelta, gold: bool) -> Assignment | None:
    """Lease the first open task nobody else holds locked, stepping over ones that filled up."""
    skipped: list[int] = []
    for _ in range(_MAX_ATTEMPTS):
        found = _lock_candidate(study=study, rater=rater, now=now, gold=gold, skip=skipped)
        if found is None:
            return None
        task_id, stale = found
        assignment = _lease_if_room(task_id=task_id, study=study, rater=rater, now=now, lease=lease)
        if assignment is not None:
            if stale:
                _leases_expire(task_id=task_id, now=now)
            return assignment
        skipped.append(task_id)
    return None


# task_assign_next's `latest` when the caller did not read the rater's latest assignment.
UNREAD: Any = object()


def _take_in_one_call(*, study: Study, rater: Any, now: datetime, lease: timedelta) -> Assignment | None:
    """_take for non-gold tasks as one call of the PostgreSQL function annotation_lease_take (migration
    0004, the same statements in the same order), in one round trip and, outside a transaction, with
    no BEGIN and COMMIT of its own: the call is its own transaction."""
    ops = connection.ops
    when, until = ops.adapt_datetimefield_value(now), ops.adapt_datetimefield_value(now + lease)
    # The blinded task comes back in the same round trip (annotation.blinding owns its columns); the
    # joined rows are never written, so the statement's snapshot, taken before the call, has them.
    sql = " ".join(
        [
            "SELECT l.o_assignment, l.o_task,",
            BLIND_COLUMNS,
            "FROM annotation_lease_take(%s, %s, %s, %s, %s) l",
            blind_joins(task_key="l.o_task"),
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [study.pk, rater.pk, when, until, _MAX_ATTEMPTS])
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    assignment = Assignment(
        id=row[0],
        task_id=row[1],
        study=study,
        rater=rater,
        status=AssignmentStatus.ACTIVE,
        leased_at=now,
        expires_at=now + lease,
    )
    assignment.blind = blind_from_row(row[2:])  # type: ignore[attr-defined]
    return assignment


def task_assign_next(
    *, study: Study, rater: Any, now: datetime | None = None, latest: Any = UNREAD
) -> Assignment | None:
    """Lease the rater's next task in the study and return the Assignment, or None when nothing is left.

    Assumes the caller checked the rater may rate this study (see selectors.rater_check_access).
    `latest` is the rater's latest assignment in the study (None: they have none) when the caller
    already read it in this request (the rater API does, in its access query); by default it is read
    here. Either way it is a plain read, as it always was: the row locks below, not this read, keep
    tasks from being over-leased.
    Atomic: on PostgreSQL candidate rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so
    concurrent raters never wait on each other's task; on SQLite the transaction serialises writers.
    Calling it again while a lease is live returns the same assignment (without a transaction).
    """
    if study.status != StudyStatus.OPEN:
        raise Conflict("This study is not open for rating at the moment.")
    now = now or timezone.now()
    lease = timedelta(seconds=study.lease_seconds)
    # The rater's latest lease: still live, it is returned as is; lapsed (whether or not another
    # rater's lease already marked it expired), the rater gets that task back if it has room.
    own = latest_assignment(study=study, rater=rater) if latest is UNREAD else latest
    if own is not None and own.status == AssignmentStatus.ACTIVE and own.expires_at > now:
        return own
    lapsed = own is not None and own.status in (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED)
    gold_due = _gold_due(study=study, rater=rater)
    if connection.vendor == "postgresql" and not lapsed and not gold_due:
        # The common case (a rater moving on to a new task) in one round trip; when it finds nothing,
        # the transaction below looks again and waits out tasks locked by leases in flight.
        assignment = _take_in_one_call(study=study, rater=rater, now=now, lease=lease)
        if assignment is not None:
            return assignment
    with transaction.atomic():
        if lapsed and own is not None:
            renewed = _renew_own(assignment=own, now=now, lease=lease)
            if renewed is not None:
                return renewed

        for gold in (True, False) if gold_due else (False,):
            assignment = _take(study=study, rater=rater, now=now, lease=lease, gold=gold)
            if assignment is not None:
                return assignment
        if connection.features.has_select_for_update_skip_locked:
            # Nothing free, but at the end of a study the last open tasks may only be locked for a
            # few milliseconds by other raters' leases in flight: look again before saying "done".
            for pause in _BUSY_PAUSES:
                if (
                    _lock_candidate(study=study, rater=rater, now=now, gold=False, skip=[], lock=False)
                    is None
                ):
                    break
                time.sleep(pause)
                assignment = _take(study=study, rater=rater, now=now, lease=lease, gold=False)
                if assignment is not None:
                    return assignment
    return None


def _partial(model: type[M], **values: Any) -> M:
    """An instance with only these fields loaded (the others deferred), as a queryset's only() builds
    it: unlike Model(**values) it computes no defaults (a public id default costs an os.urandom)."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


def latest_assignment(*, study: Study, rater: Any) -> Assignment | None:
    """The rater's most recently leased assignment in the study, whatever its status."""
    return Assignment.objects.filter(rater=rater, study=study).order_by("-leased_at").first()


def assignment_for_update(
    *, study: Study | None, rater: Any, public_id: str, with_texts: bool = False, lock: bool = True
) -> Assignment | None:
    """The rater's own assignment for a task, row-locked, with the few task and study fields a submit
    needs (task ids of the outputs, the rubric, the study status) loaded in the same raw query;
    None for a task they were never given. `with_texts` also loads the side texts (as
    `assignment.side_texts`, {"A": ..., "B": ...}) for checking hallucination spans, in the same query."""
    from evalhub.runs.models import Output

    a, t, s = Assignment._meta.db_table, Task._meta.db_table, Study._meta.db_table
    sql = [
        "SELECT a.*, t.public_id AS t_public_id, t.output_a_id AS t_output_a_id,",
        "t.output_b_id AS t_output_b_id, s.rubric AS s_rubric, s.status AS s_status",
    ]
    if with_texts:
        sql.append(", oa.text AS oa_text, ob.text AS ob_text")
    sql += [
        "FROM",
        a,
        "a JOIN",
        t,
        "t ON t.id = a.task_id JOIN",
        s,
        "s ON s.id = a.study_id",
    ]
    if with_texts:
        output = Output._meta.db_table
        sql += [
            "LEFT JOIN",
            output,
            "oa ON oa.id = t.output_a_id LEFT JOIN",
            output,
            "ob ON ob.id = t.output_b_id",
        ]
    sql.append("WHERE a.rater_id = %s AND t.public_id = %s")
    params: list[Any] = [rater.pk, public_id]
    if study is not None:
        sql.append("AND a.study_id = %s")
        params.append(study.pk)
    if lock and connection.features.has_select_for_update:
        sql.append("FOR UPDATE OF a")
    found = next(iter(Assignment.objects.raw(" ".join(sql), params)), None)
    if found is None:
        return None
    extra: Any = found  # the raw query's extra columns are plain attributes
    rubric = json.loads(extra.s_rubric) if isinstance(extra.s_rubric, str | bytes) else extra.s_rubric
    found.task = _partial(
        Task,
        id=found.task_id,
        public_id=extra.t_public_id,
        output_a_id=extra.t_output_a_id,
        output_b_id=extra.t_output_b_id,
    )
    found.study = _partial(Study, id=found.study_id, rubric=rubric, status=extra.s_status)
    if with_texts:
        texts = {"A": extra.oa_text, "B": extra.ob_text}
        found.side_texts = {side: text for side, text in texts.items() if text is not None}  # type: ignore[attr-defined]
    return found
