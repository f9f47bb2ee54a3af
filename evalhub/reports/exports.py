"""Report exports: CSV per case and per rating (formula-safe), and a PDF summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
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
    judged = report.judge_checks is not None  # columns only where a judge evaluated pending checks
    if judged:
        header += ["judge_evaluated_checks_candidate", "judge_evaluated_checks_baseline"]
    # Only under routing weights: the case's weight in the report's weighted human means and rates.
    weighted = any(c.routing_weight is not None for c in report.cases)
    if weighted:
        header.append("routing_weight")
    rows = []
    for c in report.cases:
        row = [c.key, c.origin, c.split, c.category, ";".join(c.tags), c.wins, c.ties, c.losses, c.human]
        for m in metrics:
            pair = c.metrics.get(m)
            row += [pair.candidate, pair.baseline] if pair is not None else [None, None]
        row += [c.checks.candidate, c.checks.baseline]
        if judged:
            judge = c.judge_checks
            row += [judge.candidate, judge.baseline] if judge is not None else [None, None]
        if weighted:
            row.append(c.routing_weight)
        rows.append(row)
    return _csv(header, rows)


JUDGE_CSV_HEADER = [
    "table",
    "criterion",
    "slice",
    "pairs",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "kappa",
    "kappa_ci_low",
    "kappa_ci_high",
    "experts_kappa",
]


def judge_csv(report: Report) -> str:
    """The judge calibration table(s), one row per criterion and slice (empty without a judge)."""
    from evalhub.reports.judge_section import calibration_tables

    rows = []
    for title, cal in calibration_tables(report.judge):
        table = "audit" if "audit" in title else "rated"
        for r in cal.rows:
            rows.append(
                [
                    table,
                    r.criterion,
                    r.slice,
                    r.n_units,
                    r.accuracy.rate,
                    r.accuracy.ci_low,
                    r.accuracy.ci_high,
                    r.kappa.kappa,
                    r.kappa.ci_low,
                    r.kappa.ci_high,
                    r.expert_mean_kappa,
                ]
            )
    return _csv(JUDGE_CSV_HEADER, rows)


def _judge_story(report: Report, gates: list[Any], pdf: _Pdf) -> list[Any]:
    """The PDF's "Judge calibration" section, as the page shows it."""
    from evalhub.reports.judge_section import calibration_tables, judge_only_gates

    j = report.judge
    if j is None:
        return []
    story: list[Any] = []
    intro = (
        f"Judge {j.judge} rated {j.judged} of {j.pairs} candidate-vs-baseline pairs in both orders"
        + (f"; it failed on {j.failed}" if j.failed else "")
        + ". Order: "
        + (
            "uncertainty-first with a uniform audit share."
            if j.routing == "uncertainty_first"
            else "uniform random."
        )
    )
    parts: list[Any] = [pdf.p(intro), pdf.p(j.calibration.statement)]
    for title, cal in calibration_tables(j):
        rows = [
            [
                r.criterion,
                r.slice,
                str(r.n_units),
                _rate(r.accuracy.rate, r.accuracy.ci_low, r.accuracy.ci_high),
                _interval(r.kappa.kappa, r.kappa.ci_low, r.kappa.ci_high, 2),
                _fmt(r.expert_mean_kappa, 2),
            ]
            for r in cal.rows
        ]
        parts += [
            pdf.p(title),
            pdf.table(
                [
                    "Criterion",
                    "Slice",
                    "Pairs",
                    "Accuracy (Wilson 95%)",
                    "Kappa with majority (95%)",
                    "Experts' kappa",
                ],
                rows,
                [2.6, 3.6, 1.4, 3.6, 3.8, 2.4],
                numeric=2,
            ),
        ]
    c = j.calibration.consistency
    parts.append(
        pdf.p(
            "Position consistency: "
            + (
                f"{c.n_consistent} of {c.n_pairs} ({_fmt(c.rate.rate, 2)})"
                if c.rate.rate is not None
                else str(c.reason)
            )
            + ". "
            + j.calibration_note
        )
    )
    win_rows = []
    if j.win_rate is not None:
        w = j.win_rate
        win_rows.append(
            [f"{j.estimator} (used by the gates)", str(w.n_rated), _interval(w.estimate, w.ci_low, w.ci_high)]
        )
    n = j.naive_win_rate
    win_rows.append(["mean of the rated pairs", str(n.n_rated), _interval(n.estimate, n.ci_low, n.ci_high)])
    parts.append(
        pdf.table(["Win rate estimator", "Rated pairs", "Estimate (95%)"], win_rows, [10.0, 2.5, 5.0])
    )
    s = j.ratings_saved
    if s.ratings_saved is not None and s.ratings_saved < 0:
        saved = (
            f"Expert ratings saved: none. {s.ratings_collected} ratings on {s.pairs_rated} of {s.pairs} pairs, where a "
            f"uniform random order would have needed about {s.uniform_ratings_needed} for an interval as narrow: the "
            "judge's predictions widened the interval."
        )
    elif s.ratings_saved is not None:
        saved = (
            f"Expert ratings saved: {s.ratings_collected} ratings on {s.pairs_rated} of {s.pairs} pairs; a uniform random "
            f"order would have needed about {s.uniform_ratings_needed} for an interval as narrow: {s.ratings_saved} saved "
            f"({_pct(s.saved_share)})."
        )
    else:
        saved = f"Expert ratings saved: not computable ({s.reason}); {s.ratings_collected} ratings collected."
    parts.append(pdf.p(saved))
    on_judge = judge_only_gates(gates)
    parts.append(
        pdf.p(
            f"This verdict rests on the judge alone for: {', '.join(on_judge)} (the policy allows it)."
            if on_judge
            else "No gate reads the judge alone: the verdict rests on the experts' ratings."
        )
    )
    story += pdf.section("Judge calibration", *parts)
    return story


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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}" if value in (0.0, 1.0) else f"{value:.1%}"


