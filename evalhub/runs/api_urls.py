"""API routes of the runs app under /api/v1/."""

urlpatterns: list = []
