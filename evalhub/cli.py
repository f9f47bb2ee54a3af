"""Management-command plumbing: domain errors become a non-zero exit with the user-facing message."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from evalhub.accounts.models import Project
from evalhub.errors import DomainError


def format_domain_error(exc: DomainError) -> str:
    lines = [str(exc)]
    for field, problems in exc.fields.items():
        items = problems if isinstance(problems, list) else [problems]
        lines.extend(f"  {field}: {item}" for item in items)
    return "\n".join(lines)


class DomainCommand(BaseCommand):
    """A command whose `run` may raise DomainError; the error is printed and the exit code is 1."""

    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            return self.run(*args, **options)
        except DomainError as exc:
            raise CommandError(format_domain_error(exc)) from exc

    def run(self, *args: Any, **options: Any) -> str | None:
        raise NotImplementedError

    @staticmethod
    def get_project(slug: str) -> Project:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            known = ", ".join(Project.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"Unknown project {slug!r} (known: {known}).")
        return project

    @staticmethod
    def get_actor(username: str | None) -> Any:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"Unknown user {username!r}.")
        return user
