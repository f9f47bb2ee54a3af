"""Rater-facing pages: onboarding, the queue and the rating form; and the study owner's pages.

Every id in these URLs is an opaque public id: nothing in a rater's address bar names an adapter.
"""

from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.home, name="home"),
    path("s/<str:study_id>/", views.study_start, name="start"),
    path("s/<str:study_id>/next/", views.next_task, name="next"),
    path("s/<str:study_id>/t/<str:task_id>/", views.task_page, name="task"),
    path("s/<str:study_id>/t/<str:task_id>/skip/", views.task_skip, name="skip"),
    path("studies/", views.owner_studies, name="owner-studies"),
    path("studies/<str:study_id>/", views.owner_study, name="owner-study"),
    path("runs/<int:run_id>/new-study/", views.study_new, name="study-new"),
]
