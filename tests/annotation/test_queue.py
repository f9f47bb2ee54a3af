"""The queue: k distinct raters per task, no task twice, leases that expire and return, pools, atomicity."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, StudyStatus, Task
from annotation.queue import task_assign_next
from annotation.services import consent_accept, pool_create, rating_submit, study_create_from_run, task_skip
from evalhub.errors import Conflict
from tests.annotation.factories import rater_user, rating_data, run_rows

pytestmark = pytest.mark.django_db


def rate_all(study, rater, now=None):
    rated = []
    while (assignment := task_assign_next(study=study, rater=rater, now=now)) is not None:
        rating_submit(public_id=assignment.task.public_id, rater=rater, data=rating_data(), now=now)
        rated.append(assignment.task_id)
    return rated


def test_each_task_gets_exactly_k_ratings_from_distinct_raters(study, raters):
    per_rater = [rate_all(study, rater) for rater in raters]
    assert all(len(set(r)) == len(r) for r in per_rater), "no rater rates a task twice"
    assert sum(len(r) for r in per_rater) == 6 * 2
    assert set(Task.objects.filter(study=study).values_list("rating_count", flat=True)) == {2}
    assert task_assign_next(study=study, rater=raters[0]) is None


def test_a_live_lease_is_returned_again_not_a_second_task(study, raters):
    first = task_assign_next(study=study, rater=raters[0])
    again = task_assign_next(study=study, rater=raters[0])
    assert first.pk == again.pk
    assert Assignment.objects.filter(rater=raters[0]).count() == 1


def test_leased_tasks_count_against_overlap_until_they_expire(project, rows):
    study = study_create_from_run(run=rows.run, name="s", overlap=1, lease_seconds=60)
    one, two = rater_user(project, "one"), rater_user(project, "two")
    now = timezone.now()
    held = [task_assign_next(study=study, rater=one, now=now)]
    for _ in range(5):
        rating_submit(public_id=held[-1].task.public_id, rater=one, data=rating_data(), now=now)
        held.append(task_assign_next(study=study, rater=one, now=now))
    # `one` holds the last open task: nothing is left for `two` while the lease runs.
    assert task_assign_next(study=study, rater=two, now=now + timedelta(seconds=30)) is None
    later = now + timedelta(seconds=61)
    back = task_assign_next(study=study, rater=two, now=later)
    assert back is not None and back.task_id == held[-1].task_id
    # Handing the task on marks the lapsed lease expired.
    assert Assignment.objects.get(pk=held[-1].pk).status == AssignmentStatus.EXPIRED
    # `one` comes back after the lease ran out: the task is gone, their lease is marked expired.
    assert task_assign_next(study=study, rater=one, now=later) is None
    assert Assignment.objects.get(pk=held[-1].pk).status == AssignmentStatus.EXPIRED


def test_an_expired_lease_comes_back_to_the_same_rater_when_still_open(study, raters):
    now = timezone.now()
    first = task_assign_next(study=study, rater=raters[0], now=now)
    back = task_assign_next(
        study=study, rater=raters[0], now=now + timedelta(seconds=study.lease_seconds + 1)
    )
    assert back.pk == first.pk and back.expires_at > now + timedelta(seconds=study.lease_seconds + 1)


def test_an_expired_lease_marked_by_others_still_comes_back_when_the_task_has_room(project, rows):
    study = study_create_from_run(run=rows.run, name="k2", overlap=2, lease_seconds=60)
    one, two = rater_user(project, "one"), rater_user(project, "two")
    now = timezone.now()
    first = task_assign_next(study=study, rater=one, now=now)
    later = now + timedelta(seconds=61)
    other = task_assign_next(study=study, rater=two, now=later)
    assert other.task_id == first.task_id
    assert Assignment.objects.get(pk=first.pk).status == AssignmentStatus.EXPIRED
    back = task_assign_next(study=study, rater=one, now=later)
    assert back.pk == first.pk and back.status == AssignmentStatus.ACTIVE
    rating_submit(public_id=back.task.public_id, rater=one, data=rating_data(), now=later)
    rating_submit(public_id=other.task.public_id, rater=two, data=rating_data(), now=later)
    assert Task.objects.get(pk=first.task_id).rating_count == 2


def test_skipped_tasks_never_come_back(study, raters):
    first = task_assign_next(study=study, rater=raters[0])
    task_skip(public_id=first.task.public_id, rater=raters[0], reason="Outside my expertise")
    seen = [first.task_id, *rate_all(study, raters[0])]
    assert len(seen) == 6 and len(set(seen)) == 6
    assert first.task_id not in rate_all(study, raters[0])


def test_pool_limits_who_can_rate(project, rows):
    from annotation.selectors import rater_studies

    finance = rater_user(project, "finance-expert")
    other = rater_user(project, "generalist")
    pool = pool_create(project=project, name="finance experts", members=[finance])
    study = study_create_from_run(run=rows.run, name="s", pool=pool, overlap=1)
    assert list(rater_studies(rater=finance)) == [study]
    assert list(rater_studies(rater=other)) == []


def test_paused_study_hands_out_nothing(study, raters):
    study.status = StudyStatus.PAUSED
    study.save()
    with pytest.raises(Conflict, match="not open"):
        task_assign_next(study=study, rater=raters[0])


def test_gold_tasks_are_mixed_in_at_about_the_rate(project):
    rows = run_rows(project, n_cases=60)
    gold = [{"case": c.key, "preference": "candidate"} for c in rows.cases[:10]]
    study = study_create_from_run(run=rows.run, name="s", overlap=1, gold_rate=0.2, gold_tasks=gold, seed=5)
    rater = rater_user(project, "r")
    consent_accept(study=study, rater=rater)
    rate_all(study, rater)
    kinds = Counter(Assignment.objects.filter(rater=rater).values_list("task__is_gold", flat=True))
    assert kinds[False] == 50
    assert 5 <= kinds[True] <= 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_raters_never_overfill_a_task(require_postgres, project):
    rows = run_rows(project, n_cases=12)
    study = study_create_from_run(run=rows.run, name="race", overlap=3)
    users = [rater_user(project, f"racer{i}") for i in range(8)]
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def work(user):
        try:
            barrier.wait()
            while (assignment := task_assign_next(study=study, rater=user)) is not None:
                rating_submit(public_id=assignment.task.public_id, rater=user, data=rating_data())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not errors
    assert list(Task.objects.filter(study=study).values_list("rating_count", flat=True).distinct()) == [3]
    per_task = Counter(
        Assignment.objects.filter(study=study, status="submitted").values_list("task_id", flat=True)
    )
    assert set(per_task.values()) == {3}
    pairs = Assignment.objects.filter(study=study).values_list("task_id", "rater_id")
    assert len(pairs) == len(set(pairs))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_leases_of_the_last_task_stop_at_k(require_postgres, project):
    """The one-call lease (annotation_lease_take) re-counts leases after the row lock: eight raters
    asking at once for a study's only task get exactly k leases between them, and nobody waits."""
    rows = run_rows(project, n_cases=1)
    study = study_create_from_run(run=rows.run, name="last", overlap=3, single_output_categories=())
    assert study.tasks.count() == 1
    users = [rater_user(project, f"late{i}") for i in range(8)]
    barrier = threading.Barrier(len(users))
    got: list[Any] = []
    errors: list[BaseException] = []

    def work(user):
        try:
            barrier.wait()
            got.append(task_assign_next(study=study, rater=user))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not errors
    assert sum(a is not None for a in got) == 3
    assert Assignment.objects.filter(study=study, status="active").count() == 3


