"""Reads for reports: the rows a report is computed from, fetched in a handful of flat queries.

Everything returned is plain Python (ids, numbers, dicts) so `compute` never touches the ORM and a
frozen snapshot can be recomputed without the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.fields.json import KT

from evalhub.catalog.models import Adapter
from evalhub.errors import NotFound, ValidationFailed
from evalhub.reports.models import GatePolicy, Verdict
from evalhub.runs.models import AdapterRole, MetricScore, Output, Run, RunAdapter
from evalhub.suites.models import Case


@dataclass
class ReportRows:
    """The raw inputs of one report."""

    cases: list[dict[str, Any]]
    adapters: list[dict[str, Any]]
    # (adapter_id, case_id) -> output id (sample 0)
    outputs: dict[tuple[int, int], int]
    output_adapter: dict[int, int]
    output_tokens: dict[int, int]
    texts: dict[int, str]
    # (adapter_id, case_id, metric) -> (value, passed)
    scores: list[tuple[int, int, str, float | None, bool | None]]
    ratings: list[dict[str, Any]]
    raters: dict[int, str] = field(default_factory=dict)
    study_ids: list[int] = field(default_factory=list)


def adapter_info(adapter: Adapter) -> dict[str, Any]:
    return {
        "id": adapter.pk,
        "label": adapter.label,
        "name": adapter.name,
        "version": adapter.version,
        "stage": adapter.stage,
        "status": adapter.status,
        "parent_id": adapter.parent_id,
        "created_at": adapter.created_at.isoformat() if adapter.created_at else None,
    }


def run_adapters_by_role(*, run: Run) -> tuple[Adapter | None, list[Adapter]]:
    """The run's baseline (if any) and its candidates, in registration order."""
    rows = RunAdapter.objects.filter(run=run).select_related("adapter").order_by("adapter__created_at")
    baseline = next((r.adapter for r in rows if r.role == AdapterRole.BASELINE), None)
    candidates = [r.adapter for r in rows if r.role != AdapterRole.BASELINE]
    return baseline, candidates


def adapter_in_run(*, run: Run, label: str) -> Adapter:
    """An adapter of the run by ``name@version`` (or bare name when unambiguous)."""
    adapters = [r.adapter for r in RunAdapter.objects.filter(run=run).select_related("adapter")]
    found = [a for a in adapters if a.label == label] or [a for a in adapters if a.name == label]
    if len(found) != 1:
        known = ", ".join(sorted(a.label for a in adapters)) or "none"
        raise ValidationFailed(f"Adapter {label!r} is not (uniquely) in run {run.pk}; the run has: {known}.")
    return found[0]


def report_rows(
    *, run: Run, adapter_ids: Iterable[int], study_ids: Iterable[int] | None = None
) -> ReportRows:
    """Cases, outputs, metric scores and ratings of a run for the given adapters."""
    from annotation.models import Study

    ids = list(adapter_ids)
    adapters = [adapter_info(a) for a in Adapter.objects.filter(pk__in=ids).order_by("created_at", "pk")]
    cases = [
        {
            "id": pk,
            "key": key,
            "tags": tags or [],
            "slices": slices or {},
            "origin": origin,
            "split": split,
            "category": category,
            "expected": expected or [],
        }
        for pk, key, tags, slices, origin, split, category, expected in Case.objects.filter(
            version_id=run.suite_version_id
        )
        .order_by("position")
        .values_list("pk", "key", "tags", "slices", "origin", "split", "category", "expected")
    ]
    outputs: dict[tuple[int, int], int] = {}
    output_adapter: dict[int, int] = {}
    output_tokens: dict[int, int] = {}
    for pk, adapter_id, case_id, tokens in Output.objects.filter(
        run=run, sample=0, adapter_id__in=ids
    ).values_list("pk", "adapter_id", "case_id", "output_tokens"):
        outputs[(adapter_id, case_id)] = pk
        output_adapter[pk] = adapter_id
        output_tokens[pk] = tokens
    scores = list(
        MetricScore.objects.filter(run=run, adapter_id__in=ids)
        .filter(Q(sample=0) | Q(output__isnull=True))
        .values_list("adapter_id", "case_id", "metric", "value", "passed")
    )
    studies = Study.objects.filter(run=run)
    if study_ids is not None:
        studies = studies.filter(pk__in=list(study_ids))
    chosen = list(studies.values_list("pk", flat=True))
    criteria = study_criteria(study_ids=chosen)
    ratings = _ratings(study_ids=chosen, criteria=criteria)
    rated_outputs = {r["a"] for r in ratings} | {r["b"] for r in ratings if r["b"]}
    texts: dict[int, str] = {}
    if rated_outputs:
        texts = dict(Output.objects.filter(run=run, pk__in=rated_outputs).values_list("pk", "text"))
    from django.contrib.auth import get_user_model

    rater_ids = {r["rater"] for r in ratings}
    raters = dict(get_user_model().objects.filter(pk__in=rater_ids).values_list("pk", "username"))
    return ReportRows(
        cases=cases,
        adapters=adapters,
        outputs=outputs,
        output_adapter=output_adapter,
        output_tokens=output_tokens,
        texts=texts,
        scores=scores,
        ratings=ratings,
        raters=raters,
        study_ids=chosen,
    )


