"""API routes of the suites app under /api/v1/."""

urlpatterns: list = []
