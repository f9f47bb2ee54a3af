"""Read-only API over the audit trail: site admins see all of it, project admins their projects'."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from evalhub.audit.filters import AuditEventFilter
from evalhub.audit.models import AuditEvent
from evalhub.audit.selectors import audit_visible_events
from evalhub.permissions import ProjectAdminPermission, is_site_admin


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_label", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "project",
            "before",
            "after",
            "note",
        ]
        read_only_fields = fields


class AuditPermission(ProjectAdminPermission):
    message = "Only admins can read the audit trail."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_site_admin(user=request.user, auth=request.auth) or super().has_permission(request, view)


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet[AuditEvent]):
    """The audit trail, newest first. Filter by actor, action (or action family), object, project, dates."""

    serializer_class = AuditEventSerializer
    permission_classes = [AuditPermission]
    filterset_class = AuditEventFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_visible_events(user=self.request.user, auth=self.request.auth)
