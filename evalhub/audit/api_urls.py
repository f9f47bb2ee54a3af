"""API routes of the audit app under /api/v1/."""

from rest_framework.routers import SimpleRouter

from evalhub.audit.api import AuditEventViewSet

router = SimpleRouter()
router.register("audit-events", AuditEventViewSet, basename="audit-event")
urlpatterns = router.urls
