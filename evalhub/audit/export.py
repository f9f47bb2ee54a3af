"""CSV and JSON exports of the audit trail, streamed so a long trail never sits in memory.

CSV cells that a spreadsheet would read as a formula get a leading apostrophe (CWE-1236).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from evalhub.audit.models import AuditEvent

COLUMNS = ["id", "at", "actor", "action", "object_type", "object_id", "project", "before", "after", "note"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "at": event.at.isoformat(),
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "project": event.project.slug if event.project_id and event.project else None,
        "before": event.before,
        "after": event.after,
        "note": event.note,
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    return neutralise(str(value))


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for event in events:
        row = event_row(event)
        yield writer.writerow([_cell(row[column]) for column in COLUMNS])


def json_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    yield "["
    for index, event in enumerate(events):
        yield ("," if index else "") + json.dumps(event_row(event), cls=DjangoJSONEncoder)
    yield "]"
