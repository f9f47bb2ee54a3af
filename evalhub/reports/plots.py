"""Report plots as PNG bytes (matplotlib, Agg backend): one small function per plot."""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from evalhub.reports.schema import Report
from metrics.registry import higher_is_better
from metrics.stats import WinRate

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@functools.cache
def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


class _Pyplot:
    """matplotlib.pyplot on first use, on the Agg backend: most importers of reports never plot."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_pyplot(), name)


plt = _Pyplot()

CAND, BASE = "#0969da", "#8c959f"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _empty(fig: Figure, ax: Any, text: str) -> bytes:
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#57606a")
    ax.set_axis_off()
    return _png(fig)


def _interval(value: float | None, low: float | None, high: float | None) -> tuple[float, float]:
    if value is None or low is None or high is None:
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


def win_rates(report: Report) -> bytes:
    """Win rate (ties as half) with Wilson 95% intervals, overall and per slice."""
    every: list[tuple[str, WinRate]] = [("all", report.win_rate)]
    every += [(s.slice, s.result) for s in report.win_rate_by_slice]
    rows = [(name, w) for name, w in every if w.ties_as_half.rate is not None]
    fig, ax = plt.subplots(figsize=(6, max(2.2, 0.32 * len(rows) + 1)))
    if not rows:
        return _empty(fig, ax, "No candidate-vs-baseline ratings yet")
    y = np.arange(len(rows))[::-1]
    rates = [w.ties_as_half.rate or 0.0 for _, w in rows]  # none is None: filtered above
    errs = np.array(
        [_interval(w.ties_as_half.rate, w.ties_as_half.ci_low, w.ties_as_half.ci_high) for _, w in rows]
    ).T
    ax.errorbar(rates, y, xerr=errs, fmt="o", color=CAND, ecolor=CAND, capsize=3)
    ax.axvline(0.5, color="#cf222e", lw=1, ls="--")
    ax.set_yticks(y, [f"{name} (n={w.n})" for name, w in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("candidate win rate, ties as half (Wilson 95%)")
    return _png(fig)


def criteria(report: Report) -> bytes:
    """Per-criterion score distributions, candidate against baseline."""
    crits = report.criteria
    fig, axes = plt.subplots(
        1, max(1, len(crits)), figsize=(2.4 * max(1, len(crits)) + 0.6, 2.6), squeeze=False
    )
    if not crits:
        return _empty(fig, axes[0][0], "No criterion scores yet")
    for ax, crit in zip(axes[0], crits, strict=False):
        dist = {"candidate": crit.distribution.candidate, "baseline": crit.distribution.baseline}
        levels = sorted({*dist["candidate"], *dist["baseline"]}, key=lambda v: float(v))
        x = np.arange(len(levels))
        for offset, who, colour in ((-0.2, "baseline", BASE), (0.2, "candidate", CAND)):
            total = sum(dist[who].values()) or 1
            ax.bar(
                x + offset, [dist[who].get(v, 0) / total for v in levels], width=0.4, color=colour, label=who
            )
        ax.set_xticks(x, levels)
        delta = crit.delta.mean_difference
        ax.set_title(f"{crit.criterion}\nΔ {delta:+.2f}" if delta is not None else crit.criterion, fontsize=9)
    axes[0][0].legend(fontsize=7)
    return _png(fig)


def slice_heatmap(report: Report) -> bytes:
    """Candidate minus baseline per slice: human win rate (minus 0.5) and each metric's mean delta."""
    columns: dict[str, dict[str, float]] = defaultdict(dict)
    for s in report.win_rate_by_slice:
        rate = s.result.ties_as_half.rate
        if rate is not None:
            columns["human win-0.5"][s.slice] = rate - 0.5
    for m in report.metrics:
        for d in m.by_slice:
            if d.result.mean_difference is not None:
                columns[m.metric][d.slice] = d.result.mean_difference
    slices = sorted({name for col in columns.values() for name in col})
    fig, ax = plt.subplots(figsize=(1.1 * max(2, len(columns)) + 2, 0.3 * max(3, len(slices)) + 1.2))
    if not slices:
        return _empty(fig, ax, "No slices to compare")
    names = list(columns)
    grid = np.array([[columns[c].get(s, np.nan) for c in names] for s in slices])
    # Each column on its own scale: metrics differ in units.
    scale = np.nanmax(np.abs(grid), axis=0)
    scale[~np.isfinite(scale) | (scale == 0)] = 1
    ax.imshow(grid / scale, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(slices)):
        for j in range(len(names)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(slices)), slices, fontsize=8)
    ax.set_title("candidate - baseline by slice (blue: candidate better)", fontsize=9)
    return _png(fig)


def metric_vs_human(report: Report) -> bytes:
    """Per case: each metric's candidate-minus-baseline delta against the mean human preference."""
    metrics = [m.metric for m in report.metrics][:4]
    fig, axes = plt.subplots(
        1, max(1, len(metrics)), figsize=(2.6 * max(1, len(metrics)) + 0.4, 2.6), squeeze=False
    )
    if not metrics:
        return _empty(fig, axes[0][0], "No automated metrics")
    corr = {h.metric: h.correlation for h in report.human_vs_metric}
    for ax, metric in zip(axes[0], metrics, strict=False):
        xs, ys = [], []
        for case in report.cases:
            pair = case.metrics.get(metric)
            if case.human is None or pair is None or pair.candidate is None or pair.baseline is None:
                continue
            xs.append(pair.candidate - pair.baseline)
            ys.append(case.human)
        ax.scatter(xs, ys, s=6, alpha=0.5, color=CAND)
        found = corr.get(metric)
        rho = found.spearman.coefficient if found is not None else None
        ax.set_title(f"{metric}  rho={rho:.2f}" if rho is not None else metric, fontsize=9)
        ax.set_xlabel("metric Δ", fontsize=8)
    axes[0][0].set_ylabel("human preference (+1 cand)", fontsize=8)
    return _png(fig)


def trend(points: list[dict[str, Any]]) -> bytes:
    """Metric means and the human win rate by adapter version, in registration order."""
    by_metric: dict[str, dict[str, float]] = defaultdict(dict)
    order: list[str] = []
    for p in points:
        if p["mean"] is None:
            continue
        label = f"{p['adapter']}" + (f" [{p['stage']}]" if p["stage"] else "")
        if label not in order:
            order.append(label)
        by_metric[p["metric"]][label] = p["mean"]
    metrics = [m for m in by_metric if higher_is_better(m)][:6]
    fig, ax = plt.subplots(figsize=(7, 3))
    if not metrics:
        return _empty(fig, ax, "No scores in this project yet")
    x = np.arange(len(order))
    for metric in metrics:
        ys = [by_metric[metric].get(label, np.nan) for label in order]
        ax.plot(x, ys, marker="o", label=metric)
    ax.set_xticks(x, order, rotation=20, ha="right", fontsize=8)
    ax.legend(fontsize=7, ncol=3)
    ax.set_ylabel("mean")
    return _png(fig)


REPORT_PLOTS: dict[str, Callable[[Report], bytes]] = {
    "win-rates": win_rates,
    "criteria": criteria,
    "slices": slice_heatmap,
    "metric-vs-human": metric_vs_human,
}
