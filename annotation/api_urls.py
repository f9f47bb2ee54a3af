"""Rater API routes under /api/v1/rater/."""

urlpatterns: list = []
