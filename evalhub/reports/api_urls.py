"""API routes of the reports app under /api/v1/."""

urlpatterns: list = []
