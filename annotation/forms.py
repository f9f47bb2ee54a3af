"""Translating the HTML rating form to the service payload and back (for re-showing what was entered).

The API sends the payload as JSON directly; the form flattens it into named fields so the page works
with plain HTML and the script only adds comfort (shortcuts, span selection, timing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from annotation.blinding import BlindTask
from annotation.rubric import PREFERENCE_LABELS

SKIP_REASONS = (
    ("expertise", "Outside my expertise"),
    ("broken", "The input or an output is broken or unreadable"),
    ("identical", "The outputs are identical"),
    ("other", "Another reason"),
)


def score_field(key: str, side: str) -> str:
    return f"score__{key}__{side}"


def rating_payload_from_post(post: Mapping[str, Any], *, sides: tuple[str, ...]) -> dict[str, Any]:
    scores: dict[str, dict[str, str]] = {}
    hallucination: dict[str, Any] = {}
    for name, value in post.items():
        if name.startswith("score__"):
            _, key, side = [*name.split("__"), "", ""][:3]
            scores.setdefault(key, {})[side] = value
    for side in sides:
        try:
            spans = json.loads(post.get(f"halluc_spans__{side}") or "[]")
        except ValueError:
            spans = []
        hallucination[side] = {
            "flagged": post.get(f"halluc__{side}") == "1",
            "spans": spans if isinstance(spans, list) else [],
        }
    return {
        "scores": scores,
        "preference": post.get("preference", ""),
        "hallucination": hallucination,
        "rationale": post.get("rationale", ""),
        "time_on_task_ms": post.get("time_on_task_ms"),
    }


def rating_form_context(
    *, blind: BlindTask, data: Mapping[str, Any] | None = None, errors: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """Everything the form template loops over, with the rater's entries and errors filled back in."""
    data = data or {}
    errors = errors or {}
    scores = data.get("scores") or {}
    halluc = data.get("hallucination") or {}
    sides = []
    for side in blind.sides:
        scales = []
        for criterion in blind.rubric["criteria"]:
            chosen = str((scores.get(criterion["key"]) or {}).get(side.label, ""))
            scales.append(
                {
                    "key": criterion["key"],
                    "label": criterion["label"],
                    "help": criterion["help"],
                    "name": score_field(criterion["key"], side.label),
                    "error": (errors.get(f"scores.{criterion['key']}.{side.label}") or [""])[0],
                    "points": [
                        {
                            "value": point,
                            "anchor": criterion["anchors"].get(str(point), ""),
                            "checked": chosen == str(point),
                            "id": f"s-{criterion['key']}-{side.label}-{point}",
                        }
                        for point in range(criterion["min"], criterion["max"] + 1)
                    ],
                }
            )
        entry = halluc.get(side.label) or {}
        sides.append(
            {
                "label": side.label,
                "text": side.text,
                "scales": scales,
                "flagged": bool(entry.get("flagged")) if isinstance(entry, dict) else False,
                "spans_json": json.dumps(entry.get("spans", []) if isinstance(entry, dict) else []),
                "halluc_error": (errors.get(f"hallucination.{side.label}") or [""])[0],
            }
        )
    preference = data.get("preference", "")
    return {
        "blind": blind,
        "sides": sides,
        "preferences": [
            {"value": value, "label": label, "checked": preference == value, "key": key}
            for (value, label), key in zip(PREFERENCE_LABELS.items(), ("a", "b", "t", "x"), strict=True)
        ],
        "rationale": data.get("rationale", ""),
        "preference_error": (errors.get("preference") or [""])[0],
        "rationale_error": (errors.get("rationale") or [""])[0],
        "skip_reasons": SKIP_REASONS,
    }
