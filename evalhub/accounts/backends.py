"""The model backend, refusing a locked username and address before it checks the password."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from evalhub.accounts.lockout import client_ip, login_locked_for


class LockoutModelBackend(ModelBackend):
    """Every login form (ours, the admin's) goes through here, so a lock cannot be side-stepped."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if request is not None and username and login_locked_for(username=username, ip=client_ip(request)):
            # PermissionDenied stops every other backend too.
            raise PermissionDenied("Too many failed log-ins.")
        return super().authenticate(request, username=username, password=password, **kwargs)