# The PDF's standard fonts (WinAnsi) have no Greek letters or maths signs: spelled out instead of
# drawn as empty boxes.
_PDF_SPELLED = str.maketrans(
    {
        "\u03b1": "alpha",
        "\u03ba": "kappa",
        "\u0394": "delta ",
        "\u03c1": "rho",
        "\u03c4": "tau",
        "\u2212": "-",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2248": "~",
        "\u00b1": "+/-",
    }
)


def _esc(text: Any) -> str:
    """Text for a reportlab Paragraph: markup characters escaped, unsupported signs spelled out."""
    text = str(text).translate(_PDF_SPELLED)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _interval(value: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    if low is None or high is None:
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} ({_fmt(low, digits)} to {_fmt(high, digits)})"


def _rate(rate: float | None, low: float | None, high: float | None, n: int | None = None) -> str:
    text = _pct(rate) if low is None or high is None else f"{_pct(rate)} ({_pct(low)} to {_pct(high)})"
    return f"{text}, n={n}" if n is not None else text


def _breakable(name: str) -> str:
    """A gate metric's name with a space after its colon, so a narrow cell wraps it there and
    never inside a word (``criterion_delta: factual_accuracy``)."""
    return name.replace(":", ": ")


# Column headers and cells of every table are Paragraphs (never raw strings): they wrap within the
# column at spaces, and long words are not split (splitLongWords off), so no word breaks mid-way.
Row = list[Any]


