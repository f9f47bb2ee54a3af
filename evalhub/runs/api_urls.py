"""API routes of the runs app under /api/v1/."""

from rest_framework.routers import SimpleRouter

from evalhub.runs.api import RunViewSet

router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")
urlpatterns = router.urls
