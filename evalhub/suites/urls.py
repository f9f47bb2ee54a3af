"""Web pages of the suites app."""

from django.urls import path

from evalhub.suites import views

app_name = "suites"
urlpatterns = [
    path("<slug:project_slug>/suites/", views.suite_list, name="list"),
    path("<slug:project_slug>/suites/upload/", views.upload, name="upload"),
    path("<slug:project_slug>/suites/uploads/<uuid:upload_id>/", views.preview, name="preview"),
    path("<slug:project_slug>/suites/uploads/<uuid:upload_id>/discard/", views.discard, name="discard"),
    path("<slug:project_slug>/suites/<int:suite_id>/", views.detail, name="detail"),
    path(
        "<slug:project_slug>/suites/<int:suite_id>/v<int:number>/export.<str:kind>",
        views.export,
        name="export",
    ),
]
