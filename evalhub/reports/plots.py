"""Report plots as PNG bytes (matplotlib, Agg backend): one small function per plot."""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class SliceColumn:
    """One heatmap column: a value per slice, the value that means "no difference" (the colour
    map's centre), whether larger favours the candidate, and how to print a value."""

    name: str
    values: dict[str, float]
    centre: float
    higher_better: bool
    fmt: str
    n: dict[str, int]


def slice_columns(report: Report) -> list[SliceColumn]:
    """The heatmap's columns: the human win rate (ties half, centred on 0.5), each criterion's and
    each automated metric's candidate-minus-baseline delta (centred on 0)."""
    cols: list[SliceColumn] = []
    wins = {s.slice: s.result for s in report.win_rate_by_slice if s.result.ties_as_half.rate is not None}
    if wins:
        cols.append(
            SliceColumn(
                name="human win rate",
                values={k: float(w.ties_as_half.rate or 0.0) for k, w in wins.items()},
                centre=0.5,
                higher_better=True,
                fmt="{:.0%}",
                n={k: w.n for k, w in wins.items()},
            )
        )
    deltas = [(f"Δ {c.criterion}", c.by_slice, True, "{:+.2f}") for c in report.criteria]
    deltas += [(f"Δ {m.metric}", m.by_slice, higher_is_better(m.metric), "{:+.3f}") for m in report.metrics]
    for name, by_slice, better, fmt in deltas:
        values = {d.slice: d.result.mean_difference for d in by_slice if d.result.mean_difference is not None}
        if values:
            cols.append(
                SliceColumn(
                    name=name,
                    values={k: float(v) for k, v in values.items() if v is not None},
                    centre=0.0,
                    higher_better=better,
                    fmt=fmt,
                    n={d.slice: d.result.n for d in by_slice},
                )
            )
    return cols


def _slice_order(columns: list[SliceColumn]) -> list[str]:
    """Slices grouped by kind (tag:, origin:, split:, category: ...), alphabetical within a kind."""
    names = {name for col in columns for name in col.values}
    return sorted(names, key=lambda s: (s.split(":", 1)[0], s))


def _scaled(col: SliceColumn, slices: list[str]) -> np.ndarray:
    """A column on -1..1 around its centre (+1 favours the candidate): its own scale, since the
    columns' units differ; the win rate keeps its fixed 0..1 range so 50% is always white."""
    raw = np.array([col.values.get(s, np.nan) for s in slices], dtype=float) - col.centre
    if not col.higher_better:
        raw = -raw
    if col.centre == 0.5:
        half = 0.5
    else:
        finite = np.abs(raw[np.isfinite(raw)])
        half = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return np.clip(raw / half, -1, 1)


def slice_heatmap_parts(report: Report, per_part: int = 7) -> list[bytes]:
    """The heatmap in parts of at most ``per_part`` columns, for a page too narrow for all of them."""
    columns = slice_columns(report)
    if len(columns) <= per_part:
        return [slice_heatmap(report)]
    return [slice_heatmap(report, columns[k : k + per_part]) for k in range(0, len(columns), per_part)]


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=width, break_long_words=False)) or text


def slice_heatmap(report: Report, columns: list[SliceColumn] | None = None) -> bytes:
    """Candidate against baseline per slice: each column coloured on a diverging map centred on
    "no difference" (blue: candidate better, red: baseline better), every cell annotated.
    ``columns``: a part of ``slice_columns(report)`` (the PDF splits a wide heatmap)."""
    every = slice_columns(report)
    columns = every if columns is None else columns
    slices = _slice_order(every)  # the same rows in every part
    label_chars = max((len(s) for s in slices), default=10)
    width = min(16.0, 1.4 + 0.075 * label_chars + 1.05 * max(2, len(columns)))
    height = min(30.0, 1.5 + 0.3 * max(3, len(slices)))
    fig, ax = plt.subplots(figsize=(width, height))
    if not slices:
        return _empty(fig, ax, "No slices to compare")
    grid = np.column_stack([_scaled(col, slices) for col in columns])
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#d0d7de")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for j, col in enumerate(columns):
        for i, name in enumerate(slices):
            value = col.values.get(name)
            text = "—" if value is None else col.fmt.format(value)
            dark = np.isfinite(grid[i, j]) and abs(grid[i, j]) > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "#1f2328")
    ax.set_xticks(range(len(columns)), [_wrap(c.name, 12) for c in columns], fontsize=8)
    ax.xaxis.tick_top()
    # n is the slice's number of ratings: from the win-rate column, in every part of the heatmap.
    n_of = every[0].n if every and every[0].centre == 0.5 else {}
    ax.set_yticks(range(len(slices)), [f"{s} (n={n_of[s]})" if s in n_of else s for s in slices], fontsize=8)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(slices)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="both", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel(
        "blue: candidate better · red: baseline better · white: no difference (win rate 50%, Δ 0)\n"
        "each column on its own scale · grey: no data · n: ratings in the slice",
        fontsize=7.5,
        color="#57606a",
    )
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


