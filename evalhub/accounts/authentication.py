"""Bearer-token authentication for the API: `Authorization: Bearer ehk_<prefix>_<secret>`.

`request.auth` is the ApiToken, so views can restrict a token to its project. A revoked or expired
token, or one whose user is deactivated, gets a 401 that says which; each use is recorded
(`last_used_at`, shown on the tokens page and in the API).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from evalhub.accounts.models import ApiToken
from evalhub.accounts.services import hash_token


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] not in (self.keyword, "Token"):
            return None
        token = (
            ApiToken.objects.select_related("user", "project").filter(key_hash=hash_token(parts[1])).first()
        )
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.is_expired(now):
            raise exceptions.AuthenticationFailed(
                f"This token expired on {token.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC. "
                "Create a new one on the API tokens page."
            )
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
