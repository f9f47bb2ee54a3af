"""Report exports: CSV per case and per rating (formula-safe), and a PDF summary."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from evalhub.reports import plots

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


def cases_csv(report: dict[str, Any]) -> str:
    metrics = [m["metric"] for m in report["metrics"]]
    header = ["case_key", "origin", "split", "category", "tags", "wins", "ties", "losses", "human_mean"]
    header += [f"{m}_{who}" for m in metrics for who in ("candidate", "baseline")]
    header += ["checks_candidate", "checks_baseline"]
    rows = []
    for c in report["cases"]:
        row = [
            c["key"],
            c["origin"],
            c["split"],
            c["category"],
            ";".join(c["tags"]),
            c["wins"],
            c["ties"],
            c["losses"],
            c["human"],
        ]
        for m in metrics:
            entry = c["metrics"].get(m) or {}
            row += [entry.get("candidate"), entry.get("baseline")]
        row += [c["checks"]["candidate"], c["checks"]["baseline"]]
        rows.append(row)
    return _csv(header, rows)


def ratings_csv(rows: list[dict[str, Any]], criteria: list[str]) -> str:
    header = ["rating_id", "case_key", "rater", "adapter_a", "adapter_b", "preference", "preferred_adapter"]
    header += [f"{c}_{s}" for c in criteria for s in ("A", "B")]
    header += ["hallucination_A", "hallucination_B", "time_on_task_ms", "gold", "rationale"]
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


def report_pdf(report: dict[str, Any], verdict: dict[str, Any]) -> bytes:
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
    cand = (report.get("candidate") or {}).get("label", "?")
    base = (report.get("baseline") or {}).get("label", "?")
    run = report.get("run") or {}
    decision = verdict["decision"]
    colour = {"GO": colors.HexColor("#1a7f37"), "NO-GO": colors.HexColor("#cf222e")}.get(
        decision, colors.HexColor("#9a6700")
    )

    def esc(text: Any) -> str:
        return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    story: list[Any] = [
        Paragraph(esc(f"Go/no-go report — run {run.get('id')} {run.get('name', '')}"), styles["Title"]),
        Paragraph(esc(f"Candidate {cand} against baseline {base}"), styles["Heading3"]),
        Paragraph(
            f'<font color="{colour.hexval()}" size="18"><b>{esc(decision)}</b></font>', styles["Normal"]
        ),
        Spacer(1, 0.4 * cm),
    ]
    gate_rows = [["Gate", "Metric", "Value", "95% CI", "Threshold", "Result", "More needed"]]
    for g in verdict["gates"]:
        ci = f"{_fmt(g.get('ci_low'))}-{_fmt(g.get('ci_high'))}" if g.get("ci_low") is not None else "—"
        ev = (g.get("evidence") or {}).get("additional_n")
        gate_rows.append(
            [
                Paragraph(esc(g["name"]), styles["BodyText"]),
                Paragraph(esc(g["metric"]), styles["BodyText"]),
                _fmt(g["value"]),
                ci,
                f"{g['op']} {_fmt(g['threshold'], 2)}",
                Paragraph(
                    esc(
                        g["status"]
                        + (" (not counted)" if g["status"] == "fail" and not g.get("counted", True) else "")
                    ),
                    styles["BodyText"],
                ),
                _fmt(ev) if ev is not None else "",
            ]
        )
    table = Table(
        gate_rows,
        colWidths=[3.9 * cm, 3.4 * cm, 1.5 * cm, 2.5 * cm, 1.7 * cm, 2.6 * cm, 1.9 * cm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [table, Spacer(1, 0.4 * cm)]
    win = report["win_rate"]
    key_rows = [["Number", "Value"]]
    key_rows.append(["Candidate-vs-baseline ratings", _fmt(report["counts"]["pair_ratings"])])
    key_rows.append(["Raters", _fmt(report["counts"]["raters"])])
    for part in ("win", "tie", "loss", "ties_as_half"):
        r = win.get(part) or {}
        key_rows.append(
            [
                f"{part} rate (Wilson 95%)",
                f"{_fmt(r.get('rate'))} [{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}]",
            ]
        )
    key_rows.append(["Sign test p (ties excluded)", _fmt(win.get("sign_test_p_value"), 4)])
    controlled = (report.get("style") or {}).get("controlled") or {}
    key_rows.append(
        [
            "Style-controlled win rate",
            f"{_fmt(controlled.get('controlled_win_rate'))} [{_fmt(controlled.get('ci_low'))}, {_fmt(controlled.get('ci_high'))}]",
        ]
    )
    for crit in report["criteria"]:
        d = crit["delta"]
        key_rows.append(
            [
                f"{crit['criterion']} Δ (bootstrap 95%)",
                f"{_fmt(d.get('mean_difference'))} [{_fmt(d.get('ci_low'))}, {_fmt(d.get('ci_high'))}]",
            ]
        )
    for m in report["metrics"]:
        d = m["delta"]
        key_rows.append(
            [
                f"{m['metric']} Δ",
                f"{_fmt(d.get('mean_difference'))} [{_fmt(d.get('ci_low'))}, {_fmt(d.get('ci_high'))}]",
            ]
        )
    keys = Table(key_rows, colWidths=[7 * cm, 8 * cm])
    keys.setStyle(
        TableStyle(
            [("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")), ("FONTSIZE", (0, 0), (-1, -1), 8)]
        )
    )
    story += [keys, PageBreak(), Paragraph("Plots", styles["Heading2"])]
    for name, fn in plots.REPORT_PLOTS.items():
        png = fn(report)
        img = Image(io.BytesIO(png))
        ratio = img.imageHeight / img.imageWidth
        width = min(17 * cm, img.imageWidth)
        img.drawWidth, img.drawHeight = width, min(width * ratio, 11 * cm)
        img.drawWidth = img.drawHeight / ratio
        story += [Paragraph(esc(name), styles["Heading4"]), img]
    doc.build(story)
    return buf.getvalue()
