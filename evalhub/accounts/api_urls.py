"""API routes for projects, memberships and tokens under /api/v1/."""

urlpatterns: list = []
