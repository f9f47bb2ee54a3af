"""Reads about users, projects and roles. Object-level access checks live here, in one place."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from evalhub.accounts.models import Membership, Project, Role

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
