"""Reads about users, projects and roles. Object-level access checks live here, in one place."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from evalhub.accounts.models import ApiToken, Membership, Project, Role

STAFF_ROLES = (Role.ADMIN, Role.LEAD, Role.ENGINEER)


def project_list_for_user(*, user: Any) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def user_role(*, user: Any, project: Project) -> str | None:
    """The user's role in the project; superusers act as admins everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(user=user, project=project).only("role").first()
    return membership.role if membership else None


def user_has_role(*, user: Any, project: Project, roles: tuple[str, ...]) -> bool:
    return user_role(user=user, project=project) in roles


def user_is_rater_only(*, user: Any) -> bool:
    """True for a user whose every membership is a rater one: they see only the rating pages."""
    if not user.is_authenticated or user.is_superuser or user.is_staff:
        return False
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    return roles == {Role.RATER}


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


def token_projects_for_user(*, user: Any) -> QuerySet[Project]:
    """Projects the user may create a token for: any membership; site admins any project."""
    return project_list_for_user(user=user)


def token_list_for_user(*, user: Any, auth: Any = None) -> QuerySet[ApiToken]:
    """The user's own tokens and, for project admins, every token of their projects."""
    tokens = ApiToken.objects.select_related("project", "user").order_by("-created_at")
    if not user.is_authenticated:
        return tokens.none()
    admin_of = Membership.objects.filter(user=user, role=Role.ADMIN).values("project_id")
    visible = tokens if user.is_superuser else tokens.filter(Q(user=user) | Q(project_id__in=admin_of))
    if isinstance(auth, ApiToken):
        visible = visible.filter(project_id=auth.project_id)
    return visible