class _Pdf:
    """The PDF's styles and its table and section builders (reportlab is imported on first use)."""

    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

        self.styles = getSampleStyleSheet()
        self.cell = ParagraphStyle(
            "cell", parent=self.styles["BodyText"], fontSize=8, leading=10, splitLongWords=0, spaceBefore=0
        )
        self.head = ParagraphStyle("head", parent=self.cell, fontName="Helvetica-Bold")
        self.num = ParagraphStyle("num", parent=self.cell, alignment=2)
        self.grid = colors.HexColor("#d0d7de")
        self.shade = colors.HexColor("#f6f8fa")

    def p(self, text: Any, style: Any = None) -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(_esc(text), style or self.cell)

    def table(self, header: list[str], rows: list[list[Any]], widths: list[float], numeric: int = 1) -> Any:
        """A table with a bold header row; columns from ``numeric`` on are right-aligned numbers."""
        from reportlab.lib.units import cm
        from reportlab.platypus import Table, TableStyle

        def cell(value: Any, col: int) -> Any:
            if not isinstance(value, str):
                return value  # already a flowable
            return self.p(value, self.num if col >= numeric else self.cell)

        body = [[self.p(h, self.head) for h in header]]
        body += [[cell(v, k) for k, v in enumerate(row)] for row in rows]
        table = Table(body, colWidths=[w * cm for w in widths], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), self.shade),
                    ("GRID", (0, 0), (-1, -1), 0.25, self.grid),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ]
            )
        )
        return table

    def section(self, title: str, *flowables: Any, note: str | None = None) -> list[Any]:
        """A heading kept on the page with what follows it (never orphaned at a page's foot)."""
        from reportlab.lib.units import cm
        from reportlab.platypus import KeepTogether, Spacer

        parts: list[Any] = [self.p(title, self.styles["Heading2"]), *flowables]
        if note:
            parts.append(self.p(note, self.cell))
        return [Spacer(1, 0.3 * cm), KeepTogether(parts)]


def _gate_rows(decision: str, gates: list[GateResult], pdf: _Pdf) -> list[Row]:
    from evalhub.reports.gates import gates_explained

    rows: list[Row] = []
    for g in gates_explained(decision, list(gates)):
        result = f"<b>{_esc(g['status'])}</b>"
        if g["status"] != "pass":
            result += " · <b>deciding</b>" if g["deciding"] else " · not deciding"
        if g["status"] == "fail" and not g.get("counted", True):
            result += " (not counted: ratings unreliable)"
        if g.get("reason"):
            result += f"<br/>{_esc(g['reason'])}"
        if g.get("judge_evaluated"):
            result += f"<br/>judge-evaluated by {_esc(g['judge_evaluated'])}"
        on_fail = " · else inconclusive" if g.get("on_fail") == "INCONCLUSIVE" else ""
        min_n = f" · min n {g['min_n']}" if g.get("min_n") else ""
        from reportlab.platypus import Paragraph

        rows.append(
            [
                Paragraph(
                    f"{_esc(g['name'])}<br/><font color='#57606a'>{_esc(_breakable(str(g['metric'])))}"
                    f"{on_fail}{min_n}</font>",
                    pdf.cell,
                ),
                g["value_text"],
                g["ci_text"] or "—",
                g["threshold_text"],
                Paragraph(result, pdf.cell),
                Paragraph(
                    _esc(g["needed_text"])
                    + (
                        f"<br/><font color='#57606a'>{_esc(g['needed_range'])}</font>"
                        if g["needed_range"]
                        else ""
                    ),
                    pdf.num,
                ),
            ]
        )
    return rows


def _key_numbers(report: Report) -> list[Row]:
    win = report.win_rate
    c = report.counts
    rows: list[Row] = [
        ["Candidate-vs-baseline ratings", f"{c.pair_ratings:,}"],
        ["Raters", f"{c.raters}"],
        ["Cases rated", f"{c.cases_rated} of {c.cases}"],
        ["Wins · ties (both bad) · losses", f"{win.wins} · {win.ties} ({c.both_bad}) · {win.losses}"],
    ]
    for part, rate in (
        ("Win", win.win),
        ("Tie", win.tie),
        ("Loss", win.loss),
        ("Ties as half", win.ties_as_half),
    ):
        rows.append([f"{part} rate (Wilson 95%)", _rate(rate.rate, rate.ci_low, rate.ci_high)])
    rows.append(["Sign test p (ties excluded)", _fmt(win.sign_test_p_value, 4)])
    controlled = report.style.controlled
    if controlled is not None:
        rows.append(
            [
                "Length- and style-controlled win rate (95%)",
                _rate(controlled.controlled_win_rate, controlled.ci_low, controlled.ci_high),
            ]
        )
    return rows


