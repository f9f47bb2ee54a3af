"""Rater API routes under /api/v1/rater/ (raters), and the study owners' routes under studies/.

The two routes a rater calls for every rating go through annotation.rater_api's lean views, which
hand anything unusual to the DRF view of the same URL (and keep it in the OpenAPI schema)."""

from django.urls import path

from annotation import api, rater_api

urlpatterns = [
    path("next", rater_api.next_task, name="rater-next"),
    path("tasks/<str:task_id>/rating", rater_api.rating_submit, name="rater-rating"),
    path("tasks/<str:task_id>/skip", api.TaskSkipApi.as_view(), name="rater-skip"),
    path("progress", api.ProgressApi.as_view(), name="rater-progress"),
    path("assigned-studies", api.AssignedStudiesApi.as_view(), name="rater-studies"),
    path("assigned-studies/<str:study_id>/consent", api.ConsentApi.as_view(), name="rater-consent"),
    path("studies/", api.StudyListCreateApi.as_view(), name="study-list"),
    path("studies/<str:study_id>/", api.StudyDetailApi.as_view(), name="study-detail"),
    path("studies/<str:study_id>/status", api.StudyStatusApi.as_view(), name="study-status"),
]
