"""Report exports: CSV per case and per rating (formula-safe), and a PDF summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from evalhub.reports import plots
from evalhub.reports.schema import Report

if TYPE_CHECKING:
    from evalhub.reports.gates import GateResult
    from evalhub.reports.services import VerdictOutcome

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): text starting with
    = + - @ tab or CR gets a leading apostrophe. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def cases_csv(report: Report) -> str:
    metrics = [m.metric for m in report.metrics]
    header = ["case_key", "origin", "split", "category", "tags", "wins", "ties", "losses", "human_mean"]
    header += [f"{m}_{who}" for m in metrics for who in ("candidate", "baseline")]
    header += ["checks_candidate", "checks_baseline"]
    rows = []
    for c in report.cases:
        row = [c.key, c.origin, c.split, c.category, ";".join(c.tags), c.wins, c.ties, c.losses, c.human]
        for m in metrics:
            pair = c.metrics.get(m)
            row += [pair.candidate, pair.baseline] if pair is not None else [None, None]
        row += [c.checks.candidate, c.checks.baseline]
        rows.append(row)
    return _csv(header, rows)


def _spans_cell(entry: Any) -> str:
    """A side's hallucination spans as JSON (start, end and the quoted text), "" when none."""
    spans = entry.get("spans") if isinstance(entry, dict) else None
    if not spans:
        return ""
    return json.dumps([{k: s.get(k) for k in ("start", "end", "text")} for s in spans], ensure_ascii=False)


def ratings_json(rows: list[dict[str, Any]]) -> str:
    """Every rating with its scores, flags and hallucination spans (offsets into the output's text)."""
    return json.dumps({"ratings": rows}, indent=1, ensure_ascii=False, default=str)


