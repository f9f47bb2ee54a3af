"""Rater API routes under /api/v1/rater/ (raters), and the study owners' routes under studies/."""

from django.urls import path

from annotation import api

urlpatterns = [
    path("next", api.NextTaskApi.as_view(), name="rater-next"),
    path("tasks/<str:task_id>/rating", api.RatingSubmitApi.as_view(), name="rater-rating"),
    path("tasks/<str:task_id>/skip", api.TaskSkipApi.as_view(), name="rater-skip"),
    path("progress", api.ProgressApi.as_view(), name="rater-progress"),
    path("assigned-studies", api.AssignedStudiesApi.as_view(), name="rater-studies"),
    path("assigned-studies/<str:study_id>/consent", api.ConsentApi.as_view(), name="rater-consent"),
    path("studies/", api.StudyListCreateApi.as_view(), name="study-list"),
    path("studies/<str:study_id>/", api.StudyDetailApi.as_view(), name="study-detail"),
    path("studies/<str:study_id>/status", api.StudyStatusApi.as_view(), name="study-status"),
]
