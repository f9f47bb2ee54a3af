"""Reads about runs: progress, lists, and the side-by-side outputs browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, Model, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from evalhub.accounts.models import Project
from evalhub.catalog.models import Adapter
from evalhub.runs.models import (
    ChunkStatus,
    MetricScore,
    Output,
    Run,
    RunAdapter,
    RunChunk,
    RunScoring,
    RunStatus,
    ScoringKind,
)
from evalhub.suites.models import Case

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


def run_list(*, project: Project) -> QuerySet[Run]:
    return (
        Run.objects.filter(project=project)
        .select_related("suite_version__suite", "base_model")
        .prefetch_related("run_adapters__adapter")
        .order_by("-created_at")
    )


# The counts run_progress reads besides the run's own counters, by the names runs_with_details annotates.
PROGRESS_COUNTS = ("chunks_total", "chunks_done", "outputs_rejected", "outputs_truncated")


def _count(model: type[Model], **filters: Any) -> Coalesce:
    rows = model._default_manager.filter(run=OuterRef("pk"), **filters).order_by().values("run")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)


def runs_with_details(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs with what `run_adapters`, `run_progress` and `run_scoring` read, loaded with them: a list of
    runs costs a fixed number of queries however long it is."""
    return runs.select_related("judge_adapter").annotate(
        chunks_total=_count(RunChunk),
        chunks_done=_count(RunChunk, status=ChunkStatus.DONE),
        outputs_rejected=_count(Output, finish_reason="rejected"),
        outputs_truncated=_count(Output, truncated=True),
    ).prefetch_related(
        Prefetch("run_adapters", queryset=RunAdapter.objects.select_related("adapter").order_by("pk")),
        "scorings",
    )


def _prefetched(run: Run, name: str) -> bool:
    return name in getattr(run, "_prefetched_objects_cache", {})


def run_adapters(*, run: Run) -> list[RunAdapter]:
    """Baseline first, then candidates in the order they were added."""
    if _prefetched(run, "run_adapters"):
        rows = list(run.run_adapters.all())
    else:
        rows = list(run.run_adapters.select_related("adapter").order_by("pk"))
    return sorted(rows, key=lambda ra: ra.role != "baseline")


NOT_SCORED = "not_scored"


def run_scoring(*, run: Run) -> list[dict[str, Any]]:
    """One entry per kind of automatic scoring (text, perplexity, and the judge's checks when the run
    asks for them), in that order, with its state.

    A kind that was never sent (scoring on completion is off, or the run has not completed) has the
    status "not_scored". The run's scores are complete when every kind is "done".
    """
    scorings = run.scorings.all() if _prefetched(run, "scorings") else RunScoring.objects.filter(run=run)
    rows = {row.kind: row for row in scorings}
    states = []
    for kind, label in ScoringKind.choices:
        row = rows.get(kind)
        if kind == ScoringKind.JUDGE_CHECKS and row is None and not run.judge_checks:
            continue  # asked for per run: a run without it has nothing to wait for
        states.append(
            {
                "kind": kind,
                "label": label,
                "status": row.status if row else NOT_SCORED,
                "written": row.written if row else 0,
                "error": row.error if row else "",
                "started_at": row.started_at if row else None,
                "finished_at": row.finished_at if row else None,
                "updated_at": row.updated_at if row else None,
            }
        )
    return states


def _progress_counts(run: Run) -> dict[str, int]:
    if hasattr(run, PROGRESS_COUNTS[0]):  # annotated by runs_with_details, read with the run itself
        return {name: int(getattr(run, name)) for name in PROGRESS_COUNTS}
    run.refresh_from_db()  # a run object held for a while (the CLI polls one): its counters, fresh
    chunks = run.chunks.aggregate(total=Count("pk"), done=Count("pk", filter=Q(status=ChunkStatus.DONE)))
    return {
        "chunks_total": chunks["total"],
        "chunks_done": chunks["done"],
        "outputs_rejected": Output.objects.filter(run=run, finish_reason="rejected").count(),
        "outputs_truncated": Output.objects.filter(run=run, truncated=True).count(),
    }


