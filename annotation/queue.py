"""Handing out tasks: the one place that decides which task a rater gets next, under a lease.

A task is open while `rating_count + unexpired active leases < required_ratings`. Expired leases need
no sweeper: they simply stop counting, and their rows are marked `expired` lazily, when the task is
handed to someone else or their rater comes back. A rater never gets a task they submitted or skipped,
nor (unless the study allows case repeats) a second task of a case they already had;
a rater whose own lease expired gets that task back first if it is still open (their half-read task is
where they left off). Every database runs these same statements; on PostgreSQL the candidate rows
are taken with `FOR UPDATE SKIP LOCKED`, so concurrent raters never wait on each other's task. The
statements a rater runs on every fetch and submit are SQL built from the models' names
(annotation.sql): the equivalent querysets cost more CPU to compile than the rest of the request.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Study, StudyStatus, Task
from annotation.selectors import access_condition
from annotation.sql import column, columns, table
from evalhub.accounts.models import ApiToken
from evalhub.errors import Conflict

M = TypeVar("M", bound=Model)

# How many locked-but-full candidates to step over before giving up.
_MAX_ATTEMPTS = 8
# Seconds to wait, one after the other, for open tasks that other raters' transactions hold locked.
_BUSY_PAUSES = (0.005, 0.01, 0.02, 0.04, 0.08)


def _when(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


def _room(task: str, *, now: datetime, excluding: Any = None) -> tuple[str, list[Any]]:
    """The room rule as an SQL condition on the task row `task`: its ratings plus its live leases
    (active, not yet expired; `excluding` one rater's) stay below k. Its one home."""
    a = Assignment
    sql = (
        f"{task}.{column(Task, 'rating_count')} + (SELECT COUNT(*) FROM {table(a)} l"  # noqa: S608
        f" WHERE l.{column(a, 'task')} = {task}.{column(Task, 'id')} AND l.{column(a, 'status')} = %s"
        f" AND l.{column(a, 'expires_at')} > %s"
    )
    params: list[Any] = [AssignmentStatus.ACTIVE, _when(now)]
    if excluding is not None:
        sql += f" AND l.{column(a, 'rater')} <> %s"
        params.append(excluding)
    return sql + f") < {task}.{column(Task, 'required_ratings')}", params


def _history_condition(*, study: Study, rater: Any) -> tuple[str, list[Any]]:
    """The history rule as an SQL condition on the task row `t`: the rater has never had this task
    and, unless the study allows case repeats, never any task of this case in this study (a case's
    baseline output is the same text in every pair: seeing it twice tells the rater which side is the
    baseline). Its one home."""
    a, t = Assignment, Task
    if study.allow_case_repeats:
        return (
            f"NOT EXISTS (SELECT 1 FROM {table(a)} h WHERE h.{column(a, 'task')} = t.{column(t, 'id')}"  # noqa: S608
            f" AND h.{column(a, 'rater')} = %s)",
            [rater.pk],
        )
    return (
        f"NOT EXISTS (SELECT 1 FROM {table(a)} h JOIN {table(t)} ht"  # noqa: S608
        f" ON ht.{column(t, 'id')} = h.{column(a, 'task')} WHERE h.{column(a, 'rater')} = %s"
        f" AND h.{column(a, 'study')} = %s AND ht.{column(t, 'case')} = t.{column(t, 'case')})",
        [rater.pk, study.pk],
    )


def _lock_candidate(
    *, study: Study, rater: Any, now: datetime, gold: bool, skip: list[int], lock: bool = True
) -> tuple[int, bool] | None:
    """Id of the first task (queue order) of the study the rater has never had, with room unless it is
    gold, row-locked on PostgreSQL (tasks other raters hold locked are skipped, not waited for), and
    whether it has lapsed leases still marked active."""
    a, t = Assignment, Task
    sql = [
        f"SELECT t.{column(t, 'id')}, EXISTS (SELECT 1 FROM {table(a)} x"  # noqa: S608
        f" WHERE x.{column(a, 'task')} = t.{column(t, 'id')} AND x.{column(a, 'status')} = %s"
        f" AND x.{column(a, 'expires_at')} <= %s)",
        f"FROM {table(t)} t WHERE t.{column(t, 'study')} = %s AND t.{column(t, 'is_gold')} = %s",
    ]
    params: list[Any] = [AssignmentStatus.ACTIVE, _when(now), study.pk, gold]
    if not gold:
        # The first condition matches the partial index task_open_queue; the second counts leases.
        room, room_params = _room("t", now=now)
        sql.append(f"AND t.{column(t, 'rating_count')} < t.{column(t, 'required_ratings')} AND {room}")
        params += room_params
    history, history_params = _history_condition(study=study, rater=rater)
    sql.append(f"AND {history}")
    params += history_params
    if skip:
        sql.append(f"AND t.{column(t, 'id')} NOT IN (" + ", ".join(["%s"] * len(skip)) + ")")
        params += skip
    sql.append(f"ORDER BY t.{column(t, 'order_key')} LIMIT 1")
    if lock and connection.features.has_select_for_update_skip_locked:
        sql.append("FOR UPDATE OF t SKIP LOCKED")
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql), params)
        row = cursor.fetchone()
    return (row[0], bool(row[1])) if row else None