@dataclass(frozen=True, slots=True)
class Lineage:
    """An adapter lineage on the trend: the versions of one adapter name in registration order, and
    the adapter the first of them was trained from (another lineage's), if any."""

    name: str
    labels: tuple[str, ...]
    parent: str | None


@dataclass(frozen=True, slots=True)
class Trend:
    """The trend's data: adapters in registration order, their lineages, and per metric the latest
    run's mean per adapter label."""

    order: tuple[str, ...]
    lineages: tuple[Lineage, ...]
    values: dict[str, dict[str, float]]
    stages: dict[str, str]


def trend_data(points: list[dict[str, Any]]) -> Trend:
    """Group ``selectors.project_trend`` points into lineages: versions of one name are joined, an
    adapter trained from another (its parent) starts its own lineage linked to that parent, and an
    unrelated adapter is a lineage of its own (a single point when it has one version)."""
    order: list[str] = []
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    stages: dict[str, str] = {}
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for p in sorted(points, key=lambda p: (p["adapter_at"], p["run_at"])):
        label = p["adapter"]
        if label not in names:
            order.append(label)
            names[label] = p.get("adapter_name") or label.rsplit("@", 1)[0]
            parents[label] = p.get("parent")
            stages[label] = p.get("stage") or ""
        if p["mean"] is not None:
            values[p["metric"]][label] = float(p["mean"])  # later runs replace earlier ones
    lineages: dict[str, list[str]] = defaultdict(list)
    for label in order:
        lineages[names[label]].append(label)
    out = []
    for name, labels in lineages.items():
        parent = parents[labels[0]]
        out.append(Lineage(name=name, labels=tuple(labels), parent=parent if parent in names else None))
    return Trend(order=tuple(order), lineages=tuple(out), values=dict(values), stages=stages)


def trend_metrics(values: dict[str, dict[str, float]]) -> list[str]:
    """The human win rate first, then the automated metrics by name (at most 12 panels)."""
    return sorted(values, key=lambda m: (m != "human_win_rate", m))[:12]


def trend(points: list[dict[str, Any]]) -> bytes:
    """Small multiples: one panel per metric, each on its own scale, adapters in registration order
    on a shared x axis; a line joins only the versions of one lineage, a dashed one a child
    lineage to the adapter it was trained from."""
    data = trend_data(points)
    metrics = trend_metrics(data.values)
    if not metrics:
        fig, ax = plt.subplots(figsize=(7, 2.5))
        return _empty(fig, ax, "No scores in this project yet")
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(max(7.0, 3.4 * cols + 0.6), 2.5 * rows + 1.0), squeeze=False, sharex=True
    )
    x_of = {label: k for k, label in enumerate(data.order)}
    colours = plt.get_cmap("tab10")
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = data.values[metric]
        for k, lineage in enumerate(data.lineages):
            colour = colours(k % 10)
            shown = [label for label in lineage.labels if label in values]
            if lineage.parent and lineage.parent in values and shown:
                first = shown[0]
                ax.plot(
                    [x_of[lineage.parent], x_of[first]],
                    [values[lineage.parent], values[first]],
                    ls="--",
                    lw=1,
                    color=colour,
                )
            ax.plot(
                [x_of[label] for label in shown],
                [values[label] for label in shown],
                marker="o",
                color=colour,
                label=lineage.name,
            )
        better = (
            "higher is better"
            if metric == "human_win_rate" or higher_is_better(metric)
            else "lower is better"
        )
        ax.set_title(f"{metric} ({better})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", color="#eaeef2")
    for ax in axes.flat[len(metrics) :]:
        ax.set_axis_off()
    for index, ax in enumerate(axes.flat[: len(metrics)]):
        if index + cols >= len(metrics):  # the lowest panel of its column carries the labels
            ax.set_xticks(range(len(data.order)), data.order, rotation=30, ha="right", fontsize=7)
            ax.tick_params(axis="x", labelbottom=True)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat[1 : len(metrics)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=min(6, len(labels)), fontsize=8, frameon=False)
    height = fig.get_figheight()
    fig.text(
        0.5,
        0.1 / height,
        "lines join versions of one adapter; dashed: trained from (parent); latest run's mean per adapter",
        ha="center",
        fontsize=7,
        color="#57606a",
    )
    buf = io.BytesIO()
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1 - 0.45 / height))  # room for the caption and the legend
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


REPORT_PLOTS: dict[str, Callable[[Report], bytes]] = {
    "win-rates": win_rates,
    "criteria": criteria,
    "slices": slice_heatmap,
    "metric-vs-human": metric_vs_human,
}
