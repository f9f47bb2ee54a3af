"""What the Members page shows about rating: each member's consent to the project's open studies.

A template tag, so the accounts app (below annotation in the layers) shows it without importing annotation.
"""

from __future__ import annotations

from typing import Any

from django import template

from annotation.selectors import ConsentStatus
from annotation.selectors import member_consent as _member_consent

register = template.Library()


@register.simple_tag
def member_consent(membership: Any) -> ConsentStatus:
    return _member_consent(project=membership.project, user=membership.user)