def _lease_if_room(
    *, task_id: int, study: Study, rater: Any, now: datetime, lease: timedelta, token: Any
) -> Assignment | None:
    """Insert the lease if the (locked) task still has room, counted again in this fresh statement
    (hence a fresh snapshot, which sees every lease committed before the row lock: a task cannot be
    over-leased); None if it filled up meanwhile."""
    a, t = Assignment, Task
    names = ("task", "study", "rater", "status", "leased_at", "expires_at", "skip_reason", "token")
    room, room_params = _room("t", now=now)
    sql = (
        f"INSERT INTO {table(a)} ({', '.join(column(a, name) for name in names)})"  # noqa: S608
        f" SELECT t.{column(t, 'id')}, %s, %s, %s, %s, %s, '', %s FROM {table(t)} t"
        f" WHERE t.{column(t, 'id')} = %s AND (t.{column(t, 'is_gold')} OR {room})"
        f" RETURNING {column(a, 'id')}"
    )
    token_id = token.pk if token is not None else None
    values = [study.pk, rater.pk, AssignmentStatus.ACTIVE, _when(now), _when(now + lease), token_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, task_id, *room_params])
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
        token=token,
    )


def _lock_first(tasks: QuerySet[Task]) -> Task | None:
    """The first task, row-locked on PostgreSQL."""
    if connection.features.has_select_for_update:
        tasks = tasks.select_for_update(of=("self",))
    return tasks.only("pk", "required_ratings", "is_gold").first()


