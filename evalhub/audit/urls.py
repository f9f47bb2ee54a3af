"""Web pages of the audit app."""

from django.urls import path

from evalhub.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.events, name="events"),
    path("export.<str:fmt>", views.export, name="export"),
]
