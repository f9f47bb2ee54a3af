"""The accounts API: who am I, projects, memberships and tokens, each under its own rule."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from evalhub.accounts.models import ApiToken, Membership, Role
from evalhub.accounts.services import hash_token, membership_set, token_create, user_create
from evalhub.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def project_admin(project):
    user = user_create(username="padmin", password="correct-horse-battery")
    membership_set(project=project, user=user, role=Role.ADMIN)
    return user


def test_me_shows_roles_and_a_token_sees_only_its_project(project, other_project, lead):
    membership_set(project=other_project, user=lead, role=Role.ENGINEER)
    body = session(lead).get("/api/v1/me/").json()
    assert body["auth"] == "session"
    assert {m["project"] for m in body["memberships"]} == {project.slug, other_project.slug}
    _, secret = token_create(user=lead, project=project, name="ci")
    body = bearer(secret).get("/api/v1/me/").json()
    assert body["auth"] == "token" and body["token_project"] == project.slug
    assert [m["project"] for m in body["memberships"]] == [project.slug]


def test_anonymous_gets_401_in_the_error_format(db):
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_projects_list_only_mine_and_raters_see_none(project, other_project, lead, rater):
    assert [p["slug"] for p in session(lead).get("/api/v1/projects/").json()["results"]] == [project.slug]
    assert session(rater).get("/api/v1/projects/").json()["results"] == []
    assert session(lead).get(f"/api/v1/projects/{other_project.slug}/").status_code == 404


def test_only_site_admins_create_projects_and_never_with_a_token(project, admin_user, lead):
    assert session(lead).post("/api/v1/projects/", {"name": "New"}).status_code == 403
    response = session(admin_user).post("/api/v1/projects/", {"name": "New team"})
    assert response.status_code == 201 and response.json()["slug"] == "new-team"
    assert AuditEvent.objects.filter(action="project.create", actor=admin_user).exists()
    _, secret = token_create(user=admin_user, project=project, name="ci")
    assert bearer(secret).post("/api/v1/projects/", {"name": "Via token"}).status_code == 403
    duplicate = session(admin_user).post("/api/v1/projects/", {"name": "New team"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"


def test_token_secret_is_shown_once_and_only_its_hash_is_stored(project, lead):
    response = session(lead).post("/api/v1/tokens/", {"project": project.slug, "name": "pipeline"})
    assert response.status_code == 201
    secret = response.json()["secret"]
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert token.key_hash == hash_token(secret) and secret not in token.key_hash
    listed = session(lead).get("/api/v1/tokens/").json()["results"]
    assert "secret" not in listed[0] and secret not in str(listed)
    assert bearer(secret).get("/api/v1/me/").status_code == 200
    assert AuditEvent.objects.filter(action="api_token.create", object_id=str(token.pk)).exists()


def test_a_token_cannot_mint_tokens(project, lead):
    _, secret = token_create(user=lead, project=project, name="ci")
    response = bearer(secret).post("/api/v1/tokens/", {"project": project.slug, "name": "child"})
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_tokens_only_for_projects_i_belong_to(project, other_project, lead):
    response = session(lead).post("/api/v1/tokens/", {"project": other_project.slug, "name": "x"})
    assert response.status_code == 400 and "project" in response.json()["error"]["fields"]


def test_revoked_token_is_refused_and_revoking_is_audited(project, lead):
    token, secret = token_create(user=lead, project=project, name="ci")
    response = bearer(secret).post(f"/api/v1/tokens/{token.pk}/revoke/")
    assert response.status_code == 200 and response.json()["active"] is False
    assert bearer(secret).get("/api/v1/me/").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoke", object_id=str(token.pk)).count() == 1


def test_others_tokens_are_invisible_but_project_admins_can_revoke_them(
    project, lead, engineer, project_admin
):
    token, _ = token_create(user=engineer, project=project, name="eng-ci")
    assert session(lead).get(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert session(lead).post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 404
    assert session(project_admin).post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200


def test_project_admin_manages_members_and_the_lead_cannot(project, project_admin, lead):
    user_create(username="newbie", password="correct-horse-battery")
    assert session(lead).get("/api/v1/memberships/").status_code == 403
    denied = session(lead).post(
        "/api/v1/memberships/", {"project": project.slug, "username": "newbie", "role": "rater"}
    )
    assert denied.status_code == 403
    client = session(project_admin)
    created = client.post(
        "/api/v1/memberships/", {"project": project.slug, "username": "newbie", "role": "rater"}
    )
    assert created.status_code == 201
    pk = created.json()["id"]
    changed = client.patch(f"/api/v1/memberships/{pk}/", {"role": "engineer"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "engineer"
    event = AuditEvent.objects.filter(action="membership.set", object_id=str(pk)).first()
    assert event.before == {"role": "rater"} and event.after["role"] == "engineer"
    assert client.delete(f"/api/v1/memberships/{pk}/").status_code == 204
    assert not Membership.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.filter(action="membership.remove", object_id=str(pk)).exists()


def test_removing_a_member_revokes_their_project_tokens(project, project_admin, engineer):
    token, secret = token_create(user=engineer, project=project, name="ci")
    membership = Membership.objects.get(user=engineer, project=project)
    assert session(project_admin).delete(f"/api/v1/memberships/{membership.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(secret).get("/api/v1/me/").status_code == 401


def test_the_last_admin_cannot_be_demoted_or_removed(project, project_admin):
    membership = Membership.objects.get(user=project_admin, project=project)
    client = session(project_admin)
    demote = client.patch(f"/api/v1/memberships/{membership.pk}/", {"role": "lead"}, format="json")
    assert demote.status_code == 409
    assert client.delete(f"/api/v1/memberships/{membership.pk}/").status_code == 409
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_list_pagination_takes_a_page_size(project, admin_user):
    for index in range(3):
        token_create(user=admin_user, project=project, name=f"t{index}")
    body = session(admin_user).get("/api/v1/tokens/?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    assert session(admin_user).get("/api/v1/tokens/?page=99").status_code == 404
