"""The audit trail cannot be changed or shortened: not by the model, the queryset, nor raw SQL."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from evalhub.accounts.services import project_create, user_create
from evalhub.audit.models import AppendOnlyError, AuditEvent
from evalhub.audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(project):
    return audit_record(
        actor=None, action="test.thing", object_type="test.thing", object_id=1, project=project
    )


def test_saving_an_existing_event_is_refused(event):
    event.note = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()


def test_deleting_an_event_is_refused(event):
    with pytest.raises(AppendOnlyError):
        event.delete()


def test_queryset_update_and_delete_are_refused(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(note="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["note"])
    assert AuditEvent.objects.get(pk=event.pk).note == ""


@pytest.mark.postgres
@pytest.mark.parametrize("sql", ["UPDATE audit_auditevent SET note = 'x'", "DELETE FROM audit_auditevent"])
def test_the_database_refuses_update_and_delete(require_postgres, event, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.filter(pk=event.pk, note="").exists()


def test_deleting_a_user_or_project_leaves_history_untouched(db):
    user = user_create(username="leaver", password="correct-horse-battery")
    project = project_create(name="Doomed", actor=user)
    event = AuditEvent.objects.get(action="project.create")
    project.delete()
    user.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert kept.actor_id == event.actor_id and kept.project_id == event.project_id
    assert kept.actor_label == "leaver"
