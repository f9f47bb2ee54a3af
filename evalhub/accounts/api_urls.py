"""API routes for the signed-in user, projects, memberships and tokens under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from evalhub.accounts.api import MembershipViewSet, MeView, ProjectViewSet, TokenViewSet

router = SimpleRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("tokens", TokenViewSet, basename="api-token")
urlpatterns = [path("me/", MeView.as_view(), name="api-me"), *router.urls]
