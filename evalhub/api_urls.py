"""The versioned API: every app adds its routes to /api/v1/ here."""

from django.urls import include, path

urlpatterns = [
    path("", include("evalhub.catalog.api_urls")),
]
