"""Web pages of the runs app."""

from django.urls import path

from evalhub.runs import views

app_name = "runs"
urlpatterns = [
    path("<slug:project_slug>/runs/", views.run_list, name="list"),
    path("<slug:project_slug>/runs/new/", views.run_new, name="new"),
    path("<slug:project_slug>/runs/<int:run_id>/", views.run_detail, name="detail"),
    path("<slug:project_slug>/runs/<int:run_id>/outputs/", views.run_outputs, name="outputs"),
    path("<slug:project_slug>/runs/<int:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("<slug:project_slug>/runs/<int:run_id>/resume/", views.run_resume, name="resume"),
    path("<slug:project_slug>/runs/<int:run_id>/score/", views.run_score, name="score"),
]
