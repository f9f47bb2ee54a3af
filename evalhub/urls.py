"""Root URLs: the web UI of each app, the admin, and the versioned API with its schema and docs."""

from django.contrib import admin
from django.urls import include, path

from evalhub import views
from evalhub.api_docs import SchemaView, api_docs
from evalhub.ops import views as ops_views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("evalhub.accounts.urls")),
    path("p/", include("evalhub.catalog.urls")),
    path("p/", include("evalhub.suites.urls")),
    path("p/", include("evalhub.runs.urls")),
    path("p/", include("evalhub.reports.urls")),
    path("p/", include("evalhub.continuous.urls")),
    path("audit/", include("evalhub.audit.urls")),
    path("rate/", include("annotation.urls")),
    path("api/v1/", include("evalhub.api_urls")),
    # Both need a login unless EVALHUB_PUBLIC_API_SCHEMA opens them (evalhub.api_docs).
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),
]
