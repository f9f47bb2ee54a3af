"""The versioned API: every app adds its routes to /api/v1/ here."""

from django.urls import include, path

urlpatterns = [
    # First: a rater's browser calls these for every rating, and Django tries patterns in order
    # (behind the other apps' routes they cost ~14% of the rater path's CPU in py-spy profiles).
    path("rater/", include("annotation.api_urls")),
    path("", include("evalhub.accounts.api_urls")),
    path("", include("evalhub.catalog.api_urls")),
    path("", include("evalhub.suites.api_urls")),
    path("", include("evalhub.runs.api_urls")),
    path("", include("evalhub.reports.api_urls")),
    path("", include("evalhub.audit.api_urls")),
    path("", include("evalhub.continuous.api_urls")),
    path("", include("evalhub.judging.api_urls")),
]