def _criteria_rows(report: Report) -> list[Row]:
    rows: list[Row] = []
    for crit in report.criteria:
        cand, base, d = crit.candidate, crit.baseline, crit.delta
        rows.append(
            [
                crit.criterion,
                _interval(cand.mean, cand.ci_low, cand.ci_high, 2),
                _interval(base.mean, base.ci_low, base.ci_high, 2),
                _interval(d.mean_difference, d.ci_low, d.ci_high, 2),
                _fmt(report.agreement.alpha(crit.criterion), 2),
            ]
        )
    return rows


def _metric_rows(report: Report) -> list[Row]:
    cand, base = report.candidate_label, report.baseline_label
    rows: list[Row] = []
    for m in report.metrics:
        d = m.delta
        rows.append(
            [
                m.metric,
                _fmt(m.means.get(cand or ""), 4),
                _fmt(m.means.get(base or ""), 4),
                _interval(d.mean_difference, d.ci_low, d.ci_high, 4),
                f"{d.n}",
            ]
        )
    return rows


def _hallucination_rows(report: Report) -> list[Row]:
    return [
        [h.adapter, _rate(h.share.rate, h.share.ci_low, h.share.ci_high), f"{h.share.n}"]
        for h in report.hallucination.per_adapter
    ]


def _adversarial_rows(report: Report) -> tuple[list[str], list[Row]]:
    adapters: list[str] = []
    for a in report.adversarial:
        adapters += [label for label in a.per_adapter if label not in adapters]
    for label in report.must_refuse:
        if label not in adapters:
            adapters.append(label)
    rows: list[Row] = []
    for a in report.adversarial:
        rows.append(
            [a.category]
            + [
                f"{_pct(r.rate)} ({r.n})" if (r := a.per_adapter.get(label)) is not None else "—"
                for label in adapters
            ]
        )
    if report.must_refuse:
        rows.append(
            ["must refuse (failed)"]
            + [
                "no cases"
                if (m := report.must_refuse.get(label)) is None or m.n == 0
                else f"{_pct(m.rate)} ({m.n}, {m.failed} failed)"
                for label in adapters
            ]
        )
    return adapters, rows


def judge_checks_rows(report: Report) -> list[Row]:
    """Per adapter: outputs whose pending checks all passed as the judge evaluated them, and those it
    could not evaluate (empty when no judge evaluated any)."""
    judged = report.judge_checks
    if judged is None:
        return []
    return [
        [label, _rate(r.rate, r.ci_low, r.ci_high), f"{r.n}", f"{judged.not_evaluated.get(label, 0)}"]
        for label, r in judged.per_adapter.items()
    ]


def judge_checks_note(report: Report) -> str:
    judged = report.judge_checks
    if judged is None:
        return ""
    return (
        f"Judge-evaluated by {', '.join(judged.judges)}: the suite's pending checks (imported model-graded "
        "assertions), graded by a judge model, not checked by evalhub. Not evaluated: the judge's answer "
        "was unparseable or the prompt did not fit; never counted as passed or failed."
    )


def _agreement_rows(report: Report) -> list[Row]:
    pref = report.agreement.preference
    rows: list[Row] = [
        [
            "preference",
            _fmt(pref.alpha.alpha if pref.alpha else None),
            _fmt(pref.fleiss.kappa if pref.fleiss else None),
            _fmt(pref.pairwise_cohen.mean_kappa if pref.pairwise_cohen else None),
            pref.reason or (pref.alpha.reason if pref.alpha and pref.alpha.reason else ""),
        ]
    ]
    for c in report.agreement.criteria:
        reason = c.reason or (c.alpha.reason if c.alpha and c.alpha.reason else "")
        rows.append([c.criterion, _fmt(c.alpha.alpha if c.alpha else None), "", "", reason or ""])
    return rows


