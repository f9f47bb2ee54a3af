"""Forms of the account pages: the throttled login, token creation and project membership."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from evalhub.accounts.lockout import client_ip, login_locked_for
from evalhub.accounts.models import ApiToken, Project, Role


class LoginForm(AuthenticationForm):
    """The usual login form; a locked username and address get a message that says so and for how long."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed log-ins from your address for this account. Try again in %(minutes)d minutes.",
    }

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            seconds = login_locked_for(
                username=self.cleaned_data.get("username") or "", ip=client_ip(self.request)
            )
            if seconds:
                raise ValidationError(
                    self.error_messages["locked"], code="locked", params={"minutes": math.ceil(seconds / 60)}
                ) from None
            raise

    @property
    def is_locked(self) -> bool:
        return any(error.code == "locked" for error in self.errors.as_data().get("__all__", []))


class TokenCreateForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What uses it, for example “training pipeline CI”.",
    )

    lifetime_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        help_text="It stops working after this many days; blank for the site's default.",
    )

    def __init__(self, *args: Any, projects: QuerySet[Project], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]
        # The bounds are accounts.services.check_token_create's; these only help the browser.
        lifetime = self.fields["lifetime_days"]
        lifetime.initial = settings.EVALHUB_TOKEN_LIFETIME_DAYS
        lifetime.widget.attrs.update(min=1, max=settings.EVALHUB_TOKEN_MAX_LIFETIME_DAYS)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing user, or a new person's username.")
    email = forms.EmailField(
        required=False, help_text="For a new person: they get a link there to set their password."
    )
    # Least privilege first: adding someone as a rater must not need a change of the default.
    role = forms.ChoiceField(choices=Role.choices, initial=Role.RATER)
