"""Members: a project admin adds a new person with a role; they get a set-password link by email and log in."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from annotation.services import consent_accept, study_create_from_run
from evalhub.accounts.models import Membership, Role
from evalhub.accounts.services import membership_set, user_create
from evalhub.audit.models import AuditEvent
from tests.annotation.factories import run_rows

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


@pytest.fixture
def admin_client(project) -> Client:
    user = user_create(username="padmin", password=PASSWORD)
    membership_set(project=project, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


def members_url(project) -> str:
    return f"/accounts/projects/{project.slug}/members/"


def test_a_new_person_is_created_with_the_role_and_emailed_a_set_password_link(project, admin_client):
    response = admin_client.post(
        members_url(project), {"username": "dana", "email": "dana@example.org", "role": Role.RATER}, follow=True
    )
    assert "set-password link was emailed to dana@example.org" in response.content.decode()
    dana = get_user_model().objects.get(username="dana")
    assert not dana.has_usable_password()
    assert Membership.objects.get(user=dana, project=project).role == Role.RATER
    assert AuditEvent.objects.filter(action="user.invite", project=project).count() == 1
    [message] = mail.outbox
    assert message.to == ["dana@example.org"] and "as rater" in message.body
    link = re.search(r"http://testserver(/accounts/set-password/\S+)", message.body).group(1)

    anonymous = Client()
    form_page = anonymous.get(link, follow=True)  # Django moves the token into the session, then shows the form
    assert "Choose your password" in form_page.content.decode() and "dana" in form_page.content.decode()
    done = anonymous.post(
        form_page.redirect_chain[-1][0], {"new_password1": "a-long-fresh-pass", "new_password2": "a-long-fresh-pass"}
    )
    assert done.status_code == 302 and done["Location"].endswith("/accounts/set-password/done/")
    assert Client().login(username="dana", password="a-long-fresh-pass")
    assert "used already or has expired" in Client().get(link, follow=True).content.decode()


def test_a_new_person_without_an_email_is_refused_on_the_field(project, admin_client):
    response = admin_client.post(members_url(project), {"username": "erin", "email": "", "role": Role.RATER})
    assert response.status_code == 400
    assert "give an email address" in " ".join(response.context["form"].errors["email"])
    assert not get_user_model().objects.filter(username="erin").exists() and not mail.outbox


def test_an_existing_user_just_gets_the_role_and_no_email(project, admin_client):
    user_create(username="frank", password=PASSWORD)
    response = admin_client.post(members_url(project), {"username": "frank", "role": Role.ENGINEER})
    assert response.status_code == 302
    assert Membership.objects.get(user__username="frank").role == Role.ENGINEER and not mail.outbox


def test_a_bad_username_is_refused_and_nothing_is_stored(project, admin_client):
    response = admin_client.post(
        members_url(project), {"username": "no spaces!", "email": "x@example.org", "role": Role.RATER}
    )
    assert response.status_code == 400 and response.context["form"].errors["username"]
    assert not Membership.objects.filter(user__username="no spaces!").exists() and not mail.outbox


def test_members_page_shows_each_raters_consent(project, admin_client):
    rows = run_rows(project, n_cases=2)
    study = study_create_from_run(run=rows.run, name="Study A", terms="I rate alone.")
    agreed = user_create(username="agreed", password=PASSWORD)
    waiting = user_create(username="waiting", password=PASSWORD)
    for user in (agreed, waiting):
        membership_set(project=project, user=user, role=Role.RATER)
    consent_accept(study=study, rater=agreed)
    html = admin_client.get(members_url(project)).content.decode()
    row = {name: html[html.index(f"<td>{name}</td>") :].split("</tr>")[0] for name in ("agreed", "waiting")}
    assert "1 of 1 accepted" in row["agreed"] and "badge go" in row["agreed"]
    assert "0 of 1 accepted" in row["waiting"] and "Not yet accepted: Study A" in row["waiting"]
