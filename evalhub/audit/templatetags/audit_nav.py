"""The Audit link in the navigation: shown exactly when the audit page would let the user in."""

from __future__ import annotations

from typing import Any

from django import template

from evalhub.audit.selectors import audit_can_view

register = template.Library()


@register.simple_tag
def can_read_audit(user: Any) -> bool:
    return bool(user.is_authenticated and audit_can_view(user=user))
