from django.urls import path

from evalhub.continuous import views

app_name = "continuous"
urlpatterns = [
    path("<slug:project_slug>/continuous/", views.recipe, name="recipe"),
    path("<slug:project_slug>/continuous/notifications/", views.notifications_save, name="notifications"),
    path("<slug:project_slug>/continuous/schedules/", views.schedule_save, name="schedule"),
    path("<slug:project_slug>/continuous/deliveries/", views.deliveries, name="deliveries"),
    path("<slug:project_slug>/adapters/<int:adapter_id>/timeline/", views.timeline, name="timeline"),
    path("<slug:project_slug>/verdicts/<str:public_id>/approve/", views.approve, name="approve"),
]
