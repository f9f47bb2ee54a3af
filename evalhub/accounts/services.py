"""Writes for projects, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from evalhub.accounts.models import ApiToken, Membership, Project, Role
from evalhub.audit.services import audit_record
from evalhub.errors import ValidationFailed

TOKEN_PREFIX = "ehk"  # noqa: S105  (a public marker, not a secret)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def project_create(*, name: str, description: str = "", actor: Any = None) -> Project:
    slug = slugify(name)
    if not slug:
        raise ValidationFailed(
            "A project needs a name with letters or digits.", fields={"name": ["Invalid name."]}
        )
    with transaction.atomic():
        project = Project.objects.create(name=name, slug=slug, description=description)
        audit_record(actor=actor, action="project.create", obj=project, project=project, after={"name": name})
    return project


def membership_set(*, project: Project, user: Any, role: str, actor: Any = None) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(
            f"Unknown role {role!r}.", fields={"role": [f"One of {', '.join(Role.values)}."]}
        )
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            user=user, project=project, defaults={"role": role}
        )
        before = None if created else {"role": membership.role}
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            action="membership.set",
            obj=membership,
            project=project,
            before=before,
            after={"user": user.get_username(), "role": role},
        )
    return membership


def token_create(*, user: Any, project: Project, name: str, actor: Any = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is shown once and never stored."""
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, project=project, name=name, prefix=prefix, key_hash=hash_token(secret)
        )
        audit_record(
            actor=actor or user,
            action="api_token.create",
            obj=token,
            project=project,
            after={"name": name, "prefix": prefix},
        )
    return token, secret


def token_revoke(*, token: ApiToken, actor: Any = None) -> ApiToken:
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="api_token.revoke",
            obj=token,
            project=token.project,
            after={"prefix": token.prefix},
        )
    return token


def user_create(*, username: str, password: str, email: str = "", is_superuser: bool = False) -> Any:
    user_model = get_user_model()
    if is_superuser:
        return user_model.objects.create_superuser(username=username, password=password, email=email)
    return user_model.objects.create_user(username=username, password=password, email=email)
