from django.urls import path

from evalhub.catalog import views

app_name = "catalog"
urlpatterns = [
    path("<slug:project_slug>/adapters/", views.adapters, name="adapters"),
]
