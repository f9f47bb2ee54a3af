"""The audit trail's filters, shared by the web page, its exports and the API."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from evalhub.audit.models import AuditEvent

DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="iexact", label="Actor", help_text="Username, or 'system'."
    )
    action = django_filters.CharFilter(
        method="filter_action",
        label="Action",
        help_text="An action (`api_token.create`), a family (`api_token`) or a last part (`consent`).",
    )
    object_type = django_filters.CharFilter(
        field_name="object_type", label="Object type", help_text="For example `catalog.adapter`."
    )
    object_id = django_filters.CharFilter(field_name="object_id", label="Object id")
    project = django_filters.CharFilter(
        field_name="project__slug", label="Project", help_text="Project slug."
    )
    date_from = django_filters.DateFilter(
        field_name="at", lookup_expr="date__gte", label="From (date)", widget=DATE_WIDGET
    )
    date_to = django_filters.DateFilter(
        field_name="at", lookup_expr="date__lte", label="To (date)", widget=DATE_WIDGET
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "object_id", "project", "date_from", "date_to"]

    def filter_action(self, queryset: QuerySet[AuditEvent], name: str, value: Any) -> QuerySet[AuditEvent]:
        value = str(value).strip()
        return queryset.filter(
            Q(action=value) | Q(action__startswith=f"{value}.") | Q(action__endswith=f".{value}")
        )

    def with_choices(self) -> AuditEventFilter:
        """Offer what the visible trail holds as choices (the web page): the fields stay free text for the
        API and the exports, so a value with no event yet filters to nothing instead of failing."""
        events = self.queryset.order_by()
        actions = sorted(set(events.values_list("action", flat=True)))
        families = sorted({a.split(".", 1)[0] for a in actions if "." in a} - set(actions))
        self._select("actor", sorted(set(events.values_list("actor_label", flat=True)) - {""}))
        self._select("action", actions, extra=("Families (every action of)", families))
        self._select("object_type", sorted(set(events.values_list("object_type", flat=True))))
        self._select(
            "project",
            sorted(set(events.exclude(project=None).values_list("project__slug", flat=True))),
        )
        return self

    def _select(self, name: str, values: list[str], extra: tuple[str, list[str]] | None = None) -> None:
        field = self.form.fields[name]
        current = self.form[name].value() or ""
        choices: list[Any] = [("", "Any")]
        if extra and extra[1]:
            choices.append((extra[0], [(v, f"{v}.*") for v in extra[1]]))
        choices += [(v, v) for v in values]
        if current and current not in values and not (extra and current in extra[1]):
            choices.append((current, current))  # keep a typed-in value (a link, an old bookmark) visible
        field.widget = forms.Select(choices=choices)
