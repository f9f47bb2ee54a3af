from rest_framework.routers import SimpleRouter

from evalhub.catalog.api import AdapterViewSet, BaseModelViewSet

router = SimpleRouter()
router.register("base-models", BaseModelViewSet, basename="base-model")
router.register("adapters", AdapterViewSet, basename="adapter")
urlpatterns = router.urls
