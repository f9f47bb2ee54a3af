"""PII decisions for suites: screening cases with Presidio, what a version keeps of the findings, and
where screening may run. The one home of these rules.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings

from evalhub.suites.validation import (
    CaseData,
)

if TYPE_CHECKING:
    from evalhub.suites.services.scanning import ScanReport


PII_ACTIONS = ("redact", "keep", "reject")


PII_FIELDS = ("input", "reference")


PII_ROWS_SHOWN = 200


PII_EXCERPT_CHARS = 1500


def _pii_enabled() -> bool:
    return bool(getattr(settings, "EVALHUB_SUITE_PII_SCAN", True))


def screening_in_process() -> bool:
    """Whether a request may screen for PII itself: only where tasks run in process (the embedded
    mode) or screening is off. Elsewhere Presidio and spaCy (about 490 MB) load only in workers, so
    previews are screened by a task and imports that screen are queued."""
    return bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)) or not _pii_enabled()


@dataclass
class KnownFindings:
    """PII spans saved by an earlier screening of the same staged file: rows up to `through`."""

    through: int = 0
    spans: dict[tuple[int, str], list[tuple[str, int, int, float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> KnownFindings:
        known = cls()
        with path.open(encoding="utf-8") as saved:
            for line in saved:
                item = json.loads(line)
                if "through" in item:
                    known.through = int(item["through"])
                else:
                    known.spans[(item["row"], item["field"])] = [
                        (str(t), int(a), int(b), float(sc)) for t, a, b, sc in item["spans"]
                    ]
        return known


def _pii_screen(
    cases: list[CaseData],
    report: ScanReport,
    *,
    redact: bool,
    known: KnownFindings | None = None,
    record: IO[str] | None = None,
) -> None:
    """Find PII in each case's input and reference; record it on the report; redact in place if asked.

    `known` holds the findings of an earlier scan of the same staged file under the same options
    (row, field) -> spans, so confirming an upload does not run the analyzer twice; `record`
    receives this scan's spans (types and offsets only, never the text) for that purpose.
    """
    from metrics.pii import PiiFinding, detect_pii_batch, redact_pii, resolve_overlaps

    texts: list[str] = []
    where: list[tuple[int, str]] = []
    for i, case in enumerate(cases):
        for name in PII_FIELDS:
            value = getattr(case, name)
            if value.strip():
                texts.append(value)
                where.append((i, name))
    if not texts:
        return
    started = time.perf_counter()
    results: list[list[Any]] = [[] for _ in texts]
    fresh = [j for j, (i, _) in enumerate(where) if known is None or cases[i].row > known.through]
    for j, ((i, name), text) in enumerate(zip(where, texts, strict=True)):
        if known is not None and cases[i].row <= known.through:
            results[j] = [
                PiiFinding(t, a, b, text[a:b], sc)
                for t, a, b, sc in known.spans.get((cases[i].row, name), [])
            ]
    if fresh:
        for j, found in zip(fresh, detect_pii_batch([texts[j] for j in fresh], batch_size=64), strict=True):
            results[j] = found
    report.pii_seconds += time.perf_counter() - started
    by_case: dict[int, list[dict[str, Any]]] = {}
    for (i, name), text, found in zip(where, texts, results, strict=True):
        if not found:
            continue
        kept = resolve_overlaps(found)
        if record is not None:
            spans = [[f.entity_type, f.start, f.end, f.score] for f in kept]
            record.write(json.dumps({"row": cases[i].row, "field": name, "spans": spans}) + "\n")
        for f in kept:
            report.pii_entities[f.entity_type] = report.pii_entities.get(f.entity_type, 0) + 1
        by_case.setdefault(i, []).append(
            {
                "field": name,
                "entities": sorted({f.entity_type for f in kept}),
                "findings": [
                    {
                        "entity_type": f.entity_type,
                        "start": f.start,
                        "end": f.end,
                        "text": f.text,
                        "score": round(f.score, 2),
                    }
                    for f in kept
                ],
                "excerpt": text[:PII_EXCERPT_CHARS],
                "redacted": redact_pii(
                    text[:PII_EXCERPT_CHARS], [f for f in kept if f.end <= PII_EXCERPT_CHARS]
                ),
                "truncated": len(text) > PII_EXCERPT_CHARS,
            }
        )
        if redact:
            setattr(cases[i], name, redact_pii(text, kept))
    for i, fields_found in by_case.items():
        report.pii_row_count += 1
        if len(report.pii_rows) < PII_ROWS_SHOWN:
            report.pii_rows.append({"row": cases[i].row, "key": cases[i].key, "fields": fields_found})


def _pii_summary(report: ScanReport) -> dict[str, Any]:
    """What is kept on the version: counts and where, never the found text itself."""
    return {
        "rows_with_pii": report.pii_row_count,
        "entities": report.pii_entities,
        "rows": [
            {
                "row": r["row"],
                "key": r["key"],
                "fields": {f["field"]: f["entities"] for f in r["fields"]},
            }
            for r in report.pii_rows
        ],
        "seconds": round(report.pii_seconds, 3),
        "scanned": report.pii_scanned,
    }
