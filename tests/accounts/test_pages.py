"""The tokens page and the members page: same rules as the API, CSRF on every form."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from evalhub.accounts.models import ApiToken, Membership, Role
from evalhub.accounts.services import hash_token, membership_set, token_create, user_create

pytestmark = pytest.mark.django_db


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def project_admin(project):
    user = user_create(username="padmin", password="correct-horse-battery")
    membership_set(project=project, user=user, role=Role.ADMIN)
    return user


def test_token_page_shows_the_secret_once(project, lead):
    client = logged_in(lead)
    response = client.post("/accounts/tokens/", {"project": project.slug, "name": "laptop"})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r"ehk_[0-9a-f]{8}_[-\w]+", response.content.decode()).group(0)
    assert ApiToken.objects.get(name="laptop").key_hash == hash_token(secret)
    assert secret not in client.get("/accounts/tokens/").content.decode()


def test_token_page_revokes(project, lead):
    token, _ = token_create(user=lead, project=project, name="ci")
    client = logged_in(lead)
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_page_cannot_revoke_someone_elses_token(project, lead, engineer):
    token, _ = token_create(user=engineer, project=project, name="ci")
    assert logged_in(lead).post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_token_page_refuses_a_project_i_do_not_belong_to(other_project, lead):
    response = logged_in(lead).post("/accounts/tokens/", {"project": other_project.slug, "name": "x"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_members_page_is_for_project_admins_only(project, other_project, project_admin, lead):
    url = f"/accounts/projects/{project.slug}/members/"
    assert logged_in(project_admin).get(url).status_code == 200
    assert logged_in(lead).get(url).status_code == 403
    outsider = user_create(username="outsider", password="correct-horse-battery")
    membership_set(project=other_project, user=outsider, role=Role.ADMIN)
    assert logged_in(outsider).get(url).status_code == 404
    assert logged_in(project_admin).get("/accounts/projects/no-such-project/members/").status_code == 404


def test_members_form_offers_the_least_privileged_role_first(project, project_admin):
    page = logged_in(project_admin).get(f"/accounts/projects/{project.slug}/members/").content.decode()
    assert '<option value="rater" selected>' in page
    assert '<option value="admin" selected>' not in page


def test_members_page_adds_changes_and_removes(project, project_admin):
    newbie = user_create(username="newbie", password="correct-horse-battery")
    client = logged_in(project_admin)
    url = f"/accounts/projects/{project.slug}/members/"
    assert client.post(url, {"username": "newbie", "role": "rater"}).status_code == 302
    assert client.post(url, {"username": "newbie", "role": "engineer"}).status_code == 302
    membership = Membership.objects.get(user=newbie, project=project)
    assert membership.role == Role.ENGINEER
    page = client.get(url).content.decode()
    assert "<summary>Remove…</summary>" in page and "Yes, remove newbie" in page
    unconfirmed = client.post(f"{url}{membership.pk}/remove/", follow=True)
    assert "Confirm to remove newbie" in unconfirmed.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists(), "one click removes nobody"
    assert client.post(f"{url}{membership.pk}/remove/", {"confirm": "yes"}).status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert client.post(url, {"username": "ghost", "role": "rater"}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/tokens/",
        "/accounts/tokens/1/revoke/",
        "/accounts/projects/{slug}/members/",
        "/audit/export.csv",
    ],
)
def test_posts_without_csrf_token_are_refused(path, project, project_admin):
    client = logged_in(project_admin, enforce_csrf_checks=True)
    response = client.post(path.format(slug=project.slug), {"name": "x", "project": project.slug})
    assert response.status_code == 403


TOKENS_LINK = '<a href="/accounts/tokens/">API tokens</a>'


def test_nav_links_the_tokens_page_for_project_staff_not_raters(project, lead, rater):
    client = logged_in(lead)
    assert TOKENS_LINK in client.get("/", follow=True).content.decode()
    assert client.get("/accounts/tokens/").status_code == 200
    # Raters rate in the browser: the tokens page is not one of theirs (issue #17).
    client = logged_in(rater)
    assert TOKENS_LINK not in client.get("/rate/").content.decode()
    assert client.get("/accounts/tokens/").status_code == 403


def test_nav_hides_the_tokens_link_from_users_without_a_project(db):
    loner = user_create(username="loner", password="correct-horse-battery")
    page = logged_in(loner).get("/").content.decode()
    assert "Dashboard" in page and TOKENS_LINK not in page


def test_dashboard_links_members_only_for_projects_i_administer(project, other_project, project_admin, lead):
    membership_set(project=other_project, user=project_admin, role=Role.LEAD)
    page = logged_in(project_admin).get("/").content.decode()
    members_link = f'<a href="/accounts/projects/{project.slug}/members/">Members</a>'
    assert members_link in page
    assert f"/accounts/projects/{other_project.slug}/members/" not in page
    assert logged_in(project_admin).get(f"/accounts/projects/{project.slug}/members/").status_code == 200
    lead_page = logged_in(lead).get("/").content.decode()
    assert project.name in lead_page and "/members/" not in lead_page
