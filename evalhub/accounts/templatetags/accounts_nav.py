"""Template tags for links that only some users may follow: the API tokens page, a project's members.

They ask the same selectors as the pages themselves, so a link is shown exactly when its page would
let the user in.
"""

from __future__ import annotations

from typing import Any

from django import template

from evalhub.accounts.selectors import token_projects_for_user
from evalhub.permissions import admin_projects_for

register = template.Library()


@register.simple_tag
def can_create_tokens(user: Any) -> bool:
    """True when the tokens page offers the user a project to create a token for."""
    return bool(user.is_authenticated and token_projects_for_user(user=user).exists())


@register.simple_tag
def admin_project_ids(user: Any) -> set[int]:
    """Ids of the projects whose members the user manages (one query for the whole dashboard)."""
    if not user.is_authenticated:
        return set()
    return set(admin_projects_for(user=user).values_list("pk", flat=True))