def ratings_csv(rows: list[dict[str, Any]], criteria: list[str]) -> str:
    header = ["rating_id", "case_key", "rater", "adapter_a", "adapter_b", "preference", "preferred_adapter"]
    header += [f"{c}_{s}" for c in criteria for s in ("A", "B")]
    header += [
        "hallucination_A",
        "hallucination_B",
        "spans_A",
        "spans_B",
        "time_on_task_ms",
        "gold",
        "rationale",
    ]
    out = []
    for r in rows:
        pref = r["preference"]
        preferred = {"A": r["adapter_a"], "B": r["adapter_b"]}.get(pref, pref)
        row = [r["id"], r["case_key"], r["rater"], r["adapter_a"], r["adapter_b"], pref, preferred]
        for c in criteria:
            entry = r["scores"].get(c) or {}
            row += [entry.get("A"), entry.get("B")]
        halluc = r["hallucination"] or {}
        row += [
            bool((halluc.get("A") or {}).get("flagged"))
            if isinstance(halluc.get("A"), dict)
            else halluc.get("A"),
            bool((halluc.get("B") or {}).get("flagged"))
            if isinstance(halluc.get("B"), dict)
            else halluc.get("B"),
            _spans_cell(halluc.get("A")),
            _spans_cell(halluc.get("B")),
            r["time_on_task_ms"],
            r["gold"],
            r["rationale"],
        ]
        out.append(row)
    return _csv(header, out)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _esc(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def _gate_rows(decision: str, gates: list[GateResult], styles: Any) -> list[list[Any]]:
    from reportlab.platypus import Paragraph

    from evalhub.reports.gates import gates_explained

    rows: list[list[Any]] = [["Gate", "Metric", "Value", "95% CI", "Threshold", "Result", "More needed"]]
    for g in gates_explained(decision, list(gates)):
        ev = (g.get("evidence") or {}).get("additional_n")
        result = g["status"]
        if g["status"] != "pass":
            result += " · deciding" if g["deciding"] else " · not deciding"
        if g["status"] == "fail" and not g.get("counted", True):
            result += " (not counted: ratings unreliable)"
        if g.get("reason"):
            result += f" — {g['reason']}"
        rows.append(
            [
                Paragraph(_esc(g["name"]), styles["BodyText"]),
                Paragraph(_esc(g["metric"]), styles["BodyText"]),
                g["value_text"],
                g["ci_text"] or "—",
                g["threshold_text"],
                Paragraph(_esc(result), styles["BodyText"]),
                f"{int(ev):,}" if ev is not None else "",
            ]
        )
    return rows


def _key_numbers(report: Report) -> list[list[str]]:
    win = report.win_rate
    rows = [["Number", "Value"]]
    rows.append(["Candidate-vs-baseline ratings", _fmt(report.counts.pair_ratings)])
    rows.append(["Raters", _fmt(report.counts.raters)])
    for part, rate in (
        ("win", win.win),
        ("tie", win.tie),
        ("loss", win.loss),
        ("ties_as_half", win.ties_as_half),
    ):
        rows.append([f"{part} rate (Wilson 95%)", _interval(rate.rate, rate.ci_low, rate.ci_high)])
    rows.append(["Sign test p (ties excluded)", _fmt(win.sign_test_p_value, 4)])
    controlled = report.style.controlled
    rows.append(
        [
            "Style-controlled win rate",
            _interval(controlled.controlled_win_rate, controlled.ci_low, controlled.ci_high)
            if controlled is not None
            else _interval(None, None, None),
        ]
    )
    for crit in report.criteria:
        d = crit.delta
        rows.append(
            [f"{crit.criterion} Δ (bootstrap 95%)", _interval(d.mean_difference, d.ci_low, d.ci_high)]
        )
    for m in report.metrics:
        d = m.delta
        rows.append([f"{m.metric} Δ", _interval(d.mean_difference, d.ci_low, d.ci_high)])
    return rows


def rater_quality_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The PDF's rater quality section: notes (exclusions, warnings, the flag rules) and a table,
    one row per rater with their measures and flags in plain words."""
    rq = report.rater_quality
    if rq is None:
        return [], []
    rules = rq.rules
    notes = []
    if rq.exclude_flagged:
        names = ", ".join(r.rater for r in rq.excluded) or "none was flagged"
        notes.append(f"Flagged raters excluded from every human number: {names}.")
        if rq.before is not None and rq.after is not None:
            before, after = rq.before.win_rate.ties_as_half.rate, rq.after.win_rate.ties_as_half.rate
            notes.append(
                f"Win rate (ties half) with all raters {_fmt(before)}, without the flagged {_fmt(after)}."
            )
    notes += list(rq.warnings)
    notes.append(
        f"Flags. Too fast: over {rules.max_fast_share:.0%} of ratings under {rules.min_seconds:g} s. "
        f"Failed gold: under {rules.min_gold_accuracy:.0%} right on at least {rules.min_gold} gold tasks. "
        f"Straight-lining: {rules.max_straight_share:.0%} or more of answers equal the rater's usual "
        f"answer to the same question, over at least {rules.min_straight_ratings} ratings."
    )
    table = [
        [
            "Rater",
            "Ratings",
            "Median s",
            f"Under {rules.min_seconds:g} s",
            "Gold right",
            "Same answer",
            "Flags",
        ]
    ]
    for row in rq.raters:
        q = row.quality
        table.append(
            [
                row.rater + (" (excluded)" if row.excluded else ""),
                str(q.n_ratings),
                _fmt(q.median_seconds, 1),
                "—" if q.fast_share is None else f"{q.fast_share:.0%}",
                "no gold"
                if q.gold_accuracy is None
                else f"{q.n_gold_correct}/{q.n_gold} ({q.gold_accuracy:.0%})",
                "—" if q.straight_share is None else f"{q.straight_share:.0%}",
                "; ".join(f.reason for f in q.flags) or "none",
            ]
        )
    return notes, table


def _rater_quality_story(report: Report, styles: Any, grid: Any) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

    notes, rows = rater_quality_rows(report)
    if not rows:
        return []
    # Every cell a paragraph in the table's small type, so headers and reasons wrap between words.
    small = ParagraphStyle("rater-quality", parent=styles["BodyText"], fontSize=8, leading=10)
    body = [[Paragraph(_esc(cell), small) for cell in row] for row in rows]
    table = Table(
        body,
        colWidths=[2.9 * cm, 1.5 * cm, 1.7 * cm, 1.8 * cm, 1.9 * cm, 1.7 * cm, 6.5 * cm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
                ("GRID", (0, 0), (-1, -1), 0.25, grid),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    # The heading stays with the notes and the table's first rows (no orphaned heading).
    head = [Paragraph("Rater quality", styles["Heading2"])]
    head += [Paragraph(_esc(n), styles["BodyText"]) for n in notes]
    return [Spacer(1, 0.4 * cm), KeepTogether([*head, Spacer(1, 0.2 * cm), table])]


def report_pdf(report: Report, verdict: VerdictOutcome) -> bytes:
    """Two pages: the verdict, its gates and the key numbers; then the plots."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm, topMargin=1.5 * cm, bottomMargin=1.5 * cm
    )
    cand, base = report.candidate_label or "?", report.baseline_label or "?"
    run_id, run_name = (report.run.id, report.run.name) if report.run else (None, "")
    decision = verdict["decision"]
    colour = {"GO": colors.HexColor("#1a7f37"), "NO-GO": colors.HexColor("#cf222e")}.get(
        decision, colors.HexColor("#9a6700")
    )
    grid = colors.HexColor("#d0d7de")
    story: list[Any] = [
        Paragraph(_esc(f"Go/no-go report — run {run_id} {run_name}"), styles["Title"]),
        Paragraph(_esc(f"Candidate {cand} against baseline {base}"), styles["Heading3"]),
        Paragraph(
            f'<font color="{colour.hexval()}" size="18"><b>{_esc(decision)}</b></font>', styles["Normal"]
        ),
        Spacer(1, 0.3 * cm),
        Paragraph(_esc(verdict.get("why") or ""), styles["BodyText"]),
        Spacer(1, 0.4 * cm),
    ]
    table = Table(
        _gate_rows(decision, verdict["gates"], styles),
        colWidths=[3.9 * cm, 3.4 * cm, 1.5 * cm, 2.5 * cm, 1.7 * cm, 2.6 * cm, 1.9 * cm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
                ("GRID", (0, 0), (-1, -1), 0.25, grid),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    keys = Table(_key_numbers(report), colWidths=[7 * cm, 8 * cm])
    keys.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, grid), ("FONTSIZE", (0, 0), (-1, -1), 8)]))
    story += [table, Spacer(1, 0.4 * cm), keys, *_rater_quality_story(report, styles, grid)]
    story += [PageBreak(), Paragraph("Plots", styles["Heading2"])]
    for name, fn in plots.REPORT_PLOTS.items():
        img = Image(io.BytesIO(fn(report)))
        ratio = img.imageHeight / img.imageWidth
        width = min(17 * cm, img.imageWidth)
        img.drawWidth, img.drawHeight = width, min(width * ratio, 11 * cm)
        img.drawWidth = img.drawHeight / ratio
        story += [Paragraph(_esc(name), styles["Heading4"]), img]
    doc.build(story)
    return buf.getvalue()
