"""Reads of the audit trail, and who may read which part of it."""

from __future__ import annotations

import json
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


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def audit_changes(*, before: Any, after: Any) -> list[dict[str, str]]:
    """An event's before and after as readable lines: one per key that was added, removed or changed
    (`status: draft → approved`); a value that is not an object is one line under the key "value"."""
    if not isinstance(before, dict) and before is not None:
        before = {"value": before}
    if not isinstance(after, dict) and after is not None:
        after = {"value": after}
    old, new = before or {}, after or {}
    lines: list[dict[str, str]] = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key in old and key in new:
            if old[key] == new[key]:
                continue
            lines.append({"key": str(key), "kind": "changed", "before": _shown(old[key]), "after": _shown(new[key])})
        elif key in new:
            lines.append({"key": str(key), "kind": "added", "before": "", "after": _shown(new[key])})
        else:
            lines.append({"key": str(key), "kind": "removed", "before": _shown(old[key]), "after": ""})
    return lines