def test_leases_skip_full_and_own_tasks(study, raters):
    """Tasks go out in queue order, never one the rater had, never past k (the same statements on
    every database; on PostgreSQL with their row locks)."""
    now = timezone.now()
    first = task_assign_next(study=study, rater=raters[0], now=now)
    assert first is not None
    rating_submit(public_id=first.task.public_id, rater=raters[0], data=rating_data(), now=now)
    again = task_assign_next(study=study, rater=raters[0], now=now)
    assert again is not None and first.task_id != again.task_id
    second = task_assign_next(study=study, rater=raters[1], now=now)
    third = task_assign_next(study=study, rater=raters[2], now=now)
    assert second is not None and third is not None
    # overlap is 2: rater 0 rated the first task and rater 1 holds it, so rater 2 gets another one
    assert second.task_id == first.task_id and third.task_id != first.task_id


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submit_is_stored_once(require_postgres, project):
    """Two submits of one held task at once (a double click, a retry racing the original): the
    one-statement store re-checks the lease under its row lock, so one stores and the other gets
    the stored rating back; the task counts one rating."""
    rows = run_rows(project, n_cases=2)
    study = study_create_from_run(run=rows.run, name="double", overlap=2)
    user = rater_user(project, "clicker")
    held = task_assign_next(study=study, rater=user)
    assert held is not None
    public_id = Task.objects.get(pk=held.task_id).public_id
    barrier = threading.Barrier(4)
    results: list[bool] = []
    errors: list[BaseException] = []

    def work():
        try:
            barrier.wait()
            results.append(rating_submit(public_id=public_id, rater=user, data=rating_data())[1])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()
    assert not errors
    assert sorted(results) == [False, False, False, True]
    assert Task.objects.get(pk=held.task_id).rating_count == 1
    assert Assignment.objects.get(pk=held.pk).status == AssignmentStatus.SUBMITTED


