"""Web pages of the runs app."""

from django.urls import path  # noqa: F401

app_name = "runs"
urlpatterns: list = []
