"""Reads of the audit trail, and who may read which part of it."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from evalhub.audit.models import AuditEvent
from evalhub.permissions import admin_projects_for, is_site_admin


def audit_visible_events(*, user: Any, auth: Any = None) -> QuerySet[AuditEvent]:
    """Site admins see every event; project admins see their projects' events (a token: its project's)."""
    events = AuditEvent.objects.select_related("project")
    if is_site_admin(user=user, auth=auth):
        return events
    return events.filter(project__in=admin_projects_for(user=user, auth=auth))


def audit_can_view(*, user: Any, auth: Any = None) -> bool:
    return is_site_admin(user=user, auth=auth) or admin_projects_for(user=user, auth=auth).exists()
