"""Web pages of the reports app."""

from django.urls import path

from evalhub.reports import views

app_name = "reports"
urlpatterns = [
    path("<slug:project_slug>/runs/<int:run_id>/report/", views.report, name="report"),
    path("<slug:project_slug>/runs/<int:run_id>/report/state.json", views.report_state, name="state"),
    path("<slug:project_slug>/runs/<int:run_id>/report/plot/<slug:name>.png", views.report_plot, name="plot"),
    path("<slug:project_slug>/runs/<int:run_id>/report/export.<str:fmt>", views.report_export, name="export"),
    path("<slug:project_slug>/runs/<int:run_id>/report/cases/<int:case_id>/", views.case_detail, name="case"),
    path("<slug:project_slug>/runs/<int:run_id>/report/freeze", views.verdict_freeze, name="freeze"),
    path("<slug:project_slug>/verdicts/<str:public_id>/", views.verdict, name="verdict"),
    path("<slug:project_slug>/gate-policies/", views.policies, name="policies"),
    path("<slug:project_slug>/trend/", views.trend, name="trend"),
    path("<slug:project_slug>/trend/plot.png", views.trend_plot, name="trend-plot"),
]
