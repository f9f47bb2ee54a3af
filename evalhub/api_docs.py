"""The OpenAPI schema and its Swagger UI pages, and who may read them.

A module of its own: drf-spectacular's views load DRF's settings, which import evalhub.api.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import permissions
from rest_framework.request import Request


def _schema_open_to(user: Any) -> bool:
    return bool(settings.EVALHUB_PUBLIC_API_SCHEMA or (user and user.is_authenticated))


class SchemaAccess(permissions.BasePermission):
    """The schema maps every endpoint: signed-in users (a session or a token) only, unless the
    EVALHUB_PUBLIC_API_SCHEMA setting opens it to anyone."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return _schema_open_to(request.user)


class SchemaView(SpectacularAPIView):
    permission_classes = [SchemaAccess]


# The split view serves Swagger UI's start-up script as its own file (?script), so the docs page
# needs no inline script under the CSP.
_swagger = SpectacularSwaggerSplitView.as_view(url_name="api-schema")


def api_docs(request: HttpRequest) -> HttpResponseBase:
    """Swagger UI (and its start-up script) under the schema's rule; a visitor who is not signed in is
    sent to the login page and back, as for any other page."""
    if not _schema_open_to(request.user):
        return redirect_to_login(request.get_full_path())
    return _swagger(request)
