"""The versioned API: every app adds its routes to /api/v1/ here."""

from django.urls import include, path

urlpatterns = [
    path("", include("evalhub.accounts.api_urls")),
    path("", include("evalhub.catalog.api_urls")),
    path("", include("evalhub.suites.api_urls")),
    path("", include("evalhub.runs.api_urls")),
    path("", include("evalhub.reports.api_urls")),
    path("", include("evalhub.audit.api_urls")),
    path("rater/", include("annotation.api_urls")),
]
