"""API routes of the suites app under /api/v1/."""

from rest_framework.routers import SimpleRouter

from evalhub.suites.api import CaseViewSet, SuiteUploadViewSet, SuiteVersionViewSet, SuiteViewSet

router = SimpleRouter()
router.register("suites", SuiteViewSet, basename="suite")
router.register("suite-versions", SuiteVersionViewSet, basename="suite-version")
router.register("cases", CaseViewSet, basename="case")
router.register("suite-uploads", SuiteUploadViewSet, basename="suite-upload")
urlpatterns = router.urls
