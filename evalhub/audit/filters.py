"""The audit trail's filters, shared by the web page, its exports and the API."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet

from evalhub.audit.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="iexact", label="Actor", help_text="Username, or 'system'."
    )
    action = django_filters.CharFilter(
        method="filter_action",
        label="Action",
        help_text="An action (`api_token.create`) or a family of actions (`api_token`).",
    )
    object_type = django_filters.CharFilter(
        field_name="object_type", label="Object type", help_text="For example `catalog.adapter`."
    )
    object_id = django_filters.CharFilter(field_name="object_id", label="Object id")
    project = django_filters.CharFilter(
        field_name="project__slug", label="Project", help_text="Project slug."
    )
    date_from = django_filters.DateFilter(field_name="at", lookup_expr="date__gte", label="From (date)")
    date_to = django_filters.DateFilter(field_name="at", lookup_expr="date__lte", label="To (date)")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "object_id", "project", "date_from", "date_to"]

    def filter_action(self, queryset: QuerySet[AuditEvent], name: str, value: Any) -> QuerySet[AuditEvent]:
        value = str(value).strip()
        return queryset.filter(Q(action=value) | Q(action__startswith=f"{value}."))
