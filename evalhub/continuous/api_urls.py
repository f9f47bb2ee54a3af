from django.urls import path

from evalhub.continuous import api

urlpatterns = [
    path("projects/<slug:slug>/recipe/", api.RecipeView.as_view(), name="api-recipe"),
    path("projects/<slug:slug>/deliveries/", api.DeliveriesView.as_view(), name="api-deliveries"),
    path("verdicts/<str:public_id>/approve/", api.ApproveView.as_view(), name="api-verdict-approve"),
]
