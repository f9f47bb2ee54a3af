"""Admins read, filter and export the trail; project admins see only their projects' events."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, token_create, user_create
from evalhub.audit.export import neutralise
from evalhub.audit.models import AuditEvent
from evalhub.audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_admin(project):
    user = user_create(username="padmin", password="correct-horse-battery")
    membership_set(project=project, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def events(project, other_project, lead):
    audit_record(
        actor=lead,
        action="adapter.set_status",
        object_type="catalog.adapter",
        object_id=7,
        project=project,
        before={"status": "draft"},
        after={"status": "approved"},
    )
    audit_record(
        actor=None,
        action="suite.pii_decision",
        object_type="suites.suiteversion",
        object_id=3,
        project=project,
        note='=HYPERLINK("http://evil")',
    )
    audit_record(
        actor=None, action="verdict.freeze", object_type="reports.verdict", object_id=1, project=other_project
    )


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def table_body(response) -> str:
    """The events table's rows (the filter choices above it name every action)."""
    html = response.content.decode()
    return html[html.index("<tbody>") : html.index("</tbody>")]


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell


def test_plain_cells_are_left_alone():
    assert neutralise("adapter.set_status") == "adapter.set_status"


def test_site_admin_sees_everything(admin_user, events):
    page = logged_in(admin_user).get("/audit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "verdict.freeze" in html and "suite.pii_decision" in html


def test_project_admin_sees_only_their_project(project_admin, events):
    html = logged_in(project_admin).get("/audit/").content.decode()
    assert "suite.pii_decision" in html and "verdict.freeze" not in html


def test_non_admins_are_refused(lead, rater, events):
    assert logged_in(lead).get("/audit/").status_code == 403
    assert logged_in(rater).get("/audit/export.csv").status_code == 403
    assert Client().get("/audit/").status_code == 302


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ("actor=lead", "adapter.set_status", "suite.pii_decision"),
        ("action=suite", "suite.pii_decision", "adapter.set_status"),
        ("object_type=catalog.adapter", "adapter.set_status", "suite.pii_decision"),
        ("project=other-team", "verdict.freeze", "suite.pii_decision"),
        ("date_to=2000-01-01", None, "adapter.set_status"),
    ],
)
def test_filters(admin_user, events, query, present, absent):
    html = table_body(logged_in(admin_user).get(f"/audit/?{query}"))
    if present:
        assert present in html
    assert absent not in html


def test_csv_export_is_filtered_neutralised_and_itself_audited(admin_user, events):
    response = logged_in(admin_user).get("/audit/export.csv?project=acme-summaries")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    actions = {row["action"] for row in rows}
    assert {"adapter.set_status", "suite.pii_decision"} <= actions and "verdict.freeze" not in actions
    note = next(row["note"] for row in rows if row["action"] == "suite.pii_decision")
    assert note.startswith("'=")
    assert json.loads(next(r["after"] for r in rows if r["action"] == "adapter.set_status")) == {
        "status": "approved"
    }
    assert AuditEvent.objects.filter(action="audit.export", actor=admin_user).exists()


def test_json_export(project_admin, events):
    response = logged_in(project_admin).get("/audit/export.json")
    data = json.loads(b"".join(response.streaming_content))
    actions = {row["action"] for row in data}
    assert {"adapter.set_status", "suite.pii_decision"} <= actions and "verdict.freeze" not in actions


def test_unknown_export_format_is_404(admin_user):
    assert logged_in(admin_user).get("/audit/export.xlsx").status_code == 404


def test_api_follows_the_same_rules(project, admin_user, project_admin, lead, events):
    client = APIClient()
    client.force_login(admin_user)
    assert client.get("/api/v1/audit-events/").json()["count"] >= 3
    _, secret = token_create(user=project_admin, project=project, name="audit")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    actions = {row["action"] for row in client.get("/api/v1/audit-events/").json()["results"]}
    assert "verdict.freeze" not in actions and "suite.pii_decision" in actions
    filtered = client.get("/api/v1/audit-events/?action=adapter").json()["results"]
    assert [row["action"] for row in filtered] == ["adapter.set_status"]
    assert filtered[0]["before"] == {"status": "draft"}
    client = APIClient()
    client.force_login(lead)
    assert client.get("/api/v1/audit-events/").status_code == 403
    assert APIClient().get("/api/v1/audit-events/").status_code == 401
    bad = APIClient()
    bad.force_login(admin_user)
    assert bad.get("/api/v1/audit-events/?date_from=yesterday").status_code == 400


def test_api_event_of_another_project_is_404(other_project, project_admin):
    event = audit_record(actor=None, action="x.y", object_type="x", project=other_project)
    client = APIClient()
    client.force_login(project_admin)
    assert client.get(f"/api/v1/audit-events/{event.pk}/").status_code == 404


def test_filters_offer_what_the_trail_holds_and_dates_are_pickers(admin_user, events):
    page = logged_in(admin_user).get("/audit/")
    form = page.context["filter"].form
    assert ("adapter.set_status", "adapter.set_status") in form.fields["action"].widget.choices
    families = dict(c for c in form.fields["action"].widget.choices if isinstance(c[1], list))
    assert {"adapter", "suite", "verdict"} <= {value for value, _ in families["Families (every action of)"]}
    assert ("lead", "lead") in form.fields["actor"].widget.choices
    assert ("other-team", "other-team") in form.fields["project"].widget.choices
    html = page.content.decode()
    assert '<select name="action"' in html and 'type="date" name="date_from"' in html


def test_a_last_part_of_an_action_finds_it(admin_user, project, rater):
    audit_record(actor=rater, action="study.consent", object_type="annotation.study", object_id="s1",
                 project=project, after={"terms_sha256": "ab"})
    assert "study.consent" in table_body(logged_in(admin_user).get("/audit/?action=consent"))


def test_before_and_after_read_as_changes_not_dicts(admin_user, events):
    html = table_body(logged_in(admin_user).get("/audit/?action=adapter"))
    assert "<del>draft</del> → <ins>approved</ins>" in html
    assert "{&#x27;status&#x27;" not in html and "{'status'" not in html


def test_audit_changes_lists_added_removed_and_changed_keys():
    from evalhub.audit.selectors import audit_changes

    lines = audit_changes(before={"role": "rater", "pool": "a"}, after={"role": "lead", "since": [1, 2]})
    assert lines == [
        {"key": "role", "kind": "changed", "before": "rater", "after": "lead"},
        {"key": "pool", "kind": "removed", "before": "a", "after": ""},
        {"key": "since", "kind": "added", "before": "", "after": "[1, 2]"},
    ]
    assert audit_changes(before=None, after=None) == []


def test_nav_links_the_audit_page_for_whoever_may_read_it(project_admin, lead, admin_user):
    for user, shown in ((project_admin, True), (admin_user, True), (lead, False)):
        html = logged_in(user).get("/").content.decode()
        assert ('href="/audit/"' in html) is shown, user
