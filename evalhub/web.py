"""What every web view shares: the project a request names, and the web's one mapping of domain errors.

Services raise `evalhub.errors.DomainError` with a message for the user; the API maps it in
`evalhub/api.py`, the CLI in `evalhub/cli.py`, and web views here: as an error page (`domain_error_page`),
as errors on the form being submitted (`form_errors`) or as a message on the next page (`message_errors`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from evalhub.accounts.models import Project
from evalhub.errors import DomainError
from evalhub.permissions import READ_ROLES, projects_for

View = TypeVar("View", bound=Callable[..., HttpResponse])


def project_for_request(request: HttpRequest, slug: str, *, roles: tuple[str, ...] = READ_ROLES) -> Project:
    """The project `slug` when the user holds one of `roles` in it; else 404, which does not tell a project
    the user may not see from one that does not exist."""
    return get_object_or_404(projects_for(user=request.user, roles=roles), slug=slug)


def domain_error_page(template: str) -> Callable[[View], View]:
    """A DomainError escaping the view becomes `template` rendered with its message, at the error's status."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as exc:
                return render(request, template, {"message": str(exc)}, status=exc.http_status)

        return wrapped  # type: ignore[return-value]

    return decorate


def _field_lines(exc: DomainError, skip: set[str]) -> list[str]:
    lines: list[str] = []
    for field, problems in exc.fields.items():
        if field not in skip:
            items = problems if isinstance(problems, list) else [problems]
            lines.extend(f"{field}: {item}" for item in items)
    return lines


@contextmanager
def form_errors(form: forms.BaseForm) -> Iterator[None]:
    """Run the block; a DomainError it raises lands on `form` and the code after the block runs.

    Field problems go on the form's own fields where it has them; the message and any other field's
    problems go on the form as a whole. Use it as ``with form_errors(form): ...; return redirect(...)``,
    then render the form again after the block.
    """
    try:
        yield
    except DomainError as exc:
        on_form = {name for name in exc.fields if name in form.fields}
        for name in on_form:
            problems = exc.fields[name]
            for problem in problems if isinstance(problems, list) else [problems]:
                form.add_error(name, str(problem))
        form.add_error(None, "\n".join([str(exc), *_field_lines(exc, on_form)]))


@contextmanager
def message_errors(request: HttpRequest) -> Iterator[None]:
    """Run the block; a DomainError it raises becomes an error message on the next page, and the code
    after the block runs (usually the redirect the block would have made)."""
    try:
        yield
    except DomainError as exc:
        messages.error(request, str(exc))
