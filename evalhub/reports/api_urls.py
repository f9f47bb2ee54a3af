"""API routes of the reports app under /api/v1/."""

from django.urls import path

from evalhub.reports import api

urlpatterns = [
    path("runs/<int:run_id>/report", api.RunReportView.as_view(), name="run-report"),
    path("gate-policies", api.GatePolicyListView.as_view(), name="gate-policy-list"),
    path("gate-policies/metrics", api.GateMetricsView.as_view(), name="gate-metrics"),
    path("gate-policies/<int:pk>", api.GatePolicyDetailView.as_view(), name="gate-policy-detail"),
    path("verdicts", api.VerdictCreateView.as_view(), name="verdict-create"),
    path("verdicts/<str:public_id>", api.VerdictDetailView.as_view(), name="verdict-detail"),
]