def _gold_rows(report: Report) -> list[Row]:
    return [
        [g.rater, f"{g.n_correct} of {g.n_gold}", _rate(g.accuracy, g.ci_low, g.ci_high)] for g in report.gold
    ]


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


PLOT_TITLES = {
    "win-rates": "Win rate, overall and by slice",
    "criteria": "Score distributions per criterion",
    "slices": "Candidate against baseline by slice",
    "metric-vs-human": "Automated metrics against human preference",
}


def _plot(pdf: _Pdf, name: str, png: bytes, suffix: str = "") -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Image

    img = Image(io.BytesIO(png))
    ratio = img.imageHeight / img.imageWidth
    width = min(18 * cm, img.imageWidth * 0.75)  # 110 dpi PNGs drawn at about 80 dpi
    height = min(width * ratio, 21 * cm)
    img.drawWidth, img.drawHeight = height / ratio, height
    return pdf.section(PLOT_TITLES.get(name, name) + suffix, img)


def report_pdf(report: Report, verdict: VerdictOutcome, *, generated_at: datetime | None = None) -> bytes:
    """The report as a PDF a lead reads in two minutes: the decision and why, the gates with their
    reasons, the key numbers, criteria, metrics, hallucination, adversarial and agreement tables,
    rater quality, then the plots. Every heading stays with its table or plot."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    pdf = _Pdf()
    styles = pdf.styles
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    cand, base = report.candidate_label or "?", report.baseline_label or "?"
    run = report.run
    title = f"Go/no-go report: {cand} against {base}"
    where = f"Run {run.id} “{run.name}” in project {run.project}" if run else "Run not recorded"
    stamp = f"{where} · generated {when:%Y-%m-%d %H:%M} UTC"
    buf = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#57606a"))
        page = f"page {doc.page}"
        room = A4[0] - 3 * cm - canvas.stringWidth(page) - 0.5 * cm
        text = f"evalhub · {cand} against {base} · run {run.id if run else '?'} · {when:%Y-%m-%d %H:%M} UTC"
        while canvas.stringWidth(text) > room and len(text) > 10:  # long adapter names: cut, not overlap
            text = text[:-2].rstrip() + "…"
        canvas.drawString(1.5 * cm, 0.9 * cm, text)
        canvas.drawRightString(A4[0] - 1.5 * cm, 0.9 * cm, page)
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.6 * cm,
        title=title,
        author="evalhub",
        subject=f"{where}: {verdict['decision']}",
        creator="evalhub",
    )
    decision = verdict["decision"]
    colour = {"GO": "#1a7f37", "NO-GO": "#cf222e"}.get(decision, "#9a6700")
    story: list[Any] = [
        Paragraph(_esc(title), styles["Title"]),
        Paragraph(_esc(stamp), styles["Normal"]),
        Spacer(1, 0.3 * cm),
        Paragraph(f'<font color="{colour}" size="18"><b>{_esc(decision)}</b></font>', styles["Normal"]),
        Spacer(1, 0.35 * cm),
        Paragraph(_esc(verdict.get("why") or ""), styles["BodyText"]),
    ]
    policy_name = (verdict.get("policy") or {}).get("name") or "default"
    story += pdf.section(
        f"Gates (policy “{policy_name}”)",
        pdf.table(
            ["Gate", "Value", "95% interval", "Threshold", "Result", "More needed"],
            _gate_rows(decision, verdict["gates"], pdf),
            [4.3, 2.0, 2.9, 1.9, 4.4, 2.5],  # the last column holds the likely range too
        ),
        note="A gate that did not pass is deciding when it caused the decision; a red fail that is "
        "not deciding did not (for example, unreliable ratings are not counted).",
    )
    story += pdf.section("Key numbers", pdf.table(["Number", "Value"], _key_numbers(report), [8, 10]))
    if report.criteria:
        weighting = report.criteria[0].weighting
        story += pdf.section(
            "Criteria (case means, bootstrap 95%)",
            pdf.table(
                ["Criterion", "Candidate", "Baseline", "Candidate - baseline", "Alpha"],
                _criteria_rows(report),
                [3.6, 3.9, 3.9, 4.6, 2.0],
            ),
            note=f"Means and deltas {weighting}." if weighting else None,
        )
    if report.metrics:
        story += pdf.section(
            "Automated metrics (paired bootstrap 95%)",
            pdf.table(
                ["Metric", f"Mean {cand}", f"Mean {base}", "Candidate - baseline", "Cases"],
                _metric_rows(report),
                [3.6, 3.2, 3.2, 6.0, 2.0],
            ),
        )
    hallucination = report.hallucination
    delta = hallucination.delta
    story += pdf.section(
        "Hallucination flags",
        pdf.table(
            [
                "Adapter",
                f"Outputs flagged ({'bootstrap' if hallucination.weighting else 'Wilson'} 95%)",
                "Rated sides",
            ],
            _hallucination_rows(report),
            [6.0, 8.0, 4.0],
        ),
        note=f"Candidate - baseline flag rate (paired bootstrap over cases): "
        f"{_interval(delta.mean_difference, delta.ci_low, delta.ci_high)}."
        + (f" Rates and delta {hallucination.weighting}." if hallucination.weighting else ""),
    )
    adapters, adversarial = _adversarial_rows(report)
    story += pdf.section(
        "Adversarial checks (pass rate, n)",
        pdf.table(
            ["Category", *adapters], adversarial, [4.0] + [14.0 / max(1, len(adapters))] * len(adapters)
        )
        if adversarial
        else pdf.p("No adversarial or must-refuse cases in this run."),
    )
    if report.judge_checks is not None:
        story += pdf.section(
            "Pending checks evaluated by the judge (judge-evaluated)",
            pdf.table(
                ["Adapter", "Outputs passing (Wilson 95%)", "Evaluated", "Not evaluated"],
                judge_checks_rows(report),
                [6.0, 6.0, 3.0, 3.0],
            ),
            note=judge_checks_note(report),
        )
    story += pdf.section(
        "Rater agreement",
        pdf.table(
            ["On", "Krippendorff alpha", "Fleiss kappa", "Mean pairwise Cohen kappa", "Note"],
            _agreement_rows(report),
            [3.4, 2.4, 2.0, 3.2, 7.0],
        ),
        note=f"{report.agreement.n_raters} raters. Alpha below 0.6 means the raters disagree too much to "
        "rely on the human numbers.",
    )
    gold = _gold_rows(report)
    story += pdf.section(
        "Gold tasks per rater",
        pdf.table(["Rater", "Right", "Accuracy (Wilson 95%)"], gold, [6.0, 4.0, 8.0])
        if gold
        else pdf.p("No gold tasks were rated, so no rater can be checked against a known answer."),
    )
    # Rater quality: per rater time, gold accuracy, straight-lining and flags (when the report has it).
    story += _rater_quality_story(report, styles, pdf.grid)
    story += _judge_story(report, list(verdict.get("gates", [])), pdf)
    for name, fn in plots.REPORT_PLOTS.items():
        if name == "slices":  # wide: in parts that stay legible at the page's width
            parts = plots.slice_heatmap_parts(report)
            for k, png in enumerate(parts, start=1):
                suffix = f" ({k} of {len(parts)})" if len(parts) > 1 else ""
                story += _plot(pdf, name, png, suffix)
        else:
            story += _plot(pdf, name, fn(report))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
