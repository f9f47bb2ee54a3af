"""Writes for projects, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from evalhub.accounts.models import ApiToken, Membership, Project, Role
from evalhub.audit.services import audit_record
from evalhub.errors import Conflict, ValidationFailed

TOKEN_PREFIX = "ehk"  # noqa: S105  (a public marker, not a secret)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def project_create(*, name: str, description: str = "", actor: Any = None) -> Project:
    slug = slugify(name)
    if not slug:
        raise ValidationFailed(
            "A project needs a name with letters or digits.", fields={"name": ["Invalid name."]}
        )
    try:
        with transaction.atomic():
            project = Project.objects.create(name=name, slug=slug, description=description)
            audit_record(
                actor=actor, action="project.create", obj=project, project=project, after={"name": name}
            )
    except IntegrityError as exc:
        raise Conflict(
            f"A project named {name!r} (or with the address {slug!r}) already exists.",
            fields={"name": ["Already exists."]},
        ) from exc
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
        if not created:
            check_membership_change(membership=membership, role=role)
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


def token_create(
    *, user: Any, project: Project, name: str, lifetime_days: int | None = None, actor: Any = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is shown once and never stored. It expires
    after `lifetime_days` (default EVALHUB_TOKEN_LIFETIME_DAYS; check_token_create bounds it)."""
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    days = settings.EVALHUB_TOKEN_LIFETIME_DAYS if lifetime_days is None else lifetime_days
    expires_at = timezone.now() + timedelta(days=days)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            project=project,
            name=name,
            prefix=prefix,
            key_hash=hash_token(secret),
            expires_at=expires_at,
        )
        audit_record(
            actor=actor or user,
            action="api_token.create",
            obj=token,
            project=project,
            after={"name": name, "prefix": prefix, "expires_at": expires_at.isoformat()},
        )
    return token, secret


def token_revoke(*, token: ApiToken, actor: Any = None) -> ApiToken:
    """Revoke a token; revoking a revoked token changes nothing and records nothing."""
    if token.revoked_at is not None:
        return token
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
    """Create a user whose password passes AUTH_PASSWORD_VALIDATORS (length, common, numeric, similarity)."""
    user_model = get_user_model()
    try:
        password_validation.validate_password(password, user_model(username=username, email=email))
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), fields={"password": exc.messages}) from exc
    if is_superuser:
        return user_model.objects.create_superuser(username=username, password=password, email=email)
    return user_model.objects.create_user(username=username, password=password, email=email)


def _admin_count(project: Project) -> int:
    return Membership.objects.filter(project=project, role=Role.ADMIN).count()


def check_membership_change(*, membership: Membership, role: str | None) -> None:
    """Refuse to demote or remove a project's last admin (`role=None` means removal)."""
    if membership.role == Role.ADMIN and role != Role.ADMIN and _admin_count(membership.project) == 1:
        raise Conflict(
            "A project keeps at least one admin: add another admin first.",
            fields={"role": ["The project's last admin."]},
        )


def membership_remove(*, membership: Membership, actor: Any = None) -> None:
    """Remove a member and revoke their tokens for the project, in one transaction."""
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update().select_related("project", "user").get(pk=membership.pk)
        )
        check_membership_change(membership=membership, role=None)
        project, user = membership.project, membership.user
        for token in ApiToken.objects.filter(user=user, project=project, revoked_at__isnull=True):
            token_revoke(token=token, actor=actor)
        audit_record(
            actor=actor,
            action="membership.remove",
            obj=membership,
            project=project,
            before={"user": user.get_username(), "role": membership.role},
        )
        membership.delete()


def check_token_create(*, user: Any, project: Project, name: str, lifetime_days: int | None = None) -> None:
    """A token is for a project the user belongs to (any role; site admins: any project), and lives
    between one day and EVALHUB_TOKEN_MAX_LIFETIME_DAYS."""
    longest = settings.EVALHUB_TOKEN_MAX_LIFETIME_DAYS
    if lifetime_days is not None and not 1 <= lifetime_days <= longest:
        raise ValidationFailed(
            f"A token lives between 1 and {longest} days.",
            fields={"lifetime_days": [f"Between 1 and {longest}."]},
        )
    if not name.strip():
        raise ValidationFailed("A token needs a name.", fields={"name": ["This field is required."]})
    if len(name) > ApiToken._meta.get_field("name").max_length:  # type: ignore[operator]
        raise ValidationFailed("The token name is too long.", fields={"name": ["At most 120 characters."]})
    if not user.is_superuser and not Membership.objects.filter(user=user, project=project).exists():
        raise ValidationFailed(
            "You can only create tokens for your own projects.",
            fields={"project": ["Unknown project, or you are not a member."]},
        )


def check_member_add(*, username: str, email: str) -> Any:
    """The existing active user named `username`, or None when a new person will be created; refuse a new
    person without an email address (the set-password link has nowhere to go) or with a bad username."""
    user_model = get_user_model()
    existing = user_model.objects.filter(username=username).first()
    if existing is not None:
        if not existing.is_active:
            raise ValidationFailed(
                f"{username} is deactivated: a site admin must reactivate them first.",
                fields={"username": ["Deactivated user."]},
            )
        return existing
    if not email:
        message = f"No user named {username} yet: give an email address to send them a set-password link."
        raise ValidationFailed(message, fields={"email": [message]})
    try:
        user_model.username_validator(username)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), fields={"username": exc.messages}) from exc
    return None


def member_add(
    *, project: Project, username: str, email: str, role: str, set_password_url: Any, actor: Any = None
) -> tuple[Membership, bool]:
    """Give `username` the `role` in `project`, creating the person first when they do not exist.

    A new person gets no usable password and an email (through Django's mail backend) with a link to set
    one: `set_password_url(uidb64, token)` makes the absolute link from Django's password-reset token, which
    works once and expires after PASSWORD_RESET_TIMEOUT. Returns the membership and whether the person is new.
    """
    from django.contrib.auth.tokens import default_token_generator
    from django.core.mail import send_mail
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    existing = check_member_add(username=username, email=email)
    with transaction.atomic():
        user = existing
        if user is None:
            user = get_user_model().objects.create_user(username=username, email=email, password=None)
            audit_record(actor=actor, action="user.invite", obj=user, project=project,
                         after={"username": username, "email": email, "role": role})
        membership = membership_set(project=project, user=user, role=role, actor=actor)
    if existing is None:
        link = set_password_url(urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user))
        send_mail(
            subject=f"You were added to {project.name} on evalhub",
            message=(
                f"Hello {username},\n\nYou were added to the project {project.name} as {Role(role).label.lower()}.\n"
                f"Choose your password here (the link works once):\n\n{link}\n\n"
                f"Then log in with the username {username}.\n"
            ),
            from_email=None,
            recipient_list=[email],
        )
    return membership, existing is None
