"""Every rating submission and skip is in the audit trail, under the rater and the study's project."""

from __future__ import annotations

import pytest

from annotation.queue import task_assign_next
from annotation.services import consent_accept, rating_submit, study_create_from_run, task_skip
from evalhub.audit.models import AuditEvent
from tests.annotation.factories import rater_user, rating_data, run_rows

pytestmark = pytest.mark.django_db


def test_a_submission_and_a_skip_are_audited_once_each(project):
    study = study_create_from_run(run=run_rows(project, n_cases=3).run, name="s", terms="T")
    rater = rater_user(project, "auditee")
    consent_accept(study=study, rater=rater)
    first = task_assign_next(study=study, rater=rater)
    rating_submit(public_id=first.task.public_id, rater=rater, data=rating_data())
    rating_submit(public_id=first.task.public_id, rater=rater, data=rating_data())  # a retry: no second event
    second = task_assign_next(study=study, rater=rater)
    task_skip(public_id=second.task.public_id, rater=rater, reason="expertise")
    task_skip(public_id=second.task.public_id, rater=rater, reason="expertise")
    events = list(AuditEvent.objects.filter(action__in=["rating.submit", "task.skip"]).order_by("pk"))
    assert [(e.action, e.object_id, e.actor_id, e.project_id) for e in events] == [
        ("rating.submit", first.task.public_id, rater.pk, study.project_id),
        ("task.skip", second.task.public_id, rater.pk, study.project_id),
    ]
    assert events[0].after["preference"] == "A" and events[1].after["reason"] == "expertise"
