"""Template context shared by every page."""

from typing import Any

from django.http import HttpRequest

from evalhub.accounts.selectors import user_is_rater_only


def navigation(request: HttpRequest) -> dict[str, Any]:
    user: Any = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "nav_is_staff": bool(signed_in and user.is_staff),
        "nav_is_rater_only": bool(signed_in and user_is_rater_only(user=user)),
    }