def study_criteria(*, study_ids: list[int]) -> list[str]:
    """Criterion keys of the studies' rubrics, in rubric order (the default rubric's when unset)."""
    from annotation.models import Study
    from annotation.rubric import DEFAULT_RUBRIC

    keys: dict[str, None] = {}
    for rubric in Study.objects.filter(pk__in=study_ids).values_list("rubric", flat=True):
        for criterion in (rubric or DEFAULT_RUBRIC).get("criteria", []):
            keys.setdefault(criterion["key"], None)
    return list(keys)


def _number(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return value
    try:
        return int(value)
    except ValueError:
        return float(value)


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    return value in (True, 1, "1", "true")


def _ratings(*, study_ids: list[int], criteria: list[str]) -> list[dict[str, Any]]:
    """Ratings with their scores and hallucination flags pulled out of the JSON by the database:
    decoding 100k JSON documents in Python costs more than the rest of the query."""
    from annotation.models import Rating

    fields: dict[str, Any] = {}
    for i, criterion in enumerate(criteria):
        for side in ("A", "B"):
            fields[f"s{i}{side}"] = KT(f"scores__{criterion}__{side}")
    for side in ("A", "B"):
        fields[f"h{side}"] = KT(f"hallucination__{side}__flagged")
    names = [
        "task_id",
        "rater_id",
        "preference",
        "task__case_id",
        "task__output_a_id",
        "task__output_b_id",
        "task__is_gold",
        "task__gold_answer",
        "time_on_task_ms",
    ]
    rows = (
        Rating.objects.filter(task__study_id__in=study_ids)
        .annotate(**fields)
        .order_by("pk")
        .values_list(*names, *fields)
    )
    width = len(names)
    out = []
    for row in rows:
        task, rater, preference, case, a, b, gold, answer, time_ms = row[:width]
        extra = row[width:]
        scores: dict[str, dict[str, Any]] = {}
        for i, criterion in enumerate(criteria):
            va, vb = extra[2 * i], extra[2 * i + 1]
            if va is not None or vb is not None:
                entry = scores[criterion] = {}
                if va is not None:
                    entry["A"] = _number(va)
                if vb is not None:
                    entry["B"] = _number(vb)
        flags = extra[-2:]
        halluc = {
            side: {"flagged": _flag(f)} for side, f in zip(("A", "B"), flags, strict=True) if f is not None
        }
        out.append(
            {
                "task": task,
                "rater": rater,
                "scores": scores,
                "preference": preference,
                "hallucination": halluc,
                "case": case,
                "a": a,
                "b": b,
                "gold": gold,
                "gold_answer": answer,
                "time_ms": time_ms,
            }
        )
    return out


def run_for_user(*, user: Any, run_id: int, projects: QuerySet[Any]) -> Run:
    run = (
        Run.objects.filter(pk=run_id, project__in=projects).select_related("project", "suite_version").first()
    )
    if run is None:
        raise NotFound("No such run.")
    return run


def policy_for_run(*, run: Run, name: str | None = None) -> GatePolicy | None:
    """The named policy of the run's project, else its newest one; None means the default policy."""
    policies = GatePolicy.objects.filter(project_id=run.project_id)
    if name:
        policy = policies.filter(name=name).first()
        if policy is None:
            raise ValidationFailed(f"No gate policy named {name!r} in this project.")
        return policy
    return policies.order_by("-updated_at").first()


def verdict_get(*, public_id: str, projects: QuerySet[Any]) -> Verdict:
    verdict = (
        Verdict.objects.filter(public_id=public_id, project__in=projects)
        .select_related("run", "policy", "candidate", "baseline", "frozen_by")
        .first()
    )
    if verdict is None:
        raise NotFound("No such verdict.")
    return verdict


def project_trend(*, project: Any) -> list[dict[str, Any]]:
    """Per run and adapter: mean of each automated metric, with the adapter's version, stage and date.

    One grouped query; the human side comes from frozen verdicts (their snapshot holds the win rate).
    """
    rows = (
        MetricScore.objects.filter(run__project=project)
        .filter(Q(sample=0) | Q(output__isnull=True))
        .values(
            "run_id",
            "run__name",
            "run__created_at",
            "adapter_id",
            "adapter__name",
            "adapter__version",
            "adapter__stage",
            "adapter__created_at",
            "metric",
        )
        .annotate(mean=Avg("value"), n=Count("pk"))
        .order_by("adapter__created_at", "run__created_at", "metric")
    )
    points = []
    for row in rows:
        points.append(
            {
                "run": row["run_id"],
                "run_name": row["run__name"],
                "run_at": row["run__created_at"].isoformat(),
                "adapter": f"{row['adapter__name']}@{row['adapter__version']}",
                "adapter_name": row["adapter__name"],
                "stage": row["adapter__stage"],
                "adapter_at": row["adapter__created_at"].isoformat(),
                "metric": row["metric"],
                "mean": row["mean"],
                "n": row["n"],
            }
        )
    for verdict in Verdict.objects.filter(project=project).select_related("candidate").order_by("frozen_at"):
        win = (verdict.snapshot.get("report") or {}).get("win_rate") or {}
        rate = (win.get("ties_as_half") or {}).get("rate")
        if rate is None:
            continue
        c = verdict.candidate
        points.append(
            {
                "run": verdict.run_id,
                "run_name": "",
                "run_at": verdict.frozen_at.isoformat(),
                "adapter": c.label,
                "adapter_name": c.name,
                "stage": c.stage,
                "adapter_at": c.created_at.isoformat(),
                "metric": "human_win_rate",
                "mean": rate,
                "n": win.get("n"),
            }
        )
    return points


def rating_rows(*, run: Run, case_id: int | None = None) -> list[dict[str, Any]]:
    """Every rating of the run's studies with both sides' adapters named (report readers only)."""
    from annotation.models import Rating

    ratings = Rating.objects.filter(task__study__run=run)
    if case_id is not None:
        ratings = ratings.filter(task__case_id=case_id)
    rows = ratings.order_by("task__case__position", "pk").values(
        "id",
        "task__case__key",
        "rater__username",
        "task__output_a__adapter__name",
        "task__output_a__adapter__version",
        "task__output_b__adapter__name",
        "task__output_b__adapter__version",
        "task__output_a_id",
        "task__output_b_id",
        "preference",
        "scores",
        "hallucination",
        "time_on_task_ms",
        "task__is_gold",
        "rationale",
    )
    out = []
    for r in rows:
        b_name = r["task__output_b__adapter__name"]
        out.append(
            {
                "id": r["id"],
                "case_key": r["task__case__key"],
                "rater": r["rater__username"],
                "adapter_a": f"{r['task__output_a__adapter__name']}@{r['task__output_a__adapter__version']}",
                "adapter_b": f"{b_name}@{r['task__output_b__adapter__version']}" if b_name else "",
                "output_a": r["task__output_a_id"],
                "output_b": r["task__output_b_id"],
                "preference": r["preference"],
                "scores": r["scores"] or {},
                "hallucination": r["hallucination"] or {},
                "time_on_task_ms": r["time_on_task_ms"],
                "gold": r["task__is_gold"],
                "rationale": r["rationale"],
            }
        )
    return out


def case_detail(*, run: Run, case_id: int) -> dict[str, Any]:
    case = Case.objects.filter(pk=case_id, version_id=run.suite_version_id).first()
    if case is None:
        raise NotFound("No such case in this run.")
    outputs = list(
        Output.objects.filter(run=run, case=case, sample=0)
        .select_related("adapter")
        .order_by("adapter__created_at")
    )
    scores: dict[int, dict[str, Any]] = {}
    for adapter_id, metric, value, passed in MetricScore.objects.filter(run=run, case=case).values_list(
        "adapter_id", "metric", "value", "passed"
    ):
        scores.setdefault(adapter_id, {})[metric] = passed if metric == "checks" else value
    return {
        "case": case,
        "outputs": [
            {"output": o, "adapter": o.adapter.label, "scores": scores.get(o.adapter_id, {})} for o in outputs
        ],
        "ratings": rating_rows(run=run, case_id=case.pk),
    }
