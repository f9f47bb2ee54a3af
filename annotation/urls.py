"""Rater-facing pages: onboarding, the queue and the rating form."""

from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.home, name="home"),
]
