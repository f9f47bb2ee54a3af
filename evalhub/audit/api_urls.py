"""API routes of the audit app under /api/v1/."""

urlpatterns: list = []