def two_candidate_study(project, *, n_cases=3, **options):
    """Two candidates against one baseline: every case has two pair tasks sharing the baseline's output."""
    rows = run_rows(project, n_cases=n_cases, adapters=("baseline", "cand", "other"))
    return study_create_from_run(run=rows.run, name="s", overlap=1, seed=3, **options)


def test_a_rater_never_gets_two_tasks_of_one_case(project):
    study = two_candidate_study(project)
    one, two = rater_user(project, "one"), rater_user(project, "two")
    first = rate_all(study, one)
    cases = list(Task.objects.filter(pk__in=first).values_list("case_id", flat=True))
    assert len(first) == 3 and len(set(cases)) == 3, "one task per case, then nothing"
    second = rate_all(study, two)
    assert set(first).isdisjoint(second) and len(second) == 3
    assert set(Task.objects.filter(study=study).values_list("rating_count", flat=True)) == {1}


def test_a_skipped_task_also_uses_up_its_case(project):
    study = two_candidate_study(project, n_cases=1)
    rater = rater_user(project, "r")
    a = task_assign_next(study=study, rater=rater)
    task_skip(public_id=a.task.public_id, rater=rater, reason="Other: unsure")
    assert task_assign_next(study=study, rater=rater) is None


def test_a_study_that_allows_case_repeats_hands_out_every_task(project):
    study = two_candidate_study(project, allow_case_repeats=True)
    assert len(rate_all(study, rater_user(project, "r"))) == 6


def test_left_to_rate_counts_cases_a_rater_can_still_get(project):
    from annotation.selectors import rater_progress

    study = two_candidate_study(project, n_cases=2)
    rater = rater_user(project, "one")
    assert rater_progress(study=study, rater=rater).remaining == 2
    held = task_assign_next(study=study, rater=rater)
    assert rater_progress(study=study, rater=rater).remaining == 2, "the held task still counts"
    rating_submit(public_id=held.task.public_id, rater=rater, data=rating_data())
    assert rater_progress(study=study, rater=rater).remaining == 1


def test_left_to_rate_leaves_out_a_task_another_rater_holds(project, rows):
    from annotation.selectors import rater_progress

    study = study_create_from_run(run=rows.run, name="s", overlap=1, sample_size=1)
    one, two = rater_user(project, "one"), rater_user(project, "two")
    assert task_assign_next(study=study, rater=one) is not None
    assert rater_progress(study=study, rater=two).remaining == 0
    assert rater_progress(study=study, rater=one).remaining == 1
