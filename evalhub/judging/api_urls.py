from django.urls import path

from evalhub.judging import api

urlpatterns = [
    path(
        "projects/<slug:slug>/judge-endpoints/", api.JudgeEndpointsView.as_view(), name="api-judge-endpoints"
    ),
    path(
        "projects/<slug:slug>/judge-endpoints/<str:name>/",
        api.JudgeEndpointView.as_view(),
        name="api-judge-endpoint",
    ),
]