def task_has_room(*, task: Task, now: datetime, excluding: Any = None) -> bool:
    """Re-read capacity in a fresh statement, after the row lock: every earlier lease on this task has
    committed by now, so a snapshot taken before the lock cannot let the task be over-leased.
    Assumes the caller holds the task's row lock."""
    room, params = _room("t", now=now, excluding=excluding)
    t = Task
    sql = (
        f"SELECT 1 FROM {table(t)} t WHERE t.{column(t, 'id')} = %s"  # noqa: S608
        f" AND (t.{column(t, 'is_gold')} OR {room})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [task.pk, *params])
        return cursor.fetchone() is not None


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
    task = _lock_first(Task.objects.filter(pk=assignment.task_id))
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
    for _ in range(_MAX_ATTEMPTS):
        found = _lock_candidate(study=study, rater=rater, now=now, gold=gold, skip=skipped)
        if found is None:
            return None
        task_id, stale = found
        assignment = _lease_if_room(
            task_id=task_id, study=study, rater=rater, now=now, lease=lease, token=token
        )
        if assignment is not None:
            if stale:
                _leases_expire(task_id=task_id, now=now)
            return assignment
        skipped.append(task_id)
    return None


def _take_waiting(
    *, study: Study, rater: Any, now: datetime, lease: timedelta, token: Any
) -> Assignment | None:
    """Nothing free, but at the end of a study the last open tasks may only be locked for a few
    milliseconds by other raters' leases in flight: look again before saying "done"."""
    if not connection.features.has_select_for_update_skip_locked:
        return None  # elsewhere writers are serialised: nothing is skipped, so nothing is in flight
    for pause in _BUSY_PAUSES:
        if _lock_candidate(study=study, rater=rater, now=now, gold=False, skip=[], lock=False) is None:
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


def tasks_left(*, study: Study, rater: Any, now: datetime | None = None) -> int:
    """How many more tasks this rater could be given, counting the one they hold: non-gold tasks with
    room (others' live leases count against it) that the history rule still allows, each case
    counted once unless the study allows case repeats. The same conditions as the queue's, so
    "left to rate" never counts a task another rater holds or a case this rater already had."""
    now = now or timezone.now()
    a, t = Assignment, Task
    history, history_params = _history_condition(study=study, rater=rater)
    room, room_params = _room("t", now=now)
    counted = f"t.{column(t, 'id')}" if study.allow_case_repeats else f"DISTINCT t.{column(t, 'case')}"
    sql = (
        f"SELECT COUNT({counted}) FROM {table(t)} t WHERE t.{column(t, 'study')} = %s"  # noqa: S608
        f" AND t.{column(t, 'is_gold')} = %s AND {room} AND {history}"
    )
    held = (
        f"SELECT COUNT(*) FROM {table(a)} l WHERE l.{column(a, 'study')} = %s"  # noqa: S608
        f" AND l.{column(a, 'rater')} = %s AND l.{column(a, 'status')} = %s AND l.{column(a, 'expires_at')} > %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [study.pk, False, *room_params, *history_params])
        free = cursor.fetchone()[0]
        cursor.execute(held, [study.pk, rater.pk, AssignmentStatus.ACTIVE, _when(now)])
        return int(free) + int(cursor.fetchone()[0])


def latest_assignment(*, study: Study, rater: Any) -> Assignment | None:
    """The rater's most recently leased assignment in the study, whatever its status (every fetch
    reads it: SQL from the models' names)."""
    a = Assignment
    sql = (
        f"SELECT {columns(a, 'a')} FROM {table(a)} a WHERE a.{column(a, 'rater')} = %s"  # noqa: S608
        f" AND a.{column(a, 'study')} = %s ORDER BY a.{column(a, 'leased_at')} DESC LIMIT 1"
    )
    return next(iter(Assignment.objects.raw(sql, [rater.pk, study.pk])), None)


def _partial(model: type[M], **values: Any) -> M:
    """An instance with only these fields loaded (the others deferred), as a queryset's only() builds
    it: unlike Model(**values) it computes no defaults (a public id default costs an os.urandom)."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


def assignment_for_update(
    *,
    rater: Any,
    public_id: str,
    study: Study | None = None,
    auth: Any = None,
    lock: bool = True,
    with_texts: bool = False,
) -> Assignment | None:
    """The rater's own assignment for a task, row-locked, with the few task and study fields a submit
    needs, if the rater may still rate that study (selectors.access_condition, read in this statement
    on every submit and skip: a removed rater or an out-of-scope token finds nothing); None otherwise,
    as for a task they were never given. `with_texts` also loads the side texts, as
    `assignment.side_texts` ({"A": ..., "B": ...}), for checking hallucination spans.
    Assumes the caller's transaction when `lock`."""
    from evalhub.runs.models import Output

    a, t, s, o = Assignment, Task, Study, Output
    condition, access = access_condition(study="s", rater=rater, auth=auth)
    texts = f", oa.{column(o, 'text')} AS oa_text, ob.{column(o, 'text')} AS ob_text" if with_texts else ""
    sql = [
        f"SELECT {columns(a, 'a')}, t.{column(t, 'public_id')} AS t_public_id,"
        f" t.{column(t, 'output_a')} AS t_output_a_id, t.{column(t, 'output_b')} AS t_output_b_id,"
        f" s.{column(s, 'rubric')} AS s_rubric, s.{column(s, 'status')} AS s_status,"
        f" s.{column(s, 'project')} AS s_project_id{texts}",
        f"FROM {table(a)} a JOIN {table(t)} t ON t.{column(t, 'id')} = a.{column(a, 'task')}",
        f"JOIN {table(s)} s ON s.{column(s, 'id')} = a.{column(a, 'study')}",
    ]
    if with_texts:
        sql.append(
            f"LEFT JOIN {table(o)} oa ON oa.{column(o, 'id')} = t.{column(t, 'output_a')}"
            f" LEFT JOIN {table(o)} ob ON ob.{column(o, 'id')} = t.{column(t, 'output_b')}"
        )
    sql.append(f"WHERE a.{column(a, 'rater')} = %s AND t.{column(t, 'public_id')} = %s AND {condition}")
    params: list[Any] = [rater.pk, public_id, *access]
    if study is not None:
        sql.append(f"AND a.{column(a, 'study')} = %s")
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
    found.study = _partial(
        Study, id=found.study_id, rubric=rubric, status=extra.s_status, project_id=extra.s_project_id
    )
    if with_texts:
        sides = {"A": extra.oa_text, "B": extra.ob_text}
        found.side_texts = {side: text for side, text in sides.items() if text is not None}  # type: ignore[attr-defined]
    return found


def leases_release(*, leases: QuerySet[Assignment], now: datetime | None = None) -> int:
    """End these leases now (a removed rater's, a revoked token's): their tasks go back to the queue
    at once, and a submit on them is refused (the rater's access is checked again) or, for a rater who
    still has access, treated as late. Returns how many were live."""
    now = now or timezone.now()
    return leases.filter(status=AssignmentStatus.ACTIVE, expires_at__gt=now).update(
        status=AssignmentStatus.EXPIRED, expires_at=now, finished_at=now
    )