def run_progress(*, run: Run) -> dict[str, Any]:
    """done/total, tokens per second and time left, from the run's counters (read fresh)."""
    counts = _progress_counts(run)
    rejected, truncated = counts["outputs_rejected"], counts["outputs_truncated"]
    generated = run.done - run.reused
    tokens_per_second = run.output_tokens / run.generation_seconds if run.generation_seconds > 0 else None
    seconds_per_output = run.generation_seconds / generated if generated > 0 else None
    remaining = max(run.total - run.done, 0)
    eta = None
    if run.status == RunStatus.RUNNING and seconds_per_output is not None:
        eta = round(remaining * seconds_per_output, 1)
    elapsed = None
    if run.started_at:
        elapsed = round(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 1)
    return {
        "id": run.pk,
        "status": run.status,
        "finished": run.status not in ACTIVE,
        "done": run.done,
        "total": run.total,
        "percent": round(100.0 * run.done / run.total, 1) if run.total else 0.0,
        "reused": run.reused,
        "generated": generated,
        "rejected": rejected,
        "truncated": truncated,
        "chunks_done": counts["chunks_done"],
        "chunks_total": counts["chunks_total"],
        "output_tokens": run.output_tokens,
        "generation_seconds": round(run.generation_seconds, 3),
        "tokens_per_second": round(tokens_per_second, 1) if tokens_per_second is not None else None,
        "eta_seconds": eta,
        "elapsed_seconds": elapsed,
        "error": run.error,
    }


def output_list(
    *, run: Run, adapter: Adapter | None = None, case: Case | None = None, split: str | None = None
) -> QuerySet[Output]:
    outputs = Output.objects.filter(run=run).select_related("adapter", "case")
    if adapter is not None:
        outputs = outputs.filter(adapter=adapter)
    if case is not None:
        outputs = outputs.filter(case=case)
    if split:
        outputs = outputs.filter(case__split=split)
    return outputs.order_by("case__position", "case_id", "adapter_id", "sample")


@dataclass
class CaseRow:
    case: Case
    outputs: list[Output | None]  # one per (adapter, sample) column, None while not generated


def output_rows(*, run: Run, cases: list[Case], columns: list[tuple[int, int]]) -> list[CaseRow]:
    """For the outputs browser: each case with its outputs in column order (adapter_id, sample)."""
    found: dict[tuple[int, int, int], Output] = {
        (o.case_id, o.adapter_id, o.sample): o
        for o in Output.objects.filter(run=run, case__in=cases).select_related("adapter")
    }
    return [
        CaseRow(
            case=case, outputs=[found.get((case.pk, adapter_id, sample)) for adapter_id, sample in columns]
        )
        for case in cases
    ]


def run_cases(*, run: Run, split: str | None = None) -> QuerySet[Case]:
    cases = Case.objects.filter(version_id=run.suite_version_id)
    if split:
        cases = cases.filter(split=split)
    return cases.order_by("position", "pk")


@dataclass(frozen=True)
class ScoreCell:
    """One adapter's score on one metric: the mean (or pass rate) over cases and its 95% interval."""

    value: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class ScoreRow:
    metric: str
    higher_is_better: bool
    is_rate: bool
    cells: list[ScoreCell]  # in the order of run_adapters


SCORE_RESAMPLES = 2000


def run_scores(*, run: Run, adapters: list[RunAdapter]) -> list[ScoreRow]:
    """Per metric, each adapter's mean over cases with a seeded bootstrap interval (metrics.stats.mean_ci),
    and the checks' pass rate with its Wilson interval: the rows the report reads (sample 0, or none for
    per-case scores such as perplexity). Paired differences against the baseline are the report's."""
    from metrics.registry import CHECKS_METRIC, TEXT_METRICS, higher_is_better
    from metrics.stats import mean_ci, wilson_interval

    values: dict[str, dict[int, list[float]]] = {}
    passes: dict[int, list[bool]] = {}
    rows = (
        MetricScore.objects.filter(run=run)
        .filter(Q(sample=0) | Q(output__isnull=True))
        .values_list("metric", "adapter_id", "value", "passed")
    )
    for metric, adapter_id, value, passed in rows.iterator(chunk_size=2000):
        if metric == CHECKS_METRIC:
            if passed is not None:
                passes.setdefault(adapter_id, []).append(bool(passed))
        elif value is not None:
            values.setdefault(metric, {}).setdefault(adapter_id, []).append(float(value))
    order = [m for m in TEXT_METRICS if m in values] + sorted(set(values) - set(TEXT_METRICS))
    table: list[ScoreRow] = []
    for metric in order:
        cells = []
        for ra in adapters:
            result = mean_ci(values[metric].get(ra.adapter_id, []), resamples=SCORE_RESAMPLES, seed=0)
            cells.append(ScoreCell(value=result.mean, low=result.ci_low, high=result.ci_high, n=result.n))
        table.append(ScoreRow(metric=metric, higher_is_better=higher_is_better(metric), is_rate=False, cells=cells))
    if passes:
        cells = []
        for ra in adapters:
            outcomes = passes.get(ra.adapter_id, [])
            if not outcomes:
                cells.append(ScoreCell(value=None, low=None, high=None, n=0))
                continue
            low, high = wilson_interval(sum(outcomes), len(outcomes))
            cells.append(ScoreCell(value=sum(outcomes) / len(outcomes), low=low, high=high, n=len(outcomes)))
        table.append(ScoreRow(metric="checks passed", higher_is_better=True, is_rate=True, cells=cells))
    return table
