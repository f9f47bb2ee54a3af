"""Web pages of the suites app."""

from django.urls import path  # noqa: F401

app_name = "suites"
urlpatterns: list = []
