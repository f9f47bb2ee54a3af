"""Project-scoped access for the API and the web views, in one place.

Staff roles (admin, ML lead, engineer) read a project's catalogue, suites, runs and reports; engineers
and above write them; raters reach only the annotation endpoints. Project admins also manage members
and read their project's audit trail. A token is limited to its project, whatever roles its user
holds elsewhere, on every endpoint (the raters' rule is annotation.selectors.access_condition).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import permissions, serializers
from rest_framework.request import Request

from evalhub.accounts.models import ApiToken, Membership, Project, Role

READ_ROLES = (Role.ADMIN, Role.LEAD, Role.ENGINEER)
WRITE_ROLES = (Role.ADMIN, Role.LEAD, Role.ENGINEER)
ADMIN_ROLES = (Role.ADMIN,)
ALL_ROLES = (Role.ADMIN, Role.LEAD, Role.ENGINEER, Role.RATER)
#: Who approves an adapter from a GO verdict (evalhub.continuous.recipes.adapter_approve).
APPROVE_ROLES = (Role.ADMIN, Role.LEAD)


def projects_for(*, user: Any, auth: Any = None, roles: tuple[str, ...] = READ_ROLES) -> QuerySet[Project]:
    """Projects where the user holds one of the roles (narrowed to the token's project for token auth)."""
    if not user or not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        projects = Project.objects.all()
    else:
        projects = Project.objects.filter(
            pk__in=Membership.objects.filter(user=user, role__in=roles).values("project_id")
        )
    if isinstance(auth, ApiToken):
        projects = projects.filter(pk=auth.project_id)
    return projects


def writable_project(request: Request, slug: str) -> Project:
    """The project named by `slug` in an API body, if the caller may write to it; else a field error."""
    project = projects_for(user=request.user, auth=request.auth, roles=WRITE_ROLES).filter(slug=slug).first()
    if project is None:
        raise serializers.ValidationError({"project": ["Unknown project, or you cannot write to it."]})
    return project


def project_in_path(request: Request, slug: str, *, write: bool = False) -> Project:
    """The project named by `slug` in an API path, if the caller may read it (with `write`, write to it);
    else 404, so a project the caller cannot reach looks like one that does not exist."""
    projects = projects_for(user=request.user, auth=request.auth, roles=WRITE_ROLES if write else READ_ROLES)
    return get_object_or_404(projects, slug=slug)


def admin_projects_for(*, user: Any, auth: Any = None) -> QuerySet[Project]:
    """Projects whose members and audit trail the user manages."""
    return projects_for(user=user, auth=auth, roles=ADMIN_ROLES)


def is_site_admin(*, user: Any, auth: Any = None) -> bool:
    """A superuser acting through a session: tokens never carry site-wide powers."""
    return bool(user and user.is_authenticated and user.is_superuser and not isinstance(auth, ApiToken))


class ProjectRolePermission(permissions.BasePermission):
    """Reads need a staff role in some project; writes need a write role in the object's project."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        project_id = getattr(obj, "project_id", None)
        if project_id is None:
            return False
        roles = READ_ROLES if request.method in permissions.SAFE_METHODS else WRITE_ROLES
        return projects_for(user=request.user, auth=request.auth, roles=roles).filter(pk=project_id).exists()


class ProjectAdminPermission(permissions.BasePermission):
    """The user administers at least one project (a superuser session, or an admin membership)."""

    message = "Only project admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return admin_projects_for(user=request.user, auth=request.auth).exists()


class SessionOnlyPermission(permissions.BasePermission):
    """Refuses token authentication: for actions a leaked token must not be able to perform."""

    message = "This action needs an interactive login, not an API token."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.auth, ApiToken)
